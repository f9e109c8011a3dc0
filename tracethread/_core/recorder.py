"""The names of the former ``recorder`` module (split into ``state``, ``errors``,
``summaries``, ``stream`` and ``_native``), for code written against it. Functions and
constants only: the record buffer and the context hooks are rebound at run time, so they
are read from ``stream`` itself. New code imports the module that holds the name (inside
the core) or ``api`` (outside it).
"""

from __future__ import annotations

from .errors import count_export_dropped, internal_error, stats  # noqa: F401
from .state import current_state, guarded, is_guarded, new_state, tls  # noqa: F401
from .stream import (  # noqa: F401
    DEFAULT_BUFFER_SIZE, DEFAULT_EXIT_TIMEOUT, DRAIN_CHUNK, DRAIN_INTERVAL_S, Sink, add_sink,
    capture_context, exit_timeout, flush, next_seq, now_ns, on_buffer_change, record,
    remove_sink, set_buffer_size, sinks,
)
from .summaries import (  # noqa: F401
    A_ACQUIRES, A_BUCKET_SUMS, A_BUCKETS, A_CLEARS, A_FAILURES, A_HOLD_MAX, A_HOLD_MIN,
    A_HOLD_SUM, A_INNER_RELEASES, A_LAST, A_NOTIFIES, A_POLLS, A_REENTRIES, A_RELEASES,
    A_SEM_RELEASES, A_SETS, A_THREADS, SUMMARY_OPERATION_KEYS, agg_lock, aggregating, bump,
    dirty, py_count, py_count_hold, py_take, py_touch,
)

import sys as _sys  # noqa: E402
import types as _types  # noqa: E402

from . import stream as _stream  # noqa: E402

_LIVE = ("otel_hooks", "buffer")   # rebound at run time: read and set in ``stream``


class _Forwarding(_types.ModuleType):
    def __getattr__(self, name: str):
        if name in _LIVE:
            return getattr(_stream, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in _LIVE:
            setattr(_stream, name, value)
        else:
            super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Forwarding
