"""tracethread as an OpenTelemetry instrumentor: ``opentelemetry-instrument python app.py``
turns it on like any other instrumentation (entry point group ``opentelemetry_instrumentor``).

Spans and metrics go to the providers the OpenTelemetry distro configured (or those passed
as ``tracer_provider=``/``meter_provider=``).
"""

from __future__ import annotations

from typing import Any, Collection

# (the module starts with a file-wide "# type: ignore": to mypy it defines nothing)
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]


class TracethreadInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    _sink: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return []

    def _instrument(self, **kwargs: Any) -> None:
        import tracethread
        from tracethread.exporters.otel import OTelSink, enable_context_capture
        with tracethread.guarded():
            sink = OTelSink(kwargs.get("tracer_provider"), kwargs.get("meter_provider"),
                            spans=kwargs.get("spans", "blocked"),
                            min_duration_s=kwargs.get("min_duration_s", 0.0))
        enable_context_capture()
        tracethread.add_sink(sink)
        type(self)._sink = sink
        if not tracethread.is_installed():
            tracethread.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        import tracethread
        from tracethread._core import api as core
        if tracethread.is_installed():
            tracethread.uninstall()
        if type(self)._sink is not None:
            tracethread.remove_sink(type(self)._sink)
            with tracethread.guarded():
                type(self)._sink.close()
            type(self)._sink = None
        core.set_context_hooks(None)
