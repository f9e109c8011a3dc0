"""The tracer's own bookkeeping of what went wrong: the record stream's counters and the
errors of its own that were contained (``internal_error``). Imports nothing of the core."""

from __future__ import annotations

import os
import sys

# records delivered, dropped (overwritten before a drain or past the exit deadline), sink
# errors, the tracer's own contained errors, spans an exporter's queue dropped.
counters = {"records": 0, "dropped": 0, "sink_errors": 0, "internal_errors": 0,
            "export_dropped": 0}
_reported_internal: set = set()


def debugging_sinks() -> bool:
    return os.environ.get("TRACETHREAD_DEBUG_SINKS", "").strip().lower() in (
        "1", "true", "yes")


def stats() -> dict[str, int]:
    """Counters of the record stream: records delivered, dropped (buffer overflow before a
    drain reached them), sink errors, the tracer's own errors that were contained, and
    export_dropped (spans an exporter's bounded queue dropped after the drain, as far as a
    sink can see it: ``count_export_dropped``)."""
    return dict(counters)


def count_export_dropped(n: int = 1) -> None:
    """A sink saw ``n`` spans (or other items) dropped by its exporter's bounded queue."""
    counters["export_dropped"] += n


def internal_error(where: str, exc: BaseException) -> None:
    """The tracer failed inside the program's call (detection, bookkeeping): count it and
    say so once per place on stderr; the program's operation goes on untouched."""
    counters["internal_errors"] += 1
    if where in _reported_internal and not debugging_sinks():
        return
    _reported_internal.add(where)
    try:
        import traceback
        sys.stderr.write(f"tracethread: internal error in {where}, contained; the program "
                         "goes on (further errors here are only counted):\n"
                         + "".join(traceback.format_exception(exc)))
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass
