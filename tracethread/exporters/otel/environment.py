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


def _metric_reader(name: str, prometheus_port: int | None) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "5000"))
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        return PeriodicExportingMetricReader(ConsoleMetricExporter(),
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
    return PeriodicExportingMetricReader(exporter(), export_interval_millis=interval)


class Exporting:
    """The providers tracethread made, and the sink feeding them."""

    def __init__(self, sink: OTelSink, tracer_provider: Any, meter_provider: Any) -> None:
        self.sink = sink
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Hand every record so far to the sink, and export what the providers hold."""
        core.flush()
        with core.guarded():
            for p in (self.tracer_provider, self.meter_provider):
                if p is not None:
                    p.force_flush(timeout_millis)

    def shutdown(self) -> None:
        core.flush()
        with core.guarded():
            for p in (self.tracer_provider, self.meter_provider):
                if p is not None:
                    try:
                        p.shutdown()
                    except Exception:  # noqa: BLE001 - exit must go on
                        pass


def setup(otlp_endpoint: str | None = None, prometheus_port: int | None = None,
          spans: str = "blocked", min_duration_s: float = 0.0) -> Exporting | None:
    """Start exporting as the OTEL_* environment (and the CLI shortcuts) say; None when
    nothing asks for it (tracethread needs no server) or OTEL_SDK_DISABLED=true."""
    from .sink import OTelSink, enable_context_capture
    env = os.environ
    trace_names, reader_names = wanted_exporters(env, otlp_endpoint, prometheus_port)
    if not trace_names and not reader_names:
        return None
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint  # what the OTLP exporters read
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    with core.guarded():
        resource = Resource.create(_default_resource_attributes(env))
        tp = None
        if trace_names:
            tp = TracerProvider(resource=resource)
            processors = [BatchSpanProcessor(_span_exporter(n)) for n in trace_names]
            for sp in processors:
                tp.add_span_processor(sp)
        readers = [_metric_reader(n, prometheus_port) for n in reader_names]
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
                           **extra) if readers else None
        enable_context_capture()
        sink = OTelSink(tp, mp, spans=spans if tp is not None else "none",
                        min_duration_s=min_duration_s,
                        span_processors=processors if tp is not None else None)
    core.add_sink(sink)
    exporting = Exporting(sink, tp, mp)
    if hasattr(os, "register_at_fork") and "service.instance.id" in \
            _default_resource_attributes(env):
        ref = weakref.ref(exporting)
        os.register_at_fork(after_in_child=lambda: _new_instance_in_child(ref))
    return exporting


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
