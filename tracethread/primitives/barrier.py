"""Barrier: the stdlib's implementation on a raw condition; every pass (arrival index,
broken or not), reset and abort recorded."""

from __future__ import annotations

import sys
from typing import Any, Callable

from .._core import _raw
from .._core import stream as _stream
from .._core.records import BARRIER_ABORT, BARRIER_RESET, BARRIER_WAIT, caller_site
from ._base import (
    BarrierStatistics, StdCompatMeta, as_timeout, current_state, make_info, now_ns, record,
    std_signature, use_raw,
)

_listening = _stream.listening   # [bool]: a sink is attached

# The stdlib's class itself: `except threading.BrokenBarrierError` must catch ours.
BrokenBarrierError = _raw.BrokenBarrierError


# Barrier(0) is refused from Python 3.13 on; earlier stdlibs accept it.
_PARTIES_CHECKED = sys.version_info >= (3, 13)


class Barrier(metaclass=StdCompatMeta):
    """``threading.Barrier``, recorded. Accepts ``name=``."""

    _std_twins = (_raw.StdBarrier,)
    _tt_signature = std_signature(_raw.StdBarrier)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Barrier and use_raw():
            kwargs.pop("name", None)
            return _raw.StdBarrier(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, parties: int, action: Callable[[], Any] | None = None,
                 timeout: float | None = None, *, name: str | None = None) -> None:
        if _PARTIES_CHECKED and parties < 1:  # the running interpreter's behaviour
            raise ValueError("parties must be > 0")
        self._cond = _raw.StdCondition(_raw.allocate_lock())
        self._action = action
        self._timeout = timeout
        self._parties = parties
        self._state = 0  # 0 filling, 1 draining, -1 resetting, -2 broken
        self._count = 0
        self._info = make_info("Barrier", name)

    def __repr__(self) -> str:
        cls = self.__class__
        if self.broken:
            return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: broken>"
        return (f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}:"
                f" waiters={self.n_waiting}/{self.parties}>")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the barrier; returns this thread's arrival index (0 to parties-1)."""
        st = current_state()
        t0 = now_ns()
        recording = not st.guard and _listening[0]   # (no sink: no record, no site)
        site = caller_site(2) if recording else None
        index = None
        passed = False
        try:
            index = self._wait_impl(st, timeout)
            passed = True
            return index
        finally:
            if recording:
                record(BARRIER_WAIT, self._info, st, t0, passed,
                       not (passed and index is not None and index + 1 == self._parties),
                       None, site,
                       (index, self._parties, not passed,
                        as_timeout(timeout),
                        _stream.capture_context()))

    def _wait_impl(self, st: Any, timeout: float | None) -> int:
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            st.waiting = self._info
            st.wait_since = now_ns()
            st.wait_bounded = timeout is not None
            try:
                self._enter()  # Block while the barrier drains.
                index = self._count
                self._count += 1
                try:
                    if index + 1 == self._parties:
                        # We release the barrier
                        self._release()
                    else:
                        # We wait until someone releases us
                        self._wait(timeout)
                    return index
                finally:
                    self._count -= 1
                    # Wake up any threads waiting for barrier to drain.
                    self._exit()
            finally:
                st.waiting = None

    # Block until the barrier is ready for us, or raise an exception
    # if it is broken.
    def _enter(self) -> None:
        while self._state in (-1, 1):
            # It is draining or resetting, wait until done
            self._cond.wait()
        # see if the barrier is in a broken state
        if self._state < 0:
            raise BrokenBarrierError
        assert self._state == 0

    # Optionally run the 'action' and release the threads waiting
    # in the barrier.
    def _release(self) -> None:
        try:
            if self._action:
                self._action()
            # enter draining state
            self._state = 1
            self._cond.notify_all()
        except:  # noqa: E722 - the stdlib breaks the barrier on any exception
            # an exception during the _action handler.  Break and reraise
            self._break()
            raise

    # Wait in the barrier until we are released.  Raise an exception
    # if the barrier is reset or broken.
    def _wait(self, timeout: float | None) -> None:
        if not self._cond.wait_for(lambda: self._state != 0, timeout):
            # timed out.  Break the barrier
            self._break()
            raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError
        assert self._state == 1

    # If we are the last thread to exit the barrier, signal any threads
    # waiting for the barrier to drain.
    def _exit(self) -> None:
        if self._count == 0:
            if self._state in (-1, 1):
                # resetting or draining
                self._state = 0
                self._cond.notify_all()

    def reset(self) -> None:
        """Reset the barrier to the initial state; waiting threads get BrokenBarrierError."""
        with self._cond:
            if self._count > 0:
                if self._state == 0:
                    # reset the barrier, waking up threads
                    self._state = -1
                elif self._state == -2:
                    # was broken, set it to reset state
                    # which clears when the last thread exits
                    self._state = -1
            else:
                self._state = 0
            self._cond.notify_all()
        self._record(BARRIER_RESET)

    def abort(self) -> None:
        """Place the barrier into a 'broken' state."""
        with self._cond:
            self._break()
        self._record(BARRIER_ABORT)

    def _record(self, op: str) -> None:
        st = current_state()
        if not st.guard:
            record(op, self._info, st, None, True, False, None, None, (self._parties,))

    def _break(self) -> None:
        # An internal error was detected.  The barrier is set to
        # a broken state all parties awakened.
        self._state = -2
        self._cond.notify_all()

    @property
    def parties(self) -> int:
        """Return the number of threads required to trip the barrier."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """Return the number of threads currently waiting at the barrier."""
        if self._state == 0:
            return self._count
        return 0

    @property
    def broken(self) -> bool:
        """Return True if the barrier is in a broken state."""
        return self._state == -2

    def statistics(self) -> BarrierStatistics:
        return BarrierStatistics(name=self._info.name, kind="Barrier", parties=self._parties,
                                 n_waiting=self.n_waiting, broken=self.broken)

    @property
    def name(self) -> str:
        return self._info.name


Barrier.__module__ = "tracethread"
