"""Bad calls raise what the stdlib raises: the same exception type and the same message.

Every case below is one call, made once against the running interpreter's ``threading``
and once against ``tracethread``; both must end the same way: the same exception type and
message, or both return (and then the same plain value, where the case returns one).
Warnings are errors while a case runs, so a DeprecationWarning the stdlib gives (3.13's
``RLock(1)``) must be given too. The expected outcome is never written down: what the
stdlib does on this interpreter is the expectation (3.10, 3.11 and 3.13 differ: 3.13's lock
takes ``blocking='yes'``, 3.11's refuses it; 3.13's Barrier refuses 0 parties...).

The one normalisation: a message that names the stdlib lock's own class (its methods are
``lock.release`` and so on: the C type ``_thread.lock``) is compared with that name read
as ``Lock``, the class tracethread's messages name. Nothing else is rewritten. (RLock's C
type is ``_thread.RLock``, named ``RLock`` in its messages, as tracethread's is: the
comparison is exact; the stdlib's pure-Python ``_PyRLock`` is not what
``threading.RLock()`` gives, and is not the reference.)

The matrix runs in this process on whichever fast paths are loaded (C, unless
``TRACETHREAD_PURE_PYTHON=1``), and the C run also runs it on the pure-Python paths in a
subprocess (the choice is made at import).
"""

import math
import os
import re
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

import tracethread
from tracethread._core._accel import speedups

HERE = Path(__file__).parent

# The stdlib's classes, taken now (a test elsewhere may install() tracethread for a while).
STD = SimpleNamespace(**{n: getattr(threading, n) for n in (
    "Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier",
    "Thread", "Timer", "TIMEOUT_MAX")})
OURS = SimpleNamespace(**{n: getattr(tracethread, n) for n in vars(STD)})

_STD_LOCK_NAME = type(threading.Lock()).__qualname__   # "lock"


def _normalise(message):
    """The stdlib message, with its lock type's name (``lock.release()``) read as ours."""
    return re.sub(rf"\b{re.escape(_STD_LOCK_NAME)}\.", "Lock.", message)


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return "<object>"


def _outcome(case, m):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                value = case(m)
            except BaseException as exc:  # noqa: BLE001 - whatever it is, it must be the same
                return ("raises", type(exc), str(exc))
        return ("returns", _plain(value))
    finally:
        # Cases leave locks acquired and drop them: forget them, or every later test in
        # this thread would hold them (their lock-order cycles would all be "guarded").
        from tracethread._core.state import current_state
        st = current_state()
        st.held.clear()
        st.held_sites.clear()


# ---- helpers for the cases ---------------------------------------------------------

def _held(lock):
    lock.acquire()
    return lock


def _owned_condition(m, *args):
    cond = m.Condition(*args)
    cond.acquire()
    return cond


def _finished_thread(m):
    t = m.Thread(target=lambda: None)
    t.start()
    t.join()
    return t


def _run_timer(m, *args, **kwargs):
    t = m.Timer(*args, **kwargs)
    t.run()          # in this thread: the timer's own code, no thread started
    return t


NAN, INF = math.nan, math.inf

