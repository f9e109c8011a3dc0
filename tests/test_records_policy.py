"""One rule for every primitive (records.OUTCOME_POLICY): a call that cannot wait — a
try-acquire, or a timeout of 0 or less — is a look, never recorded as ``blocked`` and
never as a timeout, whichever primitive it is made on; a bounded wait that really waited
and did not get what it waited for is a timeout."""

import threading as std

import pytest

import tracethread as tt
from tracethread._core.records import OUTCOME_POLICY
from test_summaries import SummarySink
from tracethread.testing import capture, wait_until_blocked


def _held(make):
    """A primitive held by another thread for the duration of the with block."""
    prim = make()
    taken, done = std.Event(), std.Event()

    def hold():
        prim.acquire()
        taken.set()
        done.wait()
        prim.release()

    t = std.Thread(target=hold)
    t.start()
    taken.wait()
    return prim, lambda: (done.set(), t.join())


def _lock_try(make, **kw):
    prim, finish = _held(make)
    try:
        with capture() as got:
            assert prim.acquire(**kw) is False
    finally:
        finish()
    return got


def _condition_look(timeout):
    cond = tt.Condition()
    with cond:
        with capture() as got:
            assert cond.wait(timeout) is False
    return [r for r in got if r.op == "condition.wait"]


def _semaphore_look(timeout):
    sem = tt.Semaphore(0)
    with capture() as got:
        assert sem.acquire(timeout=timeout) is False
    return got


def _event_look(timeout):
    event = tt.Event()
    with capture() as got:
        assert event.wait(timeout) is False
    return [r for r in got if r.op == "event.wait"]


def _join_look(timeout):
    go = std.Event()
    t = tt.Thread(target=go.wait)
    t.start()
    try:
        with capture() as got:
            t.join(timeout)
            assert t.is_alive()
    finally:
        go.set()
        t.join()
    return [r for r in got if r.op == "thread.join"]


LOOKS = {
    "Lock.acquire(False)": lambda: _lock_try(tt.Lock, blocking=False),
    "Lock.acquire(timeout=0)": lambda: _lock_try(tt.Lock, timeout=0),
    "RLock.acquire(False)": lambda: _lock_try(tt.RLock, blocking=False),
    "RLock.acquire(timeout=0)": lambda: _lock_try(tt.RLock, timeout=0),
    "Condition.wait(0)": lambda: _condition_look(0),
    "Condition.wait(-1)": lambda: _condition_look(-1),
    "Semaphore.acquire(timeout=0)": lambda: _semaphore_look(0),
    "Semaphore.acquire(timeout=-1.5)": lambda: _semaphore_look(-1.5),
    "Event.wait(0)": lambda: _event_look(0),
    "Event.wait(-1)": lambda: _event_look(-1),
    "Thread.join(0)": lambda: _join_look(0),
}


@pytest.mark.parametrize("call", sorted(LOOKS))
def test_a_call_that_cannot_wait_is_a_look_on_every_primitive(call):
    got = LOOKS[call]()
    assert got, f"{call}: nothing recorded"
    for r in got:
        assert r.blocked is False, f"{call}: recorded as blocked: {r}"
        assert r.timed_out is False, f"{call}: recorded as a timeout: {r}"
        assert r.ok is False


def _condition_times_out():
    cond = tt.Condition()
    with cond:
        with capture() as got:
            assert cond.wait(0.01) is False
    return [r for r in got if r.op == "condition.wait"]


def _lock_times_out():
    prim, finish = _held(tt.Lock)
    try:
        with capture() as got:
            assert prim.acquire(timeout=0.01) is False
    finally:
        finish()
    return got


@pytest.mark.parametrize("run", [_condition_times_out, _lock_times_out,
                                 lambda: _semaphore_look(0.01), lambda: _event_look(0.01),
                                 lambda: _join_look(0.01)],
                         ids=["Condition", "Lock", "Semaphore", "Event", "Thread.join"])
def test_a_bounded_wait_that_waited_in_vain_is_a_timeout(run):
    (r,) = run()
    assert r.blocked is True and r.timed_out is True and r.ok is False


def test_the_policy_table_is_the_documented_one():
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "records.md").read_text()
    for rule in OUTCOME_POLICY.values():
        assert rule in doc, f"docs/records.md does not state: {rule}"


def test_a_blocked_waiter_is_not_a_look():
    """The other side of the rule: a wait with no timeout that had to wait is blocked."""
    cond = tt.Condition()
    with capture() as got:
        def waiter():
            with cond:
                cond.wait()
        t = tt.Thread(target=waiter)
        t.start()
        wait_until_blocked(cond)
        with cond:
            cond.notify()
        t.join()
    (r,) = [r for r in got if r.op == "condition.wait"]
    assert r.blocked is True and r.ok is True and r.timed_out is False


@pytest.mark.parametrize("make_lock", [tt.Lock, tt.RLock], ids=["Lock", "RLock"])
def test_a_condition_wait_is_recorded_alike_over_a_lock_and_an_rlock(make_lock):
    """The lock's release and re-acquire inside an uncontended ``wait`` follow the rule of
    every release and acquire: counted in the lock's summary while summaries are on, a
    record only when somebody waited (before: 3 records per wait over an RLock, 1 over a
    Lock)."""
    cond = tt.Condition(make_lock(name="the lock"), name="the condition")
    sink = SummarySink()
    tt.add_sink(sink)
    try:
        with cond:
            assert cond.wait(0.001) is False
        tt.flush()
    finally:
        tt.remove_sink(sink)
    ops = [r.op for r in sink.records if r.op != "summary"]
    assert ops == ["condition.wait"]
    # (one summary per drain: the drainer may have run in between)
    summaries = [r.details for r in sink.records
                 if r.op == "summary" and r.primitive.name == "the lock"]
    # the with, and the wait's re-acquire; the wait's release, and the with's
    assert sum(d["acquisitions"] for d in summaries) == 2
    assert sum(d["releases"] for d in summaries) == 2
