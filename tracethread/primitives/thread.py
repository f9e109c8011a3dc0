"""Thread and Timer.

``Thread`` subclasses the stdlib ``threading.Thread`` so ``threading.enumerate()``,
``current_thread()``, ``main_thread()`` and interpreter shutdown keep working; it records
start, run begin/end (with the exception type, if run raised) and join.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .._core import _raw
from .._core import detect as _detect
from .._core import stream as _stream
from .._core.records import (
    THREAD_JOIN, THREAD_RUN_BEGIN, THREAD_RUN_END, THREAD_START, caller_site, may_wait,
)
from ._base import (
    StdCompatMeta, as_timeout, bind_append, current_state, is_foreign, make_info, now_ns,
    record, seq, std_signature, use_raw,
)
from .event import Event

_append: Any = None   # bound by bind_append (the buffer's, or nothing with no sink)
bind_append(globals())

# The stdlib's Thread, subclassed through its private protocol (_bootstrap_inner, _started,
# _name, _initialized, _daemonic), which its type stubs do not describe.
_StdThread: Any = _raw.StdThread
_D_NO_EXC = (None,)


class Thread(_StdThread, metaclass=StdCompatMeta):
    """``threading.Thread``, recorded (a subclass of it)."""

    _std_twins = (_StdThread,)
    _tt_signature = std_signature(_StdThread, name=False)   # its own name=, as the stdlib's
    if TYPE_CHECKING:
        run: Callable[[], None]   # the stdlib's method, wrapped per instance when it runs

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Thread and use_raw():
            # A thread the tracer's own code starts (the OTel SDK's exporters, a metrics
            # server): a plain stdlib Thread whose every operation stays unrecorded.
            t = _StdThread.__new__(_StdThread)
            t.__init__(*args, **kwargs)
            run = t.run

            def guarded_run() -> None:
                st = current_state()
                st.guard = st.internal = True
                run()

            t.run = guarded_run
            return t
        return super().__new__(cls)

    def __init__(self, group: None = None, target: Callable[..., object] | None = None,
                 name: str | None = None, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, *, daemon: bool | None = None
                 ) -> None:
        if is_foreign(Thread, self):  # Thread.__init__(self) from _DummyThread, Timer, ...
            _StdThread.__init__(self, group, target, name, args, kwargs, daemon=daemon)
            return
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        self._tt_init()

    def _tt_init(self) -> None:
        self._tt_info = make_info("Thread", self._name)
        self._tt_state: Any = None

    @property
    def name(self) -> str:
        """A string used for identification purposes only."""
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        _StdThread.name.fset(self, name)
        info = getattr(self, "_tt_info", None)
        if info is not None:
            info.name = str.__str__(self._name)   # a plain str (a subclass may not be)
        st = getattr(self, "_tt_state", None)
        if st is not None:
            st.name = self._name

    def start(self) -> None:
        if is_foreign(Thread, self):  # Thread.start(self) from a stdlib subclass
            return _StdThread.start(self)
        if "_tt_info" not in self.__dict__:
            # A subclass defined while installed whose __init__ ran the stdlib's (it
            # called threading.Thread.__init__ by name after uninstall()): trace it anyway.
            self._tt_init()
        st = current_state()
        hooks = _stream.otel_hooks
        if hooks is not None and getattr(self, "_otel_context", None) is None:
            # Carry the starter's OTel context into the thread (unless
            # opentelemetry-instrumentation-threading already does: it sets _otel_context).
            self._tt_otel_ctx = hooks[0]()
        if not st.guard and self._initialized and not self._started.is_set():
            # Recorded as it is requested, so it precedes every record of the new thread.
            record(THREAD_START, self._tt_info, st, None, True, False, None, None,
                   (self._daemonic,))
        super().start()

    def _bootstrap_inner(self) -> None:
        st = current_state()
        st.name = self._name
        self._tt_state = st
        run = self.run
        info = self._tt_info

        carried = getattr(self, "_tt_otel_ctx", None)
        hooks = _stream.otel_hooks

        def traced_run() -> None:
            token = hooks[1](carried) if carried is not None and hooks is not None else None
            t0 = now_ns()
            if not st.guard:
                _append((seq(), THREAD_RUN_BEGIN, info, st, t0, t0, True, False,
                                    None, None, (_stream.capture_context(),)))
            try:
                return traced_body(t0)
            finally:
                if token is not None:
                    hooks[2](token)

        def traced_body(t0: int) -> None:
            exc_name = None
            try:
                run()
            except BaseException as exc:
                exc_name = type(exc).__qualname__
                raise
            finally:
                if not st.guard:
                    _append((
                        seq(), THREAD_RUN_END, info, st, t0, now_ns(), exc_name is None, False,
                        None, None,
                        _D_NO_EXC if exc_name is None else (exc_name,)))

        self.run = traced_run
        try:
            super()._bootstrap_inner()
        finally:
            try:
                del self.run
            except AttributeError:
                pass

    def _join_for(self, timeout: float | None) -> bool:
        super().join(timeout)
        return not self.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if is_foreign(Thread, self) or "_tt_info" not in self.__dict__:
            return _StdThread.join(self, timeout)  # a stdlib thread reaching our join
        st = current_state()
        if st.guard or not self._started.is_set() or self is _raw_current():
            return super().join(timeout)  # the stdlib's errors for these cases
        t0 = now_ns()
        alive = self.is_alive()
        listening = _stream.listening[0]   # (no sink: no record, no site)
        site = caller_site(2) if alive and listening else None
        st.waiting = self._tt_info
        st.wait_since = now_ns()
        try:
            suspect = _detect.before_block(st, self, timeout is not None) if alive else None
            if suspect is None:
                super().join(timeout)
            else:   # a wait-for cycle another thread could still break: confirm it
                _detect.wait_confirming(st, self, suspect, self._join_for)
        finally:
            st.blocked_on = None
            st.waiting = None
        # join(0) (a timeout <= 0) is a look at the thread, never blocked (OUTCOME_POLICY);
        # the join above took the timeout, so it compares with 0.
        blocked = alive and may_wait(timeout)
        if not listening:
            return
        _append((seq(), THREAD_JOIN, self._tt_info, st, t0,
                               now_ns() if alive else t0, not self.is_alive(), blocked,
                               None, site if blocked else None,
                               (as_timeout(timeout),
                                _stream.capture_context() if blocked else None)))


@dataclass(frozen=True)
class ThreadStatistics:
    name: str
    kind: str
    ident: int | None
    native_id: int | None
    alive: bool
    daemon: bool
    waiting_on: str | None  # name of the primitive it is blocked on, if any


def _thread_statistics(t: Thread) -> ThreadStatistics:
    st = t._tt_state
    waiting = st.waiting if st is not None else None
    return ThreadStatistics(name=t.name, kind="Thread", ident=t.ident,
                            native_id=getattr(t, "native_id", None), alive=t.is_alive(),
                            daemon=t.daemon,
                            waiting_on=waiting.name if waiting is not None else None)


Thread.statistics = _thread_statistics  # type: ignore[attr-defined]


def _raw_current() -> Any:
    return _raw.std_active.get(_raw.get_ident())


class Timer(Thread):
    """Call a function after a specified number of seconds::

        t = Timer(30.0, f, args=None, kwargs=None)
        t.start()
        t.cancel()     # stop the timer's action if it's still waiting
    """

    _std_twins = (_raw.StdTimer,)
    _tt_signature = std_signature(_raw.StdTimer, name=False)

    def __init__(self, interval: float, function: Callable[..., object],
                 args: Iterable[Any] | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> None:
        Thread.__init__(self)
        self.interval = interval
        self.function = function
        self.args = args if args is not None else []
        self.kwargs = kwargs if kwargs is not None else {}
        self.finished = Event(name=f"{self._tt_info.name} (Timer.finished)")

    def cancel(self) -> None:
        """Stop the timer if it hasn't finished yet."""
        self.finished.set()

    def run(self) -> None:
        self.finished.wait(self.interval)
        if not self.finished.is_set():
            self.function(*self.args, **self.kwargs)
        self.finished.set()


Thread.__module__ = Timer.__module__ = "tracethread"