CASES = {
    # -- Lock(): construction --------------------------------------------------------
    "Lock(1)": lambda m: m.Lock(1),
    "Lock(None)": lambda m: m.Lock(None),
    "Lock(x=1)": lambda m: m.Lock(x=1),
    "Lock(1, x=1)": lambda m: m.Lock(1, x=1),
    # -- Lock.acquire: blocking ------------------------------------------------------
    "acquire(blocking='yes')": lambda m: m.Lock().acquire(blocking="yes"),
    "acquire(blocking=None)": lambda m: m.Lock().acquire(blocking=None),
    "acquire(1.5)": lambda m: m.Lock().acquire(1.5),
    "acquire(2**40)": lambda m: m.Lock().acquire(2 ** 40),
    "acquire([])": lambda m: m.Lock().acquire([]),
    "acquire(0) on a held lock": lambda m: _held(m.Lock()).acquire(0),
    "acquire(False, -1)": lambda m: m.Lock().acquire(False, -1),
    "acquire(False, -1.0)": lambda m: m.Lock().acquire(False, -1.0),
    "acquire(False, 1)": lambda m: m.Lock().acquire(False, 1),
    "acquire(0, 0)": lambda m: m.Lock().acquire(0, 0),
    "acquire(False, 'x')": lambda m: m.Lock().acquire(False, "x"),
    "acquire('yes', 'x')": lambda m: m.Lock().acquire("yes", "x"),
    # -- Lock.acquire: timeout -------------------------------------------------------
    "acquire(timeout='x')": lambda m: m.Lock().acquire(timeout="x"),
    "acquire(timeout=None)": lambda m: m.Lock().acquire(timeout=None),
    "acquire(timeout=1j)": lambda m: m.Lock().acquire(timeout=1j),
    "acquire(timeout=nan)": lambda m: m.Lock().acquire(timeout=NAN),
    "acquire(timeout=inf)": lambda m: m.Lock().acquire(timeout=INF),
    "acquire(timeout=-inf)": lambda m: m.Lock().acquire(timeout=-INF),
    "acquire(timeout=10**100)": lambda m: m.Lock().acquire(timeout=10 ** 100),
    "acquire(timeout=1e100)": lambda m: m.Lock().acquire(timeout=1e100),
    "acquire(timeout=TIMEOUT_MAX*2)": lambda m: m.Lock().acquire(timeout=m.TIMEOUT_MAX * 2),
    "acquire(timeout=-2)": lambda m: m.Lock().acquire(timeout=-2),
    "acquire(timeout=-0.5)": lambda m: m.Lock().acquire(timeout=-0.5),
    "acquire(timeout=True)": lambda m: m.Lock().acquire(timeout=True),
    "acquire(timeout=0) on a held lock": lambda m: _held(m.Lock()).acquire(timeout=0),
    # -- Lock.acquire: the call's shape ----------------------------------------------
    "acquire(foo=1)": lambda m: m.Lock().acquire(foo=1),
    "acquire(1, 2, 3)": lambda m: m.Lock().acquire(1, 2, 3),
    "acquire(True, -1, foo=1)": lambda m: m.Lock().acquire(True, -1, foo=1),
    "acquire(True, blocking=True)": lambda m: m.Lock().acquire(True, blocking=True),
    "acquire(True, -1, timeout=1)": lambda m: m.Lock().acquire(True, -1, timeout=1),
    "acquire(blocking=1, foo=2)": lambda m: m.Lock().acquire(blocking=1, foo=2),
    # -- Lock: the other methods -----------------------------------------------------
    "release(1)": lambda m: _held(m.Lock()).release(1),
    "release(x=1)": lambda m: _held(m.Lock()).release(x=1),
    "release() unlocked": lambda m: m.Lock().release(),
    "locked(1)": lambda m: m.Lock().locked(1),
    "locked(x=1)": lambda m: m.Lock().locked(x=1),
    "__exit__() unlocked": lambda m: m.Lock().__exit__(),
    "__exit__(None, None, None)": lambda m: _held(m.Lock()).__exit__(None, None, None),
    # -- RLock -----------------------------------------------------------------------
    "RLock(1)": lambda m: m.RLock(1),
    "RLock(x=1)": lambda m: m.RLock(x=1),
    "RLock(1, 2, x=3)": lambda m: m.RLock(1, 2, x=3),
    "RLock acquire(blocking='yes')": lambda m: m.RLock().acquire(blocking="yes"),
    "RLock acquire(blocking=None)": lambda m: m.RLock().acquire(blocking=None),
    "RLock acquire(1.5)": lambda m: m.RLock().acquire(1.5),
    "RLock owned acquire(blocking='yes')": lambda m: _held(m.RLock()).acquire(blocking="yes"),
    "RLock owned acquire(timeout='x')": lambda m: _held(m.RLock()).acquire(timeout="x"),
    "RLock owned acquire(False, 1)": lambda m: _held(m.RLock()).acquire(False, 1),
    "RLock acquire(foo=1)": lambda m: m.RLock().acquire(foo=1),
    "RLock acquire(1, 2, 3)": lambda m: m.RLock().acquire(1, 2, 3),
    "RLock acquire(True, blocking=True)": lambda m: m.RLock().acquire(True, blocking=True),
    "RLock acquire(timeout='x')": lambda m: m.RLock().acquire(timeout="x"),
    "RLock acquire(timeout=None)": lambda m: m.RLock().acquire(timeout=None),
    "RLock acquire(timeout=nan)": lambda m: m.RLock().acquire(timeout=NAN),
    "RLock acquire(timeout=inf)": lambda m: m.RLock().acquire(timeout=INF),
    "RLock acquire(timeout=10**100)": lambda m: m.RLock().acquire(timeout=10 ** 100),
    "RLock acquire(timeout=-2)": lambda m: m.RLock().acquire(timeout=-2),
    "RLock acquire(False, 1)": lambda m: m.RLock().acquire(False, 1),
    "RLock acquire(False, -1)": lambda m: m.RLock().acquire(False, -1),
    "RLock release(1)": lambda m: _held(m.RLock()).release(1),
    "RLock release(x=1)": lambda m: _held(m.RLock()).release(x=1),
    "RLock release() unowned": lambda m: m.RLock().release(),
    "RLock __exit__() unowned": lambda m: m.RLock().__exit__(),
    # -- Condition -------------------------------------------------------------------
    "Condition(1, 2)": lambda m: m.Condition(1, 2),
    "Condition(foo=1)": lambda m: m.Condition(foo=1),
    "Condition(lock=1)": lambda m: m.Condition(lock=1),
    "Condition(object())": lambda m: m.Condition(object()),
    "Condition wait() un-acquired": lambda m: m.Condition().wait(),
    "Condition wait('x')": lambda m: _owned_condition(m).wait("x"),
    "Condition wait(None, 1)": lambda m: _owned_condition(m).wait(None, 1),
    "Condition wait(foo=1)": lambda m: _owned_condition(m).wait(foo=1),
    "Condition wait(-1)": lambda m: _owned_condition(m).wait(-1),
    "Condition wait(nan)": lambda m: _owned_condition(m).wait(NAN),
    "Condition wait(10**400)": lambda m: _owned_condition(m).wait(10 ** 400),
    "Condition wait(1e100)": lambda m: _owned_condition(m).wait(1e100),
    "Condition over Lock wait('x')": lambda m: _owned_condition(m, m.Lock()).wait("x"),
    "Condition wait_for(1)": lambda m: _owned_condition(m).wait_for(1),
    "Condition wait_for()": lambda m: _owned_condition(m).wait_for(),
    "Condition wait_for(f, 'x')": lambda m: _owned_condition(m).wait_for(lambda: 0, "x"),
    "Condition wait_for(f, -1)": lambda m: _owned_condition(m).wait_for(lambda: 0, -1),
    "Condition notify('x')": lambda m: _owned_condition(m).notify("x"),
    "Condition notify(-1)": lambda m: _owned_condition(m).notify(-1),
    "Condition notify(1, 2)": lambda m: _owned_condition(m).notify(1, 2),
    "Condition notify(foo=1)": lambda m: _owned_condition(m).notify(foo=1),
    "Condition notify_all(1)": lambda m: _owned_condition(m).notify_all(1),
    "Condition notify() un-acquired": lambda m: m.Condition().notify(),
    "Condition acquire(foo=1)": lambda m: m.Condition().acquire(foo=1),
    "Condition acquire(1, 2, 3)": lambda m: m.Condition().acquire(1, 2, 3),
    "Condition acquire(blocking='yes')": lambda m: m.Condition().acquire(blocking="yes"),
    "Condition acquire(timeout='x')": lambda m: m.Condition().acquire(timeout="x"),
    "Condition acquire(False, 1)": lambda m: m.Condition().acquire(False, 1),
    "Condition over Lock acquire(foo=1)": lambda m: m.Condition(m.Lock()).acquire(foo=1),
    "Condition release(1)": lambda m: _owned_condition(m).release(1),
    "Condition over Lock release(1)": lambda m: _owned_condition(m, m.Lock()).release(1),
    "Condition release() un-acquired": lambda m: m.Condition().release(),
    # -- Semaphore / BoundedSemaphore ------------------------------------------------
    "Semaphore(-1)": lambda m: m.Semaphore(-1),
    "Semaphore('x')": lambda m: m.Semaphore("x"),
    "Semaphore(None)": lambda m: m.Semaphore(None),
    "Semaphore(1, 2)": lambda m: m.Semaphore(1, 2),
    "Semaphore(foo=1)": lambda m: m.Semaphore(foo=1),
    "Semaphore(1.5)": lambda m: m.Semaphore(1.5)._value,
    "Semaphore acquire(timeout='x')": lambda m: m.Semaphore().acquire(timeout="x"),
    "Semaphore(0) acquire(timeout='x')": lambda m: m.Semaphore(0).acquire(timeout="x"),
    "Semaphore(0) acquire(timeout=-1)": lambda m: m.Semaphore(0).acquire(timeout=-1),
    "Semaphore(0) acquire(timeout=10**400)":
        lambda m: m.Semaphore(0).acquire(timeout=10 ** 400),
    "Semaphore acquire(False, 1)": lambda m: m.Semaphore().acquire(False, 1),
    "Semaphore acquire(blocking=None)": lambda m: m.Semaphore().acquire(blocking=None),
    "Semaphore acquire(foo=1)": lambda m: m.Semaphore().acquire(foo=1),
    "Semaphore acquire(1, 2, 3)": lambda m: m.Semaphore().acquire(1, 2, 3),
    "Semaphore release(0)": lambda m: m.Semaphore().release(0),
    "Semaphore release('x')": lambda m: m.Semaphore().release("x"),
    "Semaphore release(None)": lambda m: m.Semaphore().release(None),
    "Semaphore release(1.5)": lambda m: m.Semaphore().release(1.5),
    "Semaphore release(1, 2)": lambda m: m.Semaphore().release(1, 2),
    "BoundedSemaphore(-5)": lambda m: m.BoundedSemaphore(-5),
    "BoundedSemaphore('x')": lambda m: m.BoundedSemaphore("x"),
    "BoundedSemaphore(1, 2)": lambda m: m.BoundedSemaphore(1, 2),
    "BoundedSemaphore over-release": lambda m: m.BoundedSemaphore(1).release(),
    "BoundedSemaphore release(1.5)": lambda m: (lambda s: (s.acquire(), s.acquire(),
                                                           s.release(1.5)))(
        m.BoundedSemaphore(3)),
    # -- Event -----------------------------------------------------------------------
    "Event(1)": lambda m: m.Event(1),
    "Event(flag=True)": lambda m: m.Event(flag=True),
    "Event wait('x')": lambda m: m.Event().wait("x"),
    "Event set wait('x')": lambda m: (lambda e: (e.set(), e.wait("x")))(m.Event()),
    "Event wait(-1)": lambda m: m.Event().wait(-1),
    "Event wait(10**400)": lambda m: m.Event().wait(10 ** 400),
    "Event set wait(10**400)": lambda m: (lambda e: (e.set(), e.wait(10 ** 400)))(m.Event()),
    "Event wait(nan)": lambda m: m.Event().wait(NAN),
    "Event wait(1, 2)": lambda m: m.Event().wait(1, 2),
    "Event set(1)": lambda m: m.Event().set(1),
    "Event clear(1)": lambda m: m.Event().clear(1),
    "Event is_set(1)": lambda m: m.Event().is_set(1),
    # -- Barrier ---------------------------------------------------------------------
    "Barrier()": lambda m: m.Barrier(),
    "Barrier('x')": lambda m: m.Barrier("x"),
    "Barrier(0)": lambda m: m.Barrier(0),
    "Barrier(-1)": lambda m: m.Barrier(-1),
    "Barrier(2, None, None, 4)": lambda m: m.Barrier(2, None, None, 4),
    "Barrier(2, foo=1)": lambda m: m.Barrier(2, foo=1),
    "Barrier(1, action=1) wait": lambda m: m.Barrier(1, action=1).wait(),
    "Barrier(2, timeout='x') wait": lambda m: m.Barrier(2, timeout="x").wait(),
    "Barrier(2, timeout=-1) wait": lambda m: m.Barrier(2, timeout=-1).wait(),
    "Barrier(1) wait('x')": lambda m: m.Barrier(1).wait("x"),
    "Barrier(2) wait('x')": lambda m: m.Barrier(2).wait("x"),
    "Barrier(2) wait(-1)": lambda m: m.Barrier(2).wait(-1),
    "Barrier(2) wait(10**400)": lambda m: m.Barrier(2).wait(10 ** 400),
    "Barrier wait(1, 2)": lambda m: m.Barrier(1).wait(1, 2),
    "Barrier reset(1)": lambda m: m.Barrier(1).reset(1),
    "Barrier abort(1)": lambda m: m.Barrier(1).abort(1),
    "Barrier broken wait": lambda m: (lambda b: (b.abort(), b.wait()))(m.Barrier(2)),
    # -- Thread ----------------------------------------------------------------------
    "Thread(1)": lambda m: m.Thread(1),
    "Thread(7 positional)": lambda m: m.Thread(None, None, None, (), None, None),
    "Thread(foo=1)": lambda m: m.Thread(foo=1),
    "Thread(target=1) run": lambda m: m.Thread(target=1).run(),
    "Thread(args=1) run": lambda m: m.Thread(target=print, args=1).run(),
    "Thread(kwargs=1) run": lambda m: m.Thread(target=print, kwargs=1).run(),
    "Thread(name=1).name": lambda m: m.Thread(name=1).name,
    "Thread(daemon=1).daemon": lambda m: m.Thread(daemon=1).daemon,
    "Thread start(1)": lambda m: m.Thread().start(1),
    "Thread join() unstarted": lambda m: m.Thread().join(),
    "Thread join('x') finished": lambda m: _finished_thread(m).join("x"),
    "Thread join(10**400) finished": lambda m: _finished_thread(m).join(10 ** 400),
    "Thread join(-1) finished": lambda m: _finished_thread(m).join(-1),
    "Thread join(1, 2)": lambda m: _finished_thread(m).join(1, 2),
    "Thread start twice": lambda m: _finished_thread(m).start(),
    # -- Timer -----------------------------------------------------------------------
    "Timer()": lambda m: m.Timer(),
    "Timer(1)": lambda m: m.Timer(1),
    "Timer(1, f, foo=1)": lambda m: m.Timer(1, print, foo=1),
    "Timer(1, f, name='t')": lambda m: m.Timer(1, print, name="t"),
    "Timer(5 positional)": lambda m: m.Timer(1, print, (), {}, 5),
    "Timer('x', f) run": lambda m: _run_timer(m, "x", list),
    "Timer(0, 1) run": lambda m: _run_timer(m, 0, 1),
    "Timer(0, f, args=1) run": lambda m: _run_timer(m, 0, print, args=1),
    "Timer(-1, f) run": lambda m: _run_timer(m, -1, list).finished.is_set(),
    "Timer cancel(1)": lambda m: m.Timer(1, print).cancel(1),
}


def test_the_matrix_is_large():
    assert len(CASES) >= 60
    if os.environ.get("TRACETHREAD_PURE_PYTHON", "") not in ("", "0"):
        assert speedups is None, "TRACETHREAD_PURE_PYTHON=1 must disable the C fast paths"


@pytest.mark.parametrize("label", list(CASES))
def test_bad_calls_end_as_in_the_stdlib(label):
    case = CASES[label]
    std = _outcome(case, STD)
    ours = _outcome(case, OURS)
    if std[0] == "raises":
        std = (std[0], std[1], _normalise(std[2]))
    assert ours == std, f"{label}: stdlib {std!r}, tracethread {ours!r}"


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13 deprecated RLock's arguments")
def test_rlock_arguments_warn_at_the_callers_line():
    for rlock in (STD.RLock, OURS.RLock):
        with pytest.warns(DeprecationWarning) as caught:
            rlock(1)
        assert caught[0].filename == __file__, rlock
