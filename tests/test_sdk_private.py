"""Canaries for tracethread/exporters/otel/_sdk_private.py: one test per accessor, on the
real objects of the installed OpenTelemetry SDK, asserting that the accessor ENGAGES (reads
or sets the real thing) rather than degrading to its "not available" value. Each accessor
degrades silently by design (its caller then takes the SDK's slower public way), so without
these a release of the SDK that renames a private attribute would only make tracethread
slower, or stop counting drops, with every other test still green.

The two accessors of the OTLP/HTTP exporter's HTTP client (``otlp_http_send``,
``max_request_size``) have something to read from SDK 1.45.0 on only (before it the
exporter posts with ``requests`` itself): on an older SDK their test checks the documented
degradation instead (None / 0, so the SDK's own export is used)."""

import subprocess
import sys
import textwrap
from importlib.metadata import version

import pytest

import tracethread
from tracethread.exporters.otel import _sdk_private as P

from helpers import OTLPReceiver

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _release(name):
    return tuple(int(x) for x in version(name).split(".")[:2])


HAS_HTTP_CLIENT = _release("opentelemetry-exporter-otlp-proto-http") >= (1, 45)


def _histogram(readers):
    from opentelemetry.sdk.metrics import MeterProvider
    mp = MeterProvider(metric_readers=readers)
    h = mp.get_meter("canary").create_histogram(
        "canary.duration", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    return mp, h


def _points(reader):
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "canary.duration" for p in m.data.data_points]


def test_supports_and_merge_add_to_the_sdks_own_aggregation():
    # The fast path engages (supports) and merge leaves every reader's aggregation of the
    # attribute set exactly as recording the same values one by one would: one data point
    # (the SDK's own key for the attribute set), same bucket counts, sum, min and max.
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
    from opentelemetry.sdk.metrics import Histogram
    with tracethread.guarded():
        readers = [InMemoryMetricReader(),
                   InMemoryMetricReader(preferred_temporality={
                       Histogram: AggregationTemporality.DELTA})]
        _, h = _histogram(readers)
        twin_readers = [InMemoryMetricReader()]
        _, twin = _histogram(twin_readers)
    assert P.supports(h, BOUNDS)
    assert not P.supports(h, BOUNDS[:-1])   # other buckets: not the same aggregation
    attrs = {"lock": "a", "kind": "Lock"}
    merged = [0.0005, 0.003, 0.003, 0.5, 2.0]
    buckets = [0] * (len(BOUNDS) + 1)
    import bisect
    for v in merged:
        buckets[bisect.bisect_left(BOUNDS, v)] += 1
    h.record(0.05, attrs)           # an aggregation the SDK made, then merged into
    P.merge(h, dict(attrs), buckets, sum(merged), min(merged), max(merged))
    P.merge(h, {"lock": "new", "kind": "Lock"}, buckets, sum(merged), min(merged),
            max(merged))            # an aggregation merge makes, then recorded into
    h.record(0.05, {"lock": "new", "kind": "Lock"})
    for v in [0.05] + merged:
        twin.record(v, attrs)
        twin.record(v, {"lock": "new", "kind": "Lock"})

    def shape(points):
        return sorted((tuple(sorted(p.attributes.items())), tuple(p.bucket_counts), p.count,
                       round(p.sum, 9), p.min, p.max) for p in points)

    expected = shape(_points(twin_readers[0]))
    assert len(expected) == 2
    for reader in readers:
        assert shape(_points(reader)) == expected


def test_batch_queues_finds_the_batch_processors_queue():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    with tracethread.guarded():
        tp = TracerProvider()
        bsp = BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=7,
                                 max_export_batch_size=7, schedule_delay_millis=60_000)
        tp.add_span_processor(bsp)
        try:
            (q,) = P.batch_queues([bsp])
            assert q.maxlen == 7 and len(q) == 0
            tp.get_tracer("canary").start_span("s").end()
            assert len(q) == 1   # the very queue the processor fills
        finally:
            tp.shutdown()


def test_span_processors_are_the_providers():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    with tracethread.guarded():
        tp = TracerProvider()
        a = BatchSpanProcessor(InMemorySpanExporter())
        b = SimpleSpanProcessor(InMemorySpanExporter())
        tp.add_span_processor(a)
        assert P.span_processors(tp) == (a,)
        tp.add_span_processor(b)
        assert P.span_processors(tp) == (a, b)
        tp.shutdown()


