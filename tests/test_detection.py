"""Live detection with real threads: each rule of the detection model, and the traps that
must stay silent. Scenarios that deadlock for real run in a subprocess with a timeout."""

import gc
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import tracethread
from tracethread import testing

TIMEOUT = 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def potential():
    return tracethread.findings("potential-deadlock")


def run_threads(*fns):
    threads = [tracethread.Thread(target=f, name=f"t{i}") for i, f in enumerate(fns, 1)]
    for t in threads:  # one after the other: orders are observed, never deadlock here
        t.start()
        t.join(TIMEOUT)


def run_script(code, timeout=60):
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


# --- potential deadlocks ------------------------------------------------------------

def test_ab_ba_across_threads():
    a, b = tracethread.Lock(name="A"), tracethread.Lock(name="B")

    def ab():
        with a, b:
            pass

    def ba():
        with b, a:
            pass

    with pytest.warns(tracethread.PotentialDeadlockWarning, match="Lock A"):
        run_threads(ab, ba)
    (f,) = potential()
    assert not f.single_thread
    assert sorted(lock.name for lock in f.locks) == ["A", "B"]
    assert {t.name for t in f.threads} == {"t1", "t2"}
    # Each edge remembers where it was first taken.
    assert all(e.stack and e.stack[-1].function in ("ab", "ba") for e in f.edges)
    assert f.locks[0].file.endswith("test_detection.py")


def test_ab_ba_in_one_thread_is_still_a_finding():
    a, b = tracethread.RLock(name="A"), tracethread.Lock(name="B")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with a, b:
            pass
        with b, a:
            pass
    (f,) = potential()
    assert f.single_thread and "within one thread" in f.message
    assert [w.category for w in caught] == [tracethread.PotentialDeadlockWarning]


def test_three_lock_cycle_and_reported_once_with_hits():
    a, b, c = (tracethread.Lock(name=n) for n in "ABC")

    def ab():
        with a, b:
            pass

    def bc():
        with b, c:
            pass

    def ca():
        with c, a:
            pass

    with pytest.warns(tracethread.PotentialDeadlockWarning):
        run_threads(ab, bc, ca)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known cycle warns no more
        run_threads(ca, ab)
    (f,) = potential()
    assert len(f.locks) == 3


def test_thread_holding_200_locks_and_a_cycle_of_30():
    locks = [tracethread.Lock(name=f"L{i:03}") for i in range(200)]
    for lock in locks:
        lock.acquire()
    for lock in reversed(locks):
        lock.release()
    assert potential() == []  # 19,900 edges, all in one order
    ring = [tracethread.Lock(name=f"R{i:02}") for i in range(30)]
    for prev, nxt in zip(ring, ring[1:]):  # a chain R00 -> R01 -> ... -> R29
        with prev, nxt:
            pass
    with pytest.warns(tracethread.PotentialDeadlockWarning):
        with ring[-1], ring[0]:  # R29 -> R00 closes a cycle of 30
            pass
    (f,) = potential()
    assert len(f.locks) == 30 and len(f.edges) == 30


def test_timed_acquires_make_a_lower_severity_finding():
    a, b = tracethread.Lock(name="A"), tracethread.Lock(name="B")
    with pytest.warns(tracethread.PotentialDeadlockWarning, match="can stall"):
        with a:
            assert b.acquire(timeout=1)
            b.release()
        with b:
            assert a.acquire(timeout=1)
            a.release()
    (f,) = potential()
    assert f.bounded


def test_condition_lock_and_semaphore_used_as_a_lock_take_part():
    cond = tracethread.Condition(tracethread.Lock(name="C"))
    sem = tracethread.Semaphore(1, name="S")
    with sem:  # acquired and released by one thread: a mutex
        pass
    with pytest.warns(tracethread.PotentialDeadlockWarning):
        with cond, sem:
            pass
        with sem, cond:
            pass
    assert {lock.name for lock in potential()[0].locks} == {"C", "S"}


# --- traps that must stay silent ----------------------------------------------------

