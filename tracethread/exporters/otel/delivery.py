"""Delivery: what the export pipeline tracethread set up did not deliver, and why, and an
exit that never waits on a collector longer than a bound.

The SDK's own behaviour with a collector that is down, slow or silent is made for servers
that run for days: every export retries with backoff up to its timeout (10 s), the batch
processor's shutdown waits up to 30 s, and each retry logs a line. For a program run
under ``tracethread run`` that is tens of seconds of exit delay and dozens of raw lines.
So here:

- every span and metric exporter tracethread makes is wrapped (``CountingSpanExporter``,
  ``CountingMetricExporter``): each batch's result is counted (spans and metric points
  delivered or not), whatever the cause — refused, timed out, an HTTP error, a payload
  too large;
- the exporters' log lines (the ``opentelemetry.exporter`` loggers) are taken, not
  printed: the first failure's cause becomes one tracethread line at exit ("export to
  URL failed: connection refused; N spans, M metric points not delivered");
- ``shutdown`` runs the providers' shutdown on a raw thread and waits for it at most the
  bound (``TRACETHREAD_EXPORT_TIMEOUT``, else ``OTEL_EXPORTER_OTLP_TIMEOUT`` — seconds, as
  the Python SDK reads it — else 5 s). What is still queued or in flight then is counted
  as not delivered, and the process exits without it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any, Sequence

from ..._core import api as core
from . import _sdk_private

DEFAULT_EXPORT_TIMEOUT = 5.0
_LOGGER = "opentelemetry.exporter"


def export_timeout(env: Any = None) -> float:
    """The bound on the export's shutdown at exit, in seconds (see the module's doc).
    Raises ValueError for a value that is not a number >= 0."""
    env = os.environ if env is None else env
    for var in ("TRACETHREAD_EXPORT_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = env.get(var, "").strip()
        if raw:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not a number of seconds") from None
            if not value >= 0 or value == float("inf"):
                raise ValueError(f"{var}={raw!r}: give a finite number of seconds >= 0")
            return value
    return DEFAULT_EXPORT_TIMEOUT


def short_reason(text: str) -> str:
    """The cause in a failed export's log line, in a few words: "connection refused",
    "timed out", "HTTP 503", "gRPC INVALID_ARGUMENT: <details>", or the line itself
    (shortened). What came from the network is shown escaped, never as control codes."""
    m = re.search(r"StatusCode\.([A-Z_]+)", text)
    if m:   # the gRPC exporter: "error code: StatusCode.X, error details: ..."
        code = m.group(1)
        d = re.search(r"[Ee]rror details: (.*)$", text, re.S)
        details = d.group(1).strip() if d else ""
        if "connection refused" in details.lower():
            return f"connection refused (gRPC {code})"
        if code == "DEADLINE_EXCEEDED":
            return f"timed out (gRPC {code})"
        return f"gRPC {code}: {_shortened(details, 120)}" if details else f"gRPC {code}"
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return _shortened(m.group(1).strip().rstrip(".").lower(), 120)
    low = text.lower()
    if "timed out" in low or "timeout" in low and "retries or shutdown" not in low:
        return "timed out (no answer)"
    m = re.search(r"code: (\d{3})", text) or re.search(r"status(?: code)?[:= ]+(\d{3})", text)
    if m:
        return f"HTTP {m.group(1)}"
    return _shortened(text, 160)


def _shortened(text: str, most: int) -> str:
    """One line of at most ``most`` characters, whitespace runs as one space, anything
    unprintable escaped (``\\x1b``)."""
    text = " ".join(text.split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= most else text[:most - 3] + "..."


class _Capture(logging.Handler):
    """Takes the exporters' log records: the first failure's cause is kept, nothing is
    printed (the one line at exit says it)."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(logging.DEBUG)
        self.delivery = delivery

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call: its format string
            text = str(record.msg)
        if "retries or shutdown" in text and self.delivery.reason is not None:
            return   # the SDK's summary of the retries: the cause is already known
        self.delivery.note_problem(text)