def test_span_limits_are_the_providers():
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    limits = SpanLimits(max_span_attributes=7, max_span_attribute_length=11)
    tp = TracerProvider(span_limits=limits)
    assert P.span_limits(tp) is limits


def test_span_internals_are_what_the_span_keeps():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    with tracethread.guarded():
        tp = TracerProvider()
        kept = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(kept))
        tracer = tp.get_tracer("canary")
        other = tracer.start_span("other")
        s = tracer.start_span("s", attributes={"a": 1},
                              links=[trace.Link(other.get_span_context(), {"l": "x"})])
        s.add_event("e", {"k": "v"})
        s.end()
        other.end()
    span = next(x for x in kept.get_finished_spans() if x.name == "s")
    events, links, attributes = P.span_internals(span)
    assert tuple(events) == tuple(span.events) and len(events) == 1
    assert tuple(links) == tuple(span.links) and len(links) == 1
    assert dict(attributes) == {"a": 1} == dict(span.attributes)


@pytest.fixture
def http_exporter():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    with OTLPReceiver() as receiver:
        with tracethread.guarded():
            exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
        yield exporter, receiver
        with tracethread.guarded():
            exporter.shutdown()


def test_otlp_http_send_sends_through_the_exporters_client(http_exporter):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    exporter, receiver = http_exporter
    send = P.otlp_http_send(exporter)
    if not HAS_HTTP_CLIENT:   # before 1.45: degraded, the SDK's own export is used
        assert send is None
        return
    assert callable(send)
    body = ExportTraceServiceRequest().SerializeToString()
    with tracethread.guarded():
        result = send(body)
    assert result.success
    assert [p for p, _ in receiver.payloads] == ["/v1/traces"]


def test_exporter_shut_down_tells_the_exporters_state(http_exporter):
    exporter, _ = http_exporter
    assert P.exporter_shut_down(exporter) is False   # degraded: True
    with tracethread.guarded():
        exporter.shutdown()
    assert P.exporter_shut_down(exporter) is True


def test_max_request_size_is_the_exporters_limit():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    with tracethread.guarded():
        exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    try:
        if not HAS_HTTP_CLIENT:   # before 1.45: no limit known (degraded)
            assert P.max_request_size(exporter) == 0
            return
        assert P.max_request_size(exporter) > 0
        exporter._max_request_size = 12345   # the attribute the SDK checks a request by
        assert P.max_request_size(exporter) == 12345
    finally:
        exporter.shutdown()


def test_set_tracer_resource_replaces_the_providers_resource():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    with tracethread.guarded():
        tp = TracerProvider(resource=Resource.create({"service.name": "parent"}))
        kept = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(kept))
        child = Resource.create({"service.name": "child"})
        assert P.set_tracer_resource(tp, child) is True
        assert tp.resource is child
        tp.get_tracer("canary").start_span("s").end()
    (span,) = kept.get_finished_spans()
    assert span.resource.attributes["service.name"] == "child"


def test_set_meter_resource_replaces_the_providers_resource():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    with tracethread.guarded():
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader],
                                 resource=Resource.create({"service.name": "parent"}))
        counter = provider.get_meter("canary").create_counter("canary.count")
    P.set_meter_resource(provider, Resource.create({"service.name": "child"}))
    counter.add(1)
    (rm,) = reader.get_metrics_data().resource_metrics
    assert rm.resource.attributes["service.name"] == "child"


def test_metric_exporter_preferences_are_the_exporters():
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation

    class Exporter(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            raise AssertionError

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    aggregation = ExplicitBucketHistogramAggregation(boundaries=BOUNDS)
    exporter = Exporter(preferred_temporality={Histogram: AggregationTemporality.DELTA},
                        preferred_aggregation={Histogram: aggregation})
    temporality, aggregations = P.metric_exporter_preferences(exporter)
    assert temporality[Histogram] is AggregationTemporality.DELTA
    assert aggregations[Histogram] is aggregation


def test_global_meter_provider_set_tells_whether_one_was_set():
    # In a process of its own: the API lets the global provider be set once.
    script = textwrap.dedent("""
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from tracethread.exporters.otel import _sdk_private as P
        before = P.global_meter_provider_set()
        metrics.set_meter_provider(MeterProvider())
        print(before, P.global_meter_provider_set())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]   # degraded: always True
