"""The record stream: a bounded buffer filled on the hot path, drained to sinks off it.

Design
------
* Hot paths append one plain tuple per operation to ``buffer`` (a ``deque`` with a
  ``maxlen``: ``append`` is atomic under the GIL and never blocks). Each tuple starts with
  a global sequence number from ``itertools.count`` (atomic in C), so records have a total
  order across threads and a drain can tell how many were overwritten before it got to
  them: the gaps in the sequence are the drops, counted in ``stats()['dropped']``.
* A number is taken a moment before its record is appended, and the interpreter may switch
  threads in between: a gap is either a record overwritten (only possible when the buffer
  was full) or one still in flight. A drain that found the buffer full counts the numbers
  below the oldest record left in it as dropped; any other gap is waited for (held back,
  ``GAP_WAIT_S`` at most) and counted only if it never lands. ``flush()`` waits for the
  gaps below what it found, so a busy program's new gaps do not hold it.
* Draining (``flush()``, the background drainer thread while sinks exist, and ``atexit``)
  turns tuples into ``Record`` objects and hands them to the sinks in batches. Draining is
  serialised by a raw lock and runs with the draining thread's ``guard`` set, so whatever a
  sink does with locks (the OTel SDK takes many) is neither recorded nor able to recurse.
* A sink that raises is reported once on stderr and its later errors are only counted:
  the tracer must never break the program it watches.
* Summaries (``summaries.py``) stand in for the operations that neither waited nor woke
  a thread while every sink accepts them.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import sys
import time
from typing import Any, Callable, Protocol

from . import _raw
from . import summaries as _summaries
from ._accel import speedups
from .errors import counters as _counters
from .errors import debugging_sinks
from .records import Record, ThreadState, materialize
from .state import current_state

DEFAULT_BUFFER_SIZE = 65_536
DRAIN_INTERVAL_S = 0.05
DRAIN_CHUNK = 256   # records handed to the sinks at a time
DEFAULT_EXIT_TIMEOUT = 5.0
GAP_WAIT_S = 1.0    # how long a missing number may be in flight before it counts as lost

buffer: collections.deque = collections.deque(maxlen=DEFAULT_BUFFER_SIZE)
# One counter for every record; the C fast paths (if built) own it.
next_seq: Callable[[], int] = (speedups.next_seq if speedups is not None
                               else itertools.count(1).__next__)

_drain_lock = _raw.allocate_lock()
_sinks: list[Any] = []
_delivered = 0          # highest sequence number delivered (or skipped as dropped)
_gap = 0                # first missing number the drains are waiting for
_gap_since = 0.0        # monotonic time it was first seen
_seen = 0               # highest sequence number drained so far
_pending: list = []     # records held back behind a gap
_failed_sinks: set[int] = set()
_drainer_wake = _raw.allocate_lock()
_drainer_running = False
_atexit_registered = False
_deadline = 0.0         # monotonic time after which a drain stops delivering (exit)
_late = [0]             # records a drain stopped short of, past the deadline
dirty = _summaries.dirty
# [bool]: a sink is attached (else nothing is recorded: the hot paths skip what only a
# record carries, a call site, the OTel context). The same list as summaries.counting.
listening: list[bool] = _summaries.counting


class Sink(Protocol):
    """Receives records in order, in batches, on a thread where nothing is recorded."""

    def handle(self, records: list[Record]) -> None: ...


# ---------------------------------------------------------------------------------------
# Sinks and draining

def add_sink(sink: Sink) -> None:
    """Attach a sink. It receives the records of operations from now on."""
    global _atexit_registered, _delivered
    if _sinks:
        _settle()   # records made before the sink existed are not for it
    with _drain_lock:
        _drain_locked()
        if not _sinks:
            # Numbers used while nobody listened are not losses: start counting from here
            # (this number itself is never given to a record).
            _pending.clear()
            _delivered = next_seq()
        _sinks.append(sink)
        # The append first, then recording on: a thread that sees a sink must find the
        # buffer (a number given to a record that went nowhere would hold the drains
        # back GAP_WAIT_S and count as dropped). Removing: the other way round.
        _publish_buffer()
        _summaries.update_aggregation(_sinks)
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_flush_at_exit)
    _ensure_drainer()


def remove_sink(sink: Sink) -> None:
    """Detach a sink after delivering it everything recorded so far."""
    _settle()
    with _drain_lock:
        _drain_locked()
        try:
            _sinks.remove(sink)
        except ValueError:
            pass
        _summaries.update_aggregation(_sinks)
        _publish_buffer()


def sinks() -> tuple:
    return tuple(_sinks)


def exit_timeout() -> float:
    """Seconds the final drain may take (``TRACETHREAD_EXIT_TIMEOUT``, default 5)."""
    try:
        value = float(os.environ.get("TRACETHREAD_EXIT_TIMEOUT", "") or DEFAULT_EXIT_TIMEOUT)
    except ValueError:
        return DEFAULT_EXIT_TIMEOUT
    return value if value >= 0 else DEFAULT_EXIT_TIMEOUT   # (NaN compares False: default)


def flush(timeout: float | None = None) -> None:
    """Deliver every buffered record to the sinks now. With ``timeout`` (seconds), stop
    delivering when it has passed: what is left is counted as dropped and said once on
    stderr (a slow sink must not hold the program's exit)."""
    global _deadline
    if timeout is not None:
        _deadline = time.monotonic() + timeout
        # The drainer may be mid-drain: past the deadline it stops after the sink call it
        # is in (one batch); a sink call that never returns is waited for a second more.
        if not _drain_lock.acquire(True, timeout + 1.0):
            _say_undelivered(len(buffer) + len(_pending) + _late[0], timeout)
            _late[0] = 0
            return
        _drain_lock.release()
    try:
        _settle()
    finally:
        if timeout is not None:
            _deadline = 0.0
            if _late[0]:
                _say_undelivered(_late[0], timeout)
                _late[0] = 0


def _settle() -> None:
    """Drain; then, while a number below the highest one found is missing (its record
    still in flight: taken, not yet appended), drain again until it lands, for
    ``GAP_WAIT_S`` at most (less past an exit deadline); what is still missing then is
    counted as dropped. Records made after the first drain do not hold it."""
    with _drain_lock:
        _drain_locked()
        target = _seen
    if not _pending:
        return
    end = time.monotonic() + GAP_WAIT_S
    if _deadline:
        end = min(end, _deadline)
    while _pending and _delivered < target and time.monotonic() < end:
        time.sleep(0.0005)   # the GIL to the thread whose record is in flight
        with _drain_lock:
            _drain_locked()
    if _pending and _delivered < target:
        with _drain_lock:
            _drain_locked(force_upto=target)


def _flush_at_exit() -> None:
    flush(exit_timeout())


def _say_undelivered(n: int, timeout: float) -> None:
    try:
        sys.stderr.write(f"tracethread: {n} records not delivered to the sinks within the exit "
                         f"timeout ({timeout:g} s, TRACETHREAD_EXIT_TIMEOUT): counted as "
                         "dropped\n")
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


def _drain_locked(force_upto: int = 0) -> None:
    """Deliver buffered records to the sinks in sequence order.

    A sequence number is taken a moment before its record is appended, so a drain can find
    a gap that another thread is about to fill. When the buffer was full, the numbers below
    the oldest record left in it were overwritten: dropped. Records after any other gap are
    held back until it fills, and it counts as dropped only when it is ``GAP_WAIT_S`` old,
    when the held-back records would outgrow the buffer, or when it starts at or below
    ``force_upto``. Sinks thus see every record in order, once."""
    global _delivered, _gap, _gap_since, _seen
    buf = buffer
    full = len(buf) >= (buf.maxlen or 0)   # it may have overwritten records
    popleft = buf.popleft
    raws = _pending[:]
    held = len(raws)
    _pending.clear()
    while True:
        try:
            raws.append(popleft())
        except IndexError:
            break
    if not raws and not dirty:
        return
    # Numbers below the oldest record the full buffer kept were overwritten.
    floor = min(map(_first, raws[held:])) if full and len(raws) > held else 0
    raws.sort(key=_first)
    _counters["records"] += len(raws)
    if raws and raws[-1][0] > _seen:
        _seen = raws[-1][0]
    if not _sinks:  # nobody to deliver to: only keep the numbering in step
        if raws:
            _delivered = max(_delivered, raws[-1][0])
        _summaries.discard()
        return
    out = []
    for i, raw in enumerate(raws):
        n = raw[0]
        if n <= _delivered:
            continue   # landed after a drain counted it dropped: dropped it stays
        if n > _delivered + 1:
            first_missing = _delivered + 1
            if first_missing >= floor and first_missing > force_upto:
                now = time.monotonic()
                if _gap != first_missing:
                    _gap, _gap_since = first_missing, now
                if now - _gap_since < GAP_WAIT_S and len(raws) - i <= (buf.maxlen or 0):
                    _pending.extend(raws[i:])   # in flight: wait for it
                    break
            _counters["dropped"] += n - first_missing
        _delivered = n
        out.append(raw)
    if not out and not dirty:
        return
    st = current_state()
    prev = st.guard
    st.guard = True
    try:
        summaries = _summaries.take(_delivered) if dirty else []
        n = len(out)
        for i in range(0, max(n, 1), DRAIN_CHUNK):
            if _deadline and time.monotonic() > _deadline:
                _counters["dropped"] += n - i   # the exit will not wait for these
                _late[0] += n - i
                break
            records = [materialize(r) for r in out[i:i + DRAIN_CHUNK]]
            last = i + DRAIN_CHUNK >= n
            for sink in tuple(_sinks):
                batch = records
                if last and summaries and getattr(sink, "accepts_summaries", False):
                    batch = records + summaries
                if not batch:
                    continue
                try:
                    sink.handle(batch)
                except BaseException as exc:  # noqa: BLE001 - even SystemExit: a sink
                    _sink_failed(sink, exc)   # must never end the drainer or the program
            if not last:
                # Let the program's threads have the GIL between chunks: a thread woken
                # by a release must not wait out a whole drain (the switch interval).
                time.sleep(0)
    finally:
        st.guard = prev


def _sink_failed(sink: Sink, exc: BaseException) -> None:
    _counters["sink_errors"] += 1
    if debugging_sinks():
        try:
            import traceback
            traceback.print_exception(exc)
        except Exception:  # noqa: BLE001 - stderr may be gone at shutdown
            pass
    key = id(sink)
    if key in _failed_sinks:
        return
    _failed_sinks.add(key)
    try:
        sys.stderr.write(
            f"tracethread: sink {type(sink).__name__} failed and its records are being "
            f"skipped ({type(exc).__name__}: {exc}); further errors are only counted.\n")
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


def _first(raw: tuple) -> int:
    return raw[0]


# Set by the OpenTelemetry exporter: the thread's current OTel context is captured for
# operations that blocked (their spans' parent), and carried into threads at start().
otel_hooks: Any = None  # (get_current, attach, detach) or None


def capture_context() -> Any:
    hooks = otel_hooks
    return hooks[0]() if hooks is not None else None


def set_buffer_size(size: int) -> None:
    """Bound the buffer to ``size`` records (what overflows is dropped and counted)."""
    global buffer
    if size < 1:
        raise ValueError("buffer size must be at least 1")
    _settle()
    with _drain_lock:
        _drain_locked()
        old = buffer
        buffer = collections.deque(maxlen=size)
        _publish_buffer(buffer)
        _pending.extend(old)   # appended since the drain: delivered by the next one
        old.clear()


_buffer_listeners: list[Any] = []


def _discard(raw: tuple) -> None:
    """The record buffer's ``append`` while no sink is attached: nobody would read the
    record (the C paths do not even build one; docs/records.md, "No sink")."""


def append_now() -> Callable[[tuple], None]:
    """What the hot paths append a record with now: the buffer's ``append``, or
    ``_discard`` while no sink is attached."""
    return buffer.append if _sinks else _discard


def on_buffer_change(callback) -> None:
    """Primitives bind the append of ``append_now()`` at import for speed (a global is the
    cheapest lookup); ``callback(append)`` re-binds it when the buffer is resized and when
    the first sink comes or the last one goes."""
    _buffer_listeners.append(callback)


def _publish_buffer(buf: collections.deque | None = None) -> None:
    append = append_now()
    for cb in _buffer_listeners:
        cb(append)


# ---------------------------------------------------------------------------------------
# Background drainer: a raw thread (never in threading.enumerate()), alive while sinks are.

def _ensure_drainer() -> None:
    global _drainer_running
    with _drain_lock:
        if _drainer_running or not _sinks:
            return
        _drainer_running = True
    if not _drainer_wake.locked():
        _drainer_wake.acquire()
    _raw.start_new_thread(_drainer_main, ())


def _drainer_main() -> None:
    global _drainer_running
    st = current_state()
    st.guard = st.internal = True
    st.name = "tracethread-drainer"
    try:
        while True:
            _drainer_wake.acquire(True, DRAIN_INTERVAL_S)
            with _drain_lock:
                if not _sinks:
                    _drainer_running = False
                    return
                _drain_locked()
    except BaseException:  # noqa: BLE001 - interpreter shutdown
        _drainer_running = False


def _after_fork_in_child() -> None:
    global _drain_lock, _drainer_wake, _drainer_running
    _drain_lock = _raw.allocate_lock()
    _drainer_wake = _raw.allocate_lock()
    _drainer_running = False
    if _sinks:
        _ensure_drainer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------------
# Appending one record from a Python path: the C helper if built, else the same in Python.

record: Callable[[str, Any, ThreadState, int | None, Any, bool, int | None, Any, Any], None]
now_ns: Callable[[], int]
if speedups is not None:
    record = speedups.record   # appends through the C module's ``append`` (``_native``)
    now_ns = speedups.now_ns
else:
    from time import monotonic_ns as now_ns

    def record(op: str, info: Any, st: ThreadState, t0: int | None, ok: Any, blocked: bool,
               held: int | None, site: Any, details: Any) -> None:
        """Append one record whose end is now (start ``t0``, or now when None)."""
        if not _sinks:
            return   # (nobody would read it: the C twin makes none either)
        t1 = now_ns()
        buffer.append((next_seq(), op, info, st, t1 if t0 is None else t0, t1, ok, blocked,
                       held, site, details))