class Delivery:
    """Counts of one process's export (spans, metric points), the first failure's cause,
    and whether the exit had to leave some behind."""

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self._lock = core.raw_lock()
        self.spans_delivered = self.spans_failed = 0
        self.points_delivered = self.points_failed = 0
        self.spans_in_flight = self.points_in_flight = 0
        self.spans_left = self.points_left = 0      # left behind at exit (the bound)
        self.failed_exports = 0
        self.reason: str | None = None
        self.last_problem: str | None = None
        self.abandoned = False
        self.shutdown_s: float | None = None
        self.bound_s: float | None = None
        self._capture: _Capture | None = None
        self._logger_state: tuple | None = None

    # -- the exporters' log lines --------------------------------------------------------
    def capture_logs(self) -> None:
        """Take the ``opentelemetry.exporter`` loggers' lines (until ``release_logs``)."""
        logger = logging.getLogger(_LOGGER)
        self._capture = _Capture(self)
        self._logger_state = (logger.propagate,)
        logger.addHandler(self._capture)
        logger.propagate = False

    def release_logs(self) -> None:
        if self._capture is None or self._logger_state is None:
            return
        logger = logging.getLogger(_LOGGER)
        logger.removeHandler(self._capture)
        logger.propagate = self._logger_state[0]
        self._capture = None

    def note_problem(self, text: str) -> None:
        with self._lock:
            self.last_problem = text
            if self.reason is None:
                self.reason = short_reason(text)

    # -- results -------------------------------------------------------------------------
    def begin(self, spans: int = 0, points: int = 0) -> None:
        with self._lock:
            self.spans_in_flight += spans
            self.points_in_flight += points

    def end(self, ok: bool, spans: int = 0, points: int = 0) -> None:
        with self._lock:
            self.spans_in_flight -= spans
            self.points_in_flight -= points
            if ok:
                self.spans_delivered += spans
                self.points_delivered += points
            else:
                self.failed_exports += 1
                self.spans_failed += spans
                self.points_failed += points
                if self.reason is None:
                    self.reason = "the exporter reported a failure"

    # -- the end -------------------------------------------------------------------------
    def leave_behind(self, queued_spans: int) -> None:
        """The bound passed: what is queued or in an export now is not delivered."""
        with self._lock:
            self.abandoned = True
            self.spans_left = queued_spans + self.spans_in_flight
            self.points_left = self.points_in_flight
            if self.reason is None:
                self.reason = (f"the collector did not answer within {self.bound_s:g} s"
                               if self.bound_s is not None else "no answer")

    def summary(self) -> dict[str, Any]:
        """The report's ``export`` section."""
        dropped = core.recorder_stats().get("export_dropped", 0)
        spans_lost = self.spans_failed + self.spans_left + dropped
        points_lost = self.points_failed + self.points_left
        return {
            "endpoint": self.endpoint,
            "ok": spans_lost == 0 and points_lost == 0 and self.failed_exports == 0,
            "error": self.reason if (spans_lost or points_lost or self.failed_exports)
            else None,
            "spans_delivered": self.spans_delivered,
            "spans_not_delivered": spans_lost,
            "spans_dropped_by_queue": dropped,
            "spans_failed": self.spans_failed,
            "spans_left_at_exit": self.spans_left,
            "metric_points_delivered": self.points_delivered,
            "metric_points_not_delivered": points_lost,
            "failed_exports": self.failed_exports,
            "shutdown_seconds": None if self.shutdown_s is None else round(self.shutdown_s, 3),
            "shutdown_bound_seconds": self.bound_s,
            "gave_up_at_exit": self.abandoned,
        }

    def line(self) -> str | None:
        """The one stderr line about a failed export (None: nothing was lost)."""
        s = self.summary()
        if s["ok"]:
            return None
        where = f"to {core.literal(self.endpoint)} " if self.endpoint else ""
        tail = f" (gave up at exit after {self.bound_s:g} s)" if self.abandoned else ""
        if s["error"] is None and not s["failed_exports"] and not self.abandoned:
            # The collector took every batch sent; spans were lost before: the queue.
            return (f"tracethread: export {where}lost {s['spans_dropped_by_queue']} spans: "
                    "the batch span processor's queue was full (OTEL_BSP_MAX_QUEUE_SIZE, "
                    "docs/otel.md)\n")
        return (f"tracethread: export {where}failed: {core.literal(s['error'] or '?')}; "
                f"{s['spans_not_delivered']} spans, {s['metric_points_not_delivered']} "
                f"metric points not delivered{tail}\n")