def test_consistent_ordering_hand_over_hand_and_rlock_reentry_are_silent():
    locks = [tracethread.Lock(name=f"N{i}") for i in range(5)]
    r = tracethread.RLock(name="R")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            with locks[0], locks[1], locks[2]:
                pass
            # hand over hand down the list
            locks[0].acquire()
            for prev, nxt in zip(locks, locks[1:]):
                nxt.acquire()
                prev.release()
            locks[-1].release()
            with r:
                with locks[0]:
                    with r:  # re-entry adds no edge back to R
                        pass
    assert potential() == []
    assert tracethread.findings() == []


def test_try_lock_back_off_adds_no_edges():
    a, b = tracethread.Lock(name="A"), tracethread.Lock(name="B")
    with a, b:
        pass
    with b:
        if a.acquire(False):
            a.release()
        if a.acquire(timeout=0):  # cannot wait: a try-lock too
            a.release()
    assert potential() == []


def test_gate_lock_makes_the_cycle_guarded_not_a_deadlock():
    gate, a, b = (tracethread.Lock(name=n) for n in ("G", "A", "B"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with gate, a, b:
            pass
        with gate, b, a:
            pass
    assert potential() == []
    (g,) = tracethread.findings("guarded-cycle")
    assert g.guarded_by == ("Lock G",)


def test_lock_used_as_a_signal_is_not_a_mutex():
    done = tracethread.Lock(name="done")
    other = tracethread.Lock(name="other")
    done.acquire()  # "not done yet"
    with other:
        pass

    def worker():
        with other:
            pass
        done.release()  # signal: released by another thread

    t = tracethread.Thread(target=worker)
    t.start()
    with done:   # wait for the signal
        with other:
            pass
    t.join(TIMEOUT)
    with other:
        with done:
            pass
    assert potential() == []


def test_condition_wait_over_a_plain_lock_is_not_a_self_deadlock():
    cond = tracethread.Condition(tracethread.Lock(name="plain"))
    ready = []

    def notifier():
        with cond:
            ready.append(True)
            cond.notify()

    with cond:
        t = tracethread.Thread(target=notifier)
        t.start()
        assert cond.wait_for(lambda: ready, TIMEOUT)
    t.join(TIMEOUT)
    assert tracethread.findings() == []


def test_graph_nodes_go_away_with_their_locks():
    from tracethread._core import detect
    a, b = tracethread.Lock(), tracethread.Lock()
    with a, b:
        pass
    assert detect.graph.stats()["edges"] == 1
    del a, b
    gc.collect()
    with tracethread.Lock(), tracethread.Lock():  # the next acquire sweeps dead nodes
        pass
    stats = detect.graph.stats()
    assert stats["edges"] == 1 and stats["nodes"] == 2


def test_a_long_held_lock_does_not_keep_the_short_lived_locks_taken_under_it():
    # A lock held while many fresh locks are taken (a lock per request or per Future)
    # must not keep anything of them once they are gone: memory follows the live locks.
    import weakref
    from tracethread._core import detect
    outer = tracethread.Lock()
    refs = []
    with outer:
        for _ in range(500):
            inner = tracethread.Lock()
            with inner:
                pass
            refs.append(weakref.ref(inner._info))
    del inner
    tracethread.flush()   # the summaries' pending list lets go of the locks
    gc.collect()
    with outer, tracethread.Lock():   # the next acquire sweeps dead nodes
        pass
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert sum(1 for key in detect.known if outer._info in key) == 1
    assert detect.graph.stats()["edges"] == 1


def test_with_detection_off_locks_dropped_while_held_do_not_pile_up_on_the_held_list():
    # Detection off: a lock taken while others are held skips the lock-order bookkeeping
    # (the C paths do not even call into detection) until the thread's held list grows
    # long; then the locks nobody can release any more (acquired, never released, dropped
    # by the program) are taken off it, as with detection on.
    from tracethread._core import state
    tracethread.configure(detection=False)
    try:
        outer = tracethread.Lock()
        with outer:
            for _ in range(200):
                tracethread.Lock().acquire()   # never released, dropped at once
            held = len(state.current_state().held)
        assert held <= 20, held
    finally:
        tracethread.configure(detection=True)


def test_a_lock_taken_after_waiting_forgets_where_once_released():
    # A lock acquired after waiting remembers where (st.held_sites, a deadlock report's
    # "took ... at"); its release must forget it, on every path (the C release kept it,
    # and a later lock reusing the id would have been reported as taken there).
    from tracethread._core import state
    for make in (tracethread.Lock, tracethread.RLock):
        lock = make()
        sites = []
        lock.acquire()

        def taker():
            with lock:
                sites.append(dict(state.current_state().held_sites))
            sites.append(dict(state.current_state().held_sites))

        t = tracethread.Thread(target=taker)
        t.start()
        testing.wait_until_blocked(lock, 1)
        lock.release()
        t.join(10)
        assert [id(lock) in d for d in sites] == [True, False], make


def test_a_release_by_another_thread_while_the_owner_changes_its_held_list():
    # ThreadPoolExecutor's idle semaphore: acquired by the submitting thread, released by
    # a worker while the submitter goes on taking and releasing its own locks. Taking it
    # off the owner's held list once raised IndexError in the worker.
    import types
    from tracethread._core import detect
    owner, releaser = types.SimpleNamespace(held=[]), types.SimpleNamespace(held=[])
    prim = types.SimpleNamespace(_info=None)
    stop = []

    def churn():
        mine = [object() for _ in range(10)]
        while not stop:
            for x in mine:
                owner.held.append(x)
            for _ in mine:
                owner.held.pop()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(20000):
            owner.held.insert(0, prim)
            detect.released_elsewhere(owner, prim, releaser)
            assert prim not in owner.held
    finally:
        stop.append(True)
        t.join(TIMEOUT)
        sys.setswitchinterval(interval)


def test_an_error_inside_detection_is_contained_and_reported_once(monkeypatch, capsys):
    from tracethread._core import detect

    def broken(*args, **kwargs):
        raise RuntimeError("graph broke")

    monkeypatch.setattr(detect.graph, "add_edge", broken)
    before = tracethread.recorder_stats()["internal_errors"]
    for _ in range(3):
        a, b = tracethread.Lock(), tracethread.Lock()
        with a, b:   # a new edge each time: detection fails, the program does not
            pass
    assert not a.locked() and not b.locked()
    assert tracethread.recorder_stats()["internal_errors"] - before == 3
    err = capsys.readouterr().err
    assert err.count("internal error in detection (on_acquire)") == 1   # said once
    assert "RuntimeError: graph broke" in err


def test_identity_by_site_merges_locks_made_at_one_line():
    tracethread.configure(identity="site")

    def make():
        return tracethread.Lock()  # one site for every account lock

    x, y = make(), make()
    with x, tracethread.Lock(name="ledger"):
        pass
    with pytest.warns(tracethread.PotentialDeadlockWarning):
        with tracethread.Lock(name="ledger"), y:
            pass
    assert len(potential()) == 1


def test_single_thread_cycles_can_be_turned_off():
    tracethread.configure(single_thread_cycles=False)
    a, b = tracethread.Lock(), tracethread.Lock()
    with a, b:
        pass
    with b, a:
        pass
    assert potential() == []


def test_findings_reach_sinks_as_records():
    a, b = tracethread.Lock(name="A"), tracethread.Lock(name="B")
    with testing.capture() as cap:
        with pytest.warns(tracethread.PotentialDeadlockWarning):
            with a, b:
                pass
            with b, a:
                pass
    (rec,) = cap.ops("finding")
    assert rec.details["finding"].kind == "potential-deadlock"


def test_configure_rejects_bad_settings():
    with pytest.raises(ValueError, match="on_deadlock"):
        tracethread.configure(on_deadlock="panic")
    with pytest.raises(TypeError, match="unknown setting"):
        tracethread.configure(colour="red")
    with pytest.raises(ValueError, match="hang_timeout"):
        tracethread.configure(hang_timeout=-1)


# --- actual deadlocks (subprocess: a bug here would hang) -----------------------------

def test_self_deadlock_is_found_before_blocking_and_raised():
    tracethread.configure(on_deadlock="raise")
    lock = tracethread.Lock(name="once")
    with lock:
        with pytest.raises(tracethread.DeadlockError, match="already holds"):
            lock.acquire()
    assert not lock.locked()
    (f,) = tracethread.findings("deadlock")
    assert f.threads[0].holds == ("Lock once",)


def test_dining_philosophers_deadlock_detected_and_recovered():
    proc = run_script("""
        import threading, tracethread
        tracethread.install(on_deadlock="raise")
        N = 5
        forks = [threading.Lock() for _ in range(N)]
        all_hold_left = threading.Barrier(N)
        outcome = []
        def philosopher(i):
            left, right = forks[i], forks[(i + 1) % N]
            with left:
                all_hold_left.wait()          # everyone holds the left fork: forced
                try:
                    with right:
                        outcome.append("ate")
                except tracethread.DeadlockError as e:
                    outcome.append("deadlock")  # back off: drop the left fork
        ts = [threading.Thread(target=philosopher, args=(i,)) for i in range(N)]
        for t in ts: t.start()
        for t in ts: t.join(30)
        print(sorted(outcome))
        (f,) = tracethread.findings("deadlock")
        print(len(f.threads), all(t.stack for t in f.threads))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == str(sorted(["ate"] * 4 + ["deadlock"]))
    assert lines[1] == "5 True"
    assert "deadlock between 5 threads" in proc.stderr


def test_join_while_holding_the_lock_the_joined_thread_needs():
    proc = run_script("""
        import threading, tracethread
        tracethread.install(on_deadlock="raise")
        lock = threading.Lock()
        started = threading.Event()
        def worker():
            started.set()
            with lock:
                pass
        with lock:
            t = threading.Thread(target=worker, name="worker")
            t.start()
            started.wait()
            try:
                t.join()           # worker needs `lock`, which we hold
            except tracethread.DeadlockError as e:
                print("raised:", e)
        t.join(10)
        print("worker done:", not t.is_alive())
    """)
    # Whichever side closes the cycle gets the error; either way nothing hangs.
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker done: True" in proc.stdout
    assert "deadlock between 2 threads" in proc.stderr


def test_exit_policy_ends_the_process_with_a_status():
    proc = run_script("""
        import threading, tracethread
        tracethread.install(on_deadlock="exit")
        a, b = threading.Lock(), threading.Lock()
        both = threading.Barrier(2)
        def one(x, y):
            with x:
                both.wait()
                with y:
                    pass
        ts = [threading.Thread(target=one, args=(a, b)), threading.Thread(target=one, args=(b, a))]
        for t in ts: t.start()
        for t in ts: t.join()
        print("not reached")
    """)
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-3000:])
    assert "not reached" not in proc.stdout
    assert "tracethread: deadlock" in proc.stderr


def test_lost_notify_is_caught_by_the_watchdog():
    proc = run_script("""
        import threading, time, tracethread
        tracethread.install(hang_timeout=0.3)
        cond = threading.Condition()
        with cond:
            cond.notify()            # nobody waits yet: the notify is lost
        def waiter():
            with cond:
                cond.wait()          # waits for a notify that already happened
        t = threading.Thread(target=waiter, name="waiter")
        t.start()
        deadline = time.monotonic() + 20
        while not tracethread.findings("hang") and time.monotonic() < deadline:
            time.sleep(0.05)
        (f,) = tracethread.findings("hang")
        print(f.threads[0].name, f.threads[0].waits_for.split()[0])
        with cond:
            cond.notify()
        t.join(10)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "waiter Condition"
    assert "has been waiting on Condition" in proc.stderr


def test_cli_run_reports_an_inversion_that_did_not_deadlock():
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "tracethread", "run",
                           os.path.join(ROOT, "examples", "inversion.py")],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done (no deadlock this time)" in proc.stdout
    assert "potential-deadlock: lock-order inversion" in proc.stderr
    assert ("thread 'transfer' holds Lock accounts_lock (examples/inversion.py:9)"
            in proc.stderr)   # named as the code names it, the site beside


def test_condition_wait_takes_a_recursive_rlock_off_the_held_list_while_waiting():
    cond = tracethread.Condition(name="cv")
    seen = {}

    def waiter():
        st = threading.current_thread()._tt_state
        with cond:
            with cond:
                seen["before"] = [h.name for h in st.held]
                cond.wait(TIMEOUT)
                seen["after"] = [h.name for h in st.held]

    t = tracethread.Thread(target=waiter)
    t.start()
    testing.wait_until_blocked(cond, 1)
    seen["during"] = list(t._tt_state.held)
    with cond:
        cond.notify()
    t.join(TIMEOUT)
    assert seen == {"before": ["cv"], "during": [], "after": ["cv"]}
    assert tracethread.findings() == []
