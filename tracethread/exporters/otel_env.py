"""Which OpenTelemetry exporters the environment (and the CLI's shortcuts) ask for.

Kept apart from ``otel.py`` so ``tracethread run`` can decide whether to export at all
without importing the OpenTelemetry SDK (a program that exports nothing must run even
where OpenTelemetry is broken).
"""

from __future__ import annotations

from collections.abc import Mapping


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