def counting_span_exporter(inner: Any, delivery: Delivery) -> Any:
    """``inner`` (an SDK SpanExporter) wrapped so each batch's result is counted. The
    wrapper's ``inner`` is what the direct span pipeline looks at (``unwrap``)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingSpanExporter(SpanExporter):
        counts_delivery = True

        def __init__(self) -> None:
            self.inner = inner

        def export(self, spans: Sequence[Any]) -> Any:
            n = len(spans)
            delivery.begin(spans=n)
            ok = False
            try:
                result = inner.export(spans)
                ok = result == SpanExportResult.SUCCESS
                return result
            except Exception as exc:  # noqa: BLE001 - the batch processor logs, goes on
                delivery.note_problem(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                delivery.end(ok, spans=n)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return inner.force_flush(timeout_millis)

    return CountingSpanExporter()


def unwrap(exporter: Any) -> Any:
    """The exporter a counting wrapper wraps (or ``exporter`` itself)."""
    return exporter.inner if getattr(type(exporter), "counts_delivery", False) else exporter


def _points(metrics_data: Any) -> int:
    n = 0
    for rm in getattr(metrics_data, "resource_metrics", ()) or ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                n += len(getattr(m.data, "data_points", ()) or ())
    return n


def counting_metric_exporter(inner: Any, delivery: Delivery) -> Any:
    """``inner`` (an SDK MetricExporter) wrapped so each export's result is counted in
    metric points; same temporality and aggregation preferences."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class CountingMetricExporter(MetricExporter):
        def __init__(self) -> None:
            temporality, aggregation = _sdk_private.metric_exporter_preferences(inner)
            super().__init__(preferred_temporality=temporality,
                             preferred_aggregation=aggregation)
            self.inner = inner

        def export(self, metrics_data: Any, timeout_millis: float = 10_000,
                   **kwargs: Any) -> Any:
            n = _points(metrics_data)
            delivery.begin(points=n)
            ok = False
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                ok = result == MetricExportResult.SUCCESS
                return result
            except Exception as exc:  # noqa: BLE001 - the reader logs and goes on
                delivery.note_problem(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                delivery.end(ok, points=n)

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return inner.force_flush(timeout_millis=timeout_millis)

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    return CountingMetricExporter()


def bounded_shutdown(providers: Sequence[Any], delivery: Delivery, queues: list,
                     bound_s: float) -> None:
    """Shut the providers down (each exporting what it holds) on raw threads of their own,
    side by side, waiting for them at most ``bound_s`` in all; then say what was not
    delivered, in one line."""
    delivery.bound_s = bound_s
    t0 = time.monotonic()
    waits = []
    for p in providers:
        if p is None:
            continue
        done = core.raw_lock()
        done.acquire()

        def work(p: Any = p, done: Any = done) -> None:
            try:
                with core.guarded():
                    p.shutdown()
            except Exception as exc:  # noqa: BLE001 - exit must go on
                delivery.note_problem(f"{type(exc).__name__}: {exc}")
            finally:
                done.release()

        core.start_raw_thread(work, ())
        waits.append(done)
    finished = True
    for done in waits:
        left = bound_s - (time.monotonic() - t0)
        if not (done.acquire(True, left) if left > 0 else done.acquire(False)):
            finished = False
    delivery.shutdown_s = time.monotonic() - t0
    if not finished:
        delivery.leave_behind(sum(len(q) for q in queues))
    delivery.release_logs()
    line = delivery.line()
    if line:
        try:
            sys.stderr.write(line)
        except Exception:  # noqa: BLE001 - stderr may be gone
            pass
