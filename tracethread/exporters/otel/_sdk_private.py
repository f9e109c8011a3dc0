"""Every place tracethread reads or sets a private attribute of the OpenTelemetry SDK, in
one module: each accessor degrades to "not available" (None, False, an empty list) when the
SDK is not shaped as expected, and its caller then takes the SDK's public, slower way.

- Histograms: a summary's histogram (bucket counts, sum, min, max) added to an SDK
  histogram in one step (``supports``, ``merge``; below).
- Span processors: the bounded queues of batch span processors, to count what they drop
  (``batch_queues``); a provider's span processors and span limits (``span_processors``,
  ``span_limits``), for the direct span pipeline (``direct.py``).
- Spans and exporters: a ReadableSpan's events, links and attributes as stored
  (``span_internals``); the OTLP/HTTP exporter's client, shutdown flag and request-size
  limit (``otlp_http_send``, ``exporter_shut_down``, ``max_request_size``), for the wire
  encoding (``wire.py``).
- Resources: the providers' resource replaced in a forked child (``set_tracer_resource``,
  ``set_meter_resource``), which the SDK fixes at construction.

Histograms. The SDK's API takes one value per ``Histogram.record`` call (~6 µs each on the
machines we measure), and summaries (``records.SUMMARY``) stand for thousands of
uncontended holds a second. So the counts are added where the SDK keeps them: the
explicit-bucket aggregation of the instrument's attribute set, under that aggregation's own
lock, exactly as its ``aggregate()`` would have left them. This is checked once per
instrument (``supports``): anything not as expected (another SDK version, a View that
changed the aggregation or its buckets) makes the caller fall back to one ``record`` per
hold instead, which is exact and slow. tests/test_otel.py checks that the installed SDK
takes the fast way and that the exported histograms equal the holds made.
"""

from __future__ import annotations

import collections
from typing import Any, Sequence


def _storages(instrument: Any) -> list:
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return list(storages.values()) if isinstance(storages, dict) else []


def _matches(instrument: Any) -> list:
    out = []
    for storage in _storages(instrument):
        out += storage._get_or_init_view_instrument_match(instrument)
    return out


def supports(instrument: Any, bounds: Sequence[float]) -> bool:
    """Can summaries with these bucket bounds be merged into ``instrument`` exactly?"""
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim_mod
        from opentelemetry.sdk.metrics._internal.aggregation import (
            _ExplicitBucketHistogramAggregation as Explicit,
        )
        matches = _matches(instrument)
        if not matches or not hasattr(vim_mod, "_hash_attributes"):
            return False
        for m in matches:
            agg = m._aggregation
            if type(agg) is not Explicit or tuple(agg._boundaries) != tuple(bounds):
                return False
            for name in ("_lock", "_view", "_attributes_aggregation",
                         "_get_or_create_aggregation", "_reset_on_collect"):
                if not hasattr(m, name):
                    return False
            for name in ("_lock", "_value", "_sum", "_min", "_max", "_record_min_max"):
                if not hasattr(agg, name):
                    return False
        return True
    except Exception:  # noqa: BLE001 - any surprise means: not supported
        return False


def merge(instrument: Any, attributes: dict, buckets: Sequence[int], total: float,
          low: float, high: float) -> None:
    """Add ``sum(buckets)`` values (``total`` their sum, ``low``/``high`` their extremes)
    to ``instrument``'s aggregation of ``attributes`` in every reader. Call only when
    ``supports`` said yes for this instrument."""
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    for m in _matches(instrument):
        attrs = dict(attributes)
        keys = m._view._attribute_keys
        if keys is not None:
            attrs = {k: v for k, v in attrs.items() if k in keys}
        key = _hash_attributes(attrs)
        with m._lock:  # as consume_measurement: a collect may not drop it meanwhile
            agg = m._get_or_create_aggregation(key, attrs)
            with agg._lock:
                if agg._value is None:
                    agg._value = agg._get_empty_bucket_counts()
                value = agg._value
                for i, n in enumerate(buckets):
                    if n:
                        value[i] += n
                agg._sum += total
                if agg._record_min_max:
                    agg._min = min(agg._min, low)
                    agg._max = max(agg._max, high)


def batch_queues(processors: Any) -> list:
    """The bounded queues of the SDK's batch span processors among ``processors``, to count
    what they drop when full (the SDK only logs it). A processor whose queue is not found
    is not counted."""
    out = []
    for p in processors or ():
        q = getattr(getattr(p, "_batch_processor", None), "_queue", None)
        if isinstance(q, collections.deque) and q.maxlen:
            out.append(q)
    return out


def span_processors(provider: Any) -> tuple | None:
    """The span processors of an SDK ``TracerProvider`` now (None: not readable)."""
    active = getattr(provider, "_active_span_processor", None)
    current = getattr(active, "_span_processors", None)
    return current if isinstance(current, tuple) else None


def span_limits(provider: Any) -> Any:
    """An SDK ``TracerProvider``'s span limits (None: not found)."""
    return getattr(provider, "_span_limits", None)


def span_internals(span: Any) -> tuple:
    """A ReadableSpan's (events, links, attributes) as it keeps them (the public
    properties copy them)."""
    return span._events, span._links, span._attributes


def otlp_http_send(exporter: Any) -> Any:
    """``export(bytes)`` of the HTTP client of the SDK's OTLP/HTTP span exporter (None:
    not found)."""
    return getattr(getattr(exporter, "_client", None), "export", None)


def exporter_shut_down(exporter: Any) -> bool:
    """Has the SDK's OTLP exporter been shut down (True when it cannot be told)?"""
    return getattr(exporter, "_shutdown", True)


def max_request_size(exporter: Any) -> int:
    """The SDK's OTLP exporter's request size limit in bytes (0: none known)."""
    return getattr(exporter, "_max_request_size", 0) or 0


def set_tracer_resource(provider: Any, resource: Any) -> bool:
    """Replace an SDK ``TracerProvider``'s resource (tracers made before keep the old
    one). False, and nothing done, when it has no such attribute."""
    if not hasattr(provider, "_resource"):
        return False
    provider._resource = resource
    return True


def set_meter_resource(provider: Any, resource: Any) -> None:
    """Replace an SDK ``MeterProvider``'s resource, where its configuration is found."""
    config = getattr(provider, "_sdk_config", None)
    if config is not None and hasattr(config, "resource"):
        config.resource = resource


def metric_exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """An SDK ``MetricExporter``'s (preferred temporality, preferred aggregation), as its
    constructor took them (None, None where not found: the SDK's defaults)."""
    return (getattr(exporter, "_preferred_temporality", None),
            getattr(exporter, "_preferred_aggregation", None))


def global_meter_provider_set() -> bool:
    """Has a global MeterProvider been set (the metrics API's private record of it; True
    when it cannot be told, so an application's provider is never overridden)?"""
    try:
        from opentelemetry.metrics import _internal
    except ImportError:
        return True
    return getattr(_internal, "_METER_PROVIDER", True) is not None
