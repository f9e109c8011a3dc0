"""The core's public face for the layers above it: exporters, the CLI, the pytest plugin and
the testing helpers import this module and nothing else of ``_core`` (a test checks it).

Everything here is a function, a class or a constant: no layer above reads or assigns a
module global of the core. What they used to poke at, and what replaced it:

- ``detect.graph`` (the lock-order graph itself) -> ``graph_snapshot()``, ``graph_stats()``
- ``watchdog.states`` (every thread's state) -> ``waiting_primitives()``
- ``recorder.otel_hooks = ...`` (the former module) -> ``set_context_hooks(...)``
- ``findings.fatal_hooks.append(...)`` -> ``on_fatal(...)``
- ``detect.context = ...`` -> ``set_test_context(...)``
"""

from __future__ import annotations

from typing import Any, Callable

from . import detect as _detect
from . import findings as _findings
from . import state as _state
from . import stream as _stream
from . import watchdog as _watchdog
from .detect import GraphSnapshot, GraphNode, GraphEdge, code_name
from .findings import (
    DeadlockError, EdgeRef, Finding, Frame, LockRef, PotentialDeadlockWarning, ThreadRef,
    findings, literal, withdrawn,
)
from .lockorder import Cycle, LockOrderGraph
from .errors import count_export_dropped, internal_error
from .errors import stats as recorder_stats
from .state import guarded, is_guarded
from .stream import Sink, add_sink, capture_context, exit_timeout, flush, remove_sink, sinks
from .summaries import SUMMARY_OPERATION_KEYS
from .records import (
    ALL_OPS, DURATION_BUCKETS, PrimitiveInfo, Record, Site, ThreadInfo,
)
from .findings import flush_stdio
from ._raw import allocate_lock as raw_lock
from ._raw import start_new_thread as start_raw_thread
# The operation names (``Record.op``): sinks compare with these, never with literals.
from .records import (
    BARRIER_ABORT, BARRIER_RESET, BARRIER_WAIT, CONDITION_NOTIFY, CONDITION_NOTIFY_ALL,
    CONDITION_WAIT, EVENT_CLEAR, EVENT_SET, EVENT_WAIT, FINDING, LOCK_ACQUIRE, LOCK_RELEASE,
    RLOCK_ACQUIRE, RLOCK_RELEASE, SEMAPHORE_ACQUIRE, SEMAPHORE_RELEASE, SUMMARY, THREAD_JOIN,
    THREAD_RUN_BEGIN, THREAD_RUN_END, THREAD_START,
)

__all__ = [
    "ALL_OPS", "Cycle", "DURATION_BUCKETS", "DeadlockError", "EdgeRef", "Finding", "Frame",
    "GraphEdge", "GraphNode", "GraphSnapshot", "LockOrderGraph", "LockRef",
    "PotentialDeadlockWarning", "PrimitiveInfo", "Record", "SUMMARY_OPERATION_KEYS", "Sink",
    "Site", "ThreadInfo", "ThreadRef", "add_sink", "capture_context", "count_export_dropped",
    "code_name", "exit_timeout", "findings", "flush", "graph_snapshot", "graph_stats", "guarded",
    "internal_error", "is_guarded", "literal", "on_fatal", "recorder_stats", "remove_sink",
    "hangs_over", "set_context_hooks", "set_live_writer", "set_test_context", "sinks",
    "waiting_primitives", "withdrawn",
    "flush_stdio", "raw_lock", "start_raw_thread",
    "BARRIER_ABORT", "BARRIER_RESET", "BARRIER_WAIT", "CONDITION_NOTIFY",
    "CONDITION_NOTIFY_ALL", "CONDITION_WAIT", "EVENT_CLEAR", "EVENT_SET", "EVENT_WAIT",
    "FINDING", "LOCK_ACQUIRE", "LOCK_RELEASE", "RLOCK_ACQUIRE", "RLOCK_RELEASE",
    "SEMAPHORE_ACQUIRE", "SEMAPHORE_RELEASE", "SUMMARY", "THREAD_JOIN", "THREAD_RUN_BEGIN",
    "THREAD_RUN_END", "THREAD_START",
]


def graph_snapshot() -> GraphSnapshot:
    """The lock-order graph as it is now: nodes as the report names them, edges, and
    whether the graph reached its cap."""
    return _detect.snapshot()


def graph_stats() -> dict[str, int]:
    """``nodes``, ``edges``, ``cycles`` and ``not_kept`` (new edges left out at the cap)."""
    with _detect._graph_lock:
        return _detect.graph.stats()


def waiting_primitives() -> list[PrimitiveInfo]:
    """What each thread is blocked on now (one entry per waiting thread)."""
    out = []
    for st in list(_state.states):
        info = st.waiting
        if info is not None:
            out.append(info)
    return out


def set_context_hooks(hooks: tuple[Callable[[], Any], Callable[[Any], Any],
                                   Callable[[Any], None]] | None) -> None:
    """``(get_current, attach, detach)`` of a context API (OpenTelemetry's): the current
    context is captured for operations that blocked and carried into new threads. None:
    off."""
    _stream.otel_hooks = hooks


def on_fatal(callback: Callable[[int], Any]) -> None:
    """Call ``callback(status)`` before the tracer ends the process (policy "exit")."""
    _findings.fatal_hooks.append(callback)


def hangs_over() -> None:
    """Say now of each hang reported whose wait has ended since (before a final report:
    its finding's ``recovered_after_s``)."""
    _watchdog.hangs_over()


def set_live_writer(writer: Callable[[str], None] | None) -> None:
    """Where deadlock and hang reports are written the moment they are found (text
    ending in a newline, from any thread): ``writer``, or stderr when None."""
    _findings.live_writer[0] = writer if writer is not None else _findings._to_stderr


def set_test_context(text: str) -> None:
    """What is running now (a pytest test id): new lock-order edges remember it."""
    _detect.context = text
