"""OpenTelemetry set up the OpenTelemetry way: which exporters the OTEL_* environment (and
the CLI's shortcuts) ask for, the providers, span exporters and metric readers made for
them, the sink feeding them (``setup``, ``Exporting``), and a forked child's own
service.instance.id.

Imports nothing of OpenTelemetry until ``setup`` runs, so ``tracethread run`` can decide
whether to export at all (``wanted_exporters``) without importing the OpenTelemetry SDK (a
program that exports nothing must run even where OpenTelemetry is broken).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from ..._core import api as core
from . import _sdk_private   # (no OpenTelemetry import at module level)
from .delivery import (
    DEFAULT_EXPORT_TIMEOUT, Delivery, bounded_shutdown, counting_metric_exporter,
    counting_span_exporter, export_timeout,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter

    from .sink import OTelSink


def wanted_exporters(env: Mapping[str, str], otlp_endpoint: str | None = None,
                     prometheus_port: int | None = None) -> tuple[list[str], list[str]]:
    """(span exporters, metric readers) by name, e.g. (["otlp"], ["otlp", "prometheus"]);
    both empty when nothing asks for export or ``OTEL_SDK_DISABLED=true``."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return [], []
    traces = env.get("OTEL_TRACES_EXPORTER")
    metrics = env.get("OTEL_METRICS_EXPORTER")
    if otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        traces = traces or "otlp"
        metrics = metrics or "otlp"
    if prometheus_port is not None:
        metrics = "prometheus" if not metrics or metrics == "otlp" and not otlp_endpoint \
            else f"{metrics},prometheus"

    def names(value: str | None) -> list[str]:
        return [n.strip() for n in (value or "").split(",") if n.strip() not in ("", "none")]

    return names(traces), names(metrics)


_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                       "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


def endpoint_problem(value: str, what: str) -> str | None:
    """Why ``value`` is not an OTLP endpoint the exporters can use (None: it is one): an
    ``http://`` or ``https://`` URL with a host and, if given, a valid port."""
    from urllib.parse import urlsplit
    shown = core.literal(repr(value))
    example = "http://127.0.0.1:4318"
    if not value.strip() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"{what} {shown} is not a URL (e.g. {example})"
    try:
        parts = urlsplit(value)
        port = parts.port   # (ValueError for a port that is not a number in range)
    except ValueError as exc:
        return f"{what} {shown}: {exc}"
    if parts.scheme not in ("http", "https"):
        hint = f"http://{value}" if "://" not in value else example
        return f"{what} {shown} is not an http:// or https:// URL (did you mean {hint}?)"
    if not parts.hostname:
        return f"{what} {shown} has no host (e.g. {example})"
    if port == 0:
        return f"{what} {shown}: port 0 is not a port to send to"
    return None


def endpoint_problems(env: Mapping[str, str], otlp_endpoint: str | None = None,
                      prometheus_port: int | None = None) -> list[str]:
    """Every endpoint setting that would make OTLP export fail (checked before the program
    runs, so a typo is one line and exit 2, not a run that exports nothing)."""
    traces, metrics = wanted_exporters(env, otlp_endpoint, prometheus_port)
    if "otlp" not in traces and "otlp" not in metrics:
        return []
    out = []
    if otlp_endpoint is not None:
        problem = endpoint_problem(otlp_endpoint, "--otlp")
        if problem:
            out.append(problem)
    for var in _ENDPOINT_VARIABLES:
        value = env.get(var)
        if value is not None and not (otlp_endpoint is not None and
                                      var == "OTEL_EXPORTER_OTLP_ENDPOINT"):
            problem = endpoint_problem(value, var)
            if problem:
                out.append(problem)
    return out


class MissingExtra(RuntimeError):
    pass


def _need(extra: str, what: str) -> NoReturn:
    raise MissingExtra(f"{what} needs an optional dependency: pip install 'tracethread[{extra}]'")


def _default_resource_attributes(env: Any) -> dict[str, str]:
    """What the OTEL_* environment leaves unset: service.name defaults to "tracethread";
    service.instance.id to host-pid, so the series of two processes never merge into one
    (a Collector derives Prometheus's `instance` label from it)."""
    import socket
    given = {kv.split("=", 1)[0].strip()
             for kv in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",") if "=" in kv}
    attrs = {}
    if not env.get("OTEL_SERVICE_NAME") and "service.name" not in given:
        attrs["service.name"] = "tracethread"
    if "service.instance.id" not in given:
        attrs["service.instance.id"] = f"{socket.gethostname()}-{os.getpid()}"
    return attrs


def _otlp_protocol(signal: str) -> str:
    """OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' or
    'http/protobuf' (the default); anything else is a configuration error."""
    var = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if not os.environ.get(var):
        var = "OTEL_EXPORTER_OTLP_PROTOCOL"
    proto = os.environ.get(var, "").strip() or "http/protobuf"
    if proto not in ("grpc", "http/protobuf"):
        raise ValueError(f"{var}={proto!r} is not supported (grpc, http/protobuf)")
    return proto


def _span_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r} "
                         "(otlp, console, none)")
    proto = _otlp_protocol("TRACES")
    try:
        if proto == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _need("otlp-grpc" if proto == "grpc" else "otlp", f"OTLP ({proto}) export")
    if proto == "grpc":
        return GrpcSpanExporter()
    from .wire import FastOTLPSpanExporter   # the SDK's exporter, a faster encoder
    return FastOTLPSpanExporter(OTLPSpanExporter())


def _metric_reader(name: str, prometheus_port: int | None, delivery: Delivery) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "5000"))
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        return PeriodicExportingMetricReader(
            counting_metric_exporter(ConsoleMetricExporter(), delivery),
            export_interval_millis=interval)
    if name == "prometheus":
        try:
            import prometheus_client
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
        except ImportError:
            _need("prometheus", "Prometheus export")
        port = prometheus_port if prometheus_port is not None else int(
            os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        prometheus_client.start_http_server(port, addr=host)
        return PrometheusMetricReader()
    if name != "otlp":
        raise ValueError(f"OTEL_METRICS_EXPORTER: unsupported exporter {name!r} "
                         "(otlp, prometheus, console, none)")
    proto = _otlp_protocol("METRICS")
    try:
        exporter: type[MetricExporter]
        if proto == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
            exporter = GrpcMetricExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            exporter = OTLPMetricExporter
    except ImportError:
        _need("otlp-grpc" if proto == "grpc" else "otlp", f"OTLP ({proto}) export")
    return PeriodicExportingMetricReader(counting_metric_exporter(exporter(), delivery),
                                         export_interval_millis=interval)


class Exporting:
    """The providers tracethread made, the sink feeding them, and what their exporters
    delivered (``delivery``)."""

    def __init__(self, sink: OTelSink, tracer_provider: Any, meter_provider: Any,
                 delivery: Delivery | None = None, queues: list | None = None,
                 bound_s: float = DEFAULT_EXPORT_TIMEOUT) -> None:
        self.sink = sink
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.delivery = delivery if delivery is not None else Delivery(None)
        self.queues = queues or []
        self.bound_s = bound_s

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Hand every record so far to the sink, and export what the providers hold."""
        core.flush()
        with core.guarded():
            for p in (self.tracer_provider, self.meter_provider):
                if p is not None:
                    p.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is left, waiting at most ``bound_s`` for the collector; one line on
        stderr if anything was not delivered (``delivery.summary()`` has the counts)."""
        core.flush()
        with core.guarded():
            self.sink.close()
        bounded_shutdown((self.tracer_provider, self.meter_provider), self.delivery,
                         self.queues, self.bound_s)


# The batch span queue's depth unless OTEL_BSP_MAX_QUEUE_SIZE says: the record buffer's
# (stream.DEFAULT_BUFFER_SIZE). The SDK's 2048 is made for an application's own spans; a
# program that blocks thousands of times a second makes a span each, and at 2048 a
# Condition ping-pong under the benchmark lost 4,707 spans in one run (issue 20).
SPAN_QUEUE_SIZE = 65_536  # (tests check it is stream.DEFAULT_BUFFER_SIZE)


def setup(otlp_endpoint: str | None = None, prometheus_port: int | None = None,
          spans: str = "blocked", min_duration_s: float = 0.0,
          export_timeout_s: float | None = None,
          set_global: bool = False) -> Exporting | None:
    """Start exporting as the OTEL_* environment (and the CLI shortcuts) say; None when
    nothing asks for it (tracethread needs no server) or OTEL_SDK_DISABLED=true.

    ``set_global`` (``tracethread run``): where the application has not set them, the
    providers made here become the global tracer and meter providers, as
    ``opentelemetry-instrument`` makes its own: an application that calls
    ``trace.get_tracer(...)`` without configuring an SDK has its spans exported, and
    tracethread's spans nest under them in one trace."""
    env = os.environ
    trace_names, reader_names = wanted_exporters(env, otlp_endpoint, prometheus_port)
    if not trace_names and not reader_names:
        return None
    # (a bad value: ValueError, before anything starts)
    bound_s = export_timeout(env) if export_timeout_s is None else export_timeout_s
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint  # what the OTLP exporters read
    delivery = Delivery(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None)
    with core.guarded():
        # Imported guarded: what OpenTelemetry's modules make at import (module-level
        # locks) is the stdlib's own, never traced.
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from .sink import OTelSink, enable_context_capture
        delivery.capture_logs()   # (the exporters' retry lines become one line at exit)
        resource = Resource.create(_default_resource_attributes(env))
        tp = None
        # No atexit shutdown of the SDK's own (up to 30 s with a collector down): the
        # CLI's end calls Exporting.shutdown, bounded.
        if trace_names:
            tp = TracerProvider(resource=resource, shutdown_on_exit=False)
            processors = [
                BatchSpanProcessor(counting_span_exporter(_span_exporter(n), delivery))
                if env.get("OTEL_BSP_MAX_QUEUE_SIZE") else   # (the SDK reads it itself)
                BatchSpanProcessor(counting_span_exporter(_span_exporter(n), delivery),
                                   max_queue_size=SPAN_QUEUE_SIZE)
                for n in trace_names]
            for sp in processors:
                tp.add_span_processor(sp)
        readers = [_metric_reader(n, prometheus_port, delivery) for n in reader_names]
        extra: dict[str, Any] = {}
        if not env.get("OTEL_METRICS_EXEMPLAR_FILTER"):
            # Exemplars of lock waits cost ~20 % of every histogram record on the export
            # thread and the spans already link a wait to its trace: off unless asked for.
            try:
                from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
                extra["exemplar_filter"] = AlwaysOffExemplarFilter()
            except ImportError:  # an SDK from before exemplars (< 1.26)
                pass
        mp = MeterProvider(resource=resource, metric_readers=readers,
                           shutdown_on_exit=False, **extra) if readers else None
        enable_context_capture()
        sink = OTelSink(tp, mp, spans=spans if tp is not None else "none",
                        min_duration_s=min_duration_s,
                        span_processors=processors if tp is not None else None)
    if set_global:
        with core.guarded():
            _set_global_providers(tp, mp)
    core.add_sink(sink)
    exporting = Exporting(sink, tp, mp, delivery,
                          _sdk_private.batch_queues(processors) if tp is not None else [],
                          bound_s)
    if hasattr(os, "register_at_fork") and "service.instance.id" in \
            _default_resource_attributes(env):
        ref = weakref.ref(exporting)
        os.register_at_fork(after_in_child=lambda: _new_instance_in_child(ref))
    return exporting


def _set_global_providers(tp: Any, mp: Any) -> None:
    """Make ``tp``/``mp`` the global providers where none is set yet. Later, the API keeps
    the first provider set (an application's own ``set_tracer_provider`` then logs the
    API's "Overriding of current TracerProvider is not allowed"), as under
    ``opentelemetry-instrument``."""
    from opentelemetry import metrics, trace
    if tp is not None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tp)
    if mp is not None and not _sdk_private.global_meter_provider_set():
        metrics.set_meter_provider(mp)


def _new_instance_in_child(ref: Any) -> None:
    """A forked child is another process: its spans and metrics carry its own
    service.instance.id (host-pid), not its parent's. The SDK's resources are fixed at
    construction, so the providers' are replaced in place (private attributes of the SDK:
    where one is missing, the child keeps its parent's id)."""
    exporting = ref()
    if exporting is None:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        resource = Resource.create(_default_resource_attributes(os.environ))
        tp, mp = exporting.tracer_provider, exporting.meter_provider
        if tp is not None and _sdk_private.set_tracer_resource(tp, resource):
            exporting.sink._tracer = None   # tracers hold the resource: get a new one
            direct = getattr(exporting.sink, "_direct", None)
            if direct is not None:
                direct.resource = resource
        _sdk_private.set_meter_resource(mp, resource)
    except Exception as exc:  # noqa: BLE001 - the tracer must not break the child
        core.internal_error("OpenTelemetry (new instance id in a forked child)", exc)
