"""OpenTelemetry export (docs/otel.md), one module per job:

    sink          OTelSink: records -> spans and metrics (the metric instruments, the
                  per-batch sums); enable_context_capture()
    direct        DirectSpans: spans of tracethread's own provider handed straight to its
                  processors, or written in wire format, without the SDK's Tracer
    wire          the OTLP protobuf encoding of spans; FastOTLPSpanExporter, EncodedSpan
    environment   setup() and Exporting: providers, span exporters and metric readers as
                  the OTEL_* environment (and the CLI's shortcuts) say; wanted_exporters();
                  a forked child's own service.instance.id
    names         every span name, attribute and metric emitted
    _sdk_private  every access to a private attribute of the OpenTelemetry SDK

``setup``, ``Exporting``, ``MissingExtra`` and ``wanted_exporters`` import nothing of
OpenTelemetry, so ``tracethread run`` can decide whether to export at all where
OpenTelemetry is broken; ``OTelSink`` and ``enable_context_capture`` load the sink (and
OpenTelemetry) when first asked for.
"""

from __future__ import annotations

from typing import Any

from .environment import Exporting, MissingExtra, setup, wanted_exporters

_FROM_SINK = ("OTelSink", "enable_context_capture")

__all__ = ["Exporting", "MissingExtra", "OTelSink", "enable_context_capture", "setup",
           "wanted_exporters"]


def __getattr__(name: str) -> Any:
    if name in _FROM_SINK:
        from . import sink   # (imports OpenTelemetry: on first use, not with the package)
        return getattr(sink, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
