"""A wait-for cycle is reported as a deadlock only when it is certain (docs/detection.md,
"Actual deadlocks"): a Lock may be released by any thread, so programs that use one as a
signal or hand it off (reader-writer locks) must run to the end, while real deadlocks are
still reported — at once when nothing outside the cycle could break it, after the
confirmation interval otherwise.

Every program runs in a subprocess under ``python -m tracethread run`` (whose default
policy is ``exit``: a false deadlock kills the program with status 3), with a timeout and
faulthandler. Interleavings are forced by waiting until threads are blocked, not by
sleeping."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import tracethread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60


def traced(code, *args, tmp_path=None):
    """Run ``code`` as a script under ``tracethread run``; returns (process, report)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(code))
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "tracethread", "run", "-q",
                           "--report", str(report), *args, str(script)],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)
    data = json.loads(report.read_text()) if report.exists() else None
    return proc, data


def kinds(report):
    return sorted(f["kind"] for f in report["findings"])


# --- correct programs that look like deadlocks at the moment of the acquire -------------

def test_a_lock_used_as_a_done_signal_by_a_worker(tmp_path):
    # The program, with the worker releasing only once main is really blocked on
    # the lock it "already holds".
    proc, report = traced("""
        import threading
        from tracethread import testing
        done = threading.Lock(); done.acquire()
        def worker():
            testing.wait_until_blocked(done, 1)
            done.release()                   # signal: work finished
        threading.Thread(target=worker).start()
        done.acquire()                       # wait for the worker's signal
        print("finished")
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "finished"
    assert kinds(report) == []


def test_a_signal_lock_released_by_a_third_thread_breaks_the_apparent_cycle(tmp_path):
    # C holds m and waits for sig, which main "holds"; main waits for m: a wait-for cycle
    # main -> m -> C -> sig -> main, which B (outside it) breaks by releasing sig.
    proc, report = traced("""
        import threading
        from tracethread import testing
        m = threading.Lock(); sig = threading.Lock(); sig.acquire()
        c_has_m = threading.Event()
        def c():
            with m:
                c_has_m.set()
                sig.acquire()        # waits for B's signal
                sig.release()
        def b():
            testing.wait_until_blocked(m, 1)   # main is blocked: the cycle is closed
            sig.release()
        tc = threading.Thread(target=c, name="C"); tc.start()
        c_has_m.wait()
        testing.wait_until_blocked(sig, 1)
        tb = threading.Thread(target=b, name="B"); tb.start()
        with m:
            print("main got m")
        tc.join(); tb.join()
        print("finished")
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["main", "got", "m", "finished"]
    assert kinds(report) == []


RWLOCK = """
    import threading
    from tracethread import testing

    class FairRWLock:
        # readerwriterlock's RWLockFairD, reduced: the first reader takes `write` for
        # every reader, the last one out releases it (often another thread).
        def __init__(self):
            self.count = 0
            self.count_lock = threading.Lock()
            self.read = threading.Lock()
            self.write = threading.Lock()
        def read_acquire(self):
            with self.read:
                with self.count_lock:
                    self.count += 1
                    if self.count == 1:
                        self.write.acquire()
        def read_release(self):
            with self.count_lock:
                self.count -= 1
                if self.count == 0:
                    self.write.release()
        def write_acquire(self):
            self.read.acquire()
            self.write.acquire()
        def write_release(self):
            self.write.release()
            self.read.release()
"""


def test_a_reader_writer_lock_whose_last_reader_unlocks(tmp_path):
    # r1 is the first reader (it acquired `write` for all readers), r2 joins, r1 leaves:
    # `write` stays locked with r1 as its acquirer. A writer takes `read` and waits for
    # `write`; r1 reads again and waits for `read`: r1 -> read -> writer -> write -> r1,
    # a wait-for cycle that r2, still reading, breaks by leaving last.
    proc, report = traced(RWLOCK + """
    rw = FairRWLock()
    r2_in, r1_out = threading.Event(), threading.Event()
    log = []
    def r1():
        rw.read_acquire(); r2_in.wait()
        rw.read_release(); r1_out.set()
        testing.wait_until_blocked(rw.write, 1)      # the writer is waiting
        rw.read_acquire(); log.append("r1 read again"); rw.read_release()
    def r2():
        rw.read_acquire(); r2_in.set(); r1_out.wait()
        testing.wait_until_blocked(rw.read, 1)       # r1 is waiting: the cycle is closed
        log.append("r2 out"); rw.read_release()   # (logged first: the writer goes on the
                                                  # moment r2 is out)
    def writer():
        r1_out.wait()
        rw.write_acquire(); log.append("written"); rw.write_release()
    ts = [threading.Thread(target=f, name=f.__name__) for f in (r1, r2, writer)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(log)
    """, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(["r2 out", "written", "r1 read again"])
    assert kinds(report) == []


def test_an_inversion_through_a_lock_later_seen_as_a_signal_is_withdrawn(tmp_path):
    # Edges A -> S and S -> A are taken (a cycle), then S is released by a thread that did
    # not acquire it: S is a signal, the cycle never was a lock order, and the report at
    # exit no longer lists it (it says why under "withdrawn").
    proc, report = traced("""
        import threading, warnings
        a = threading.Lock(name="A"); s = threading.Lock(name="S")
        with a:
            with s: pass
        with s:
            with a: pass
        import tracethread
        print(len(tracethread.findings("potential-deadlock")))
        s.acquire()
        t = threading.Thread(target=s.release, name="releaser"); t.start(); t.join()
        print(len(tracethread.findings("potential-deadlock")))
    """, "--fail-on", "potential", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "0"]
    assert kinds(report) == []
    (w,) = report["withdrawn"]
    assert w["finding"]["kind"] == "potential-deadlock"
    assert "Lock S was released by a thread that did not acquire it ('releaser')" in w["reason"]
    assert [n["signal"] for n in report["graph"]["nodes"] if n["name"] == "S"] == [True]


def test_a_signal_makes_every_lock_made_at_its_line_a_signal():
    # readerwriterlock makes its hand-off Lock in __init__: one lock per RW lock, one line.
    # One instance seen released by another thread is evidence for the line: the cycle
    # through a sibling instance is withdrawn, and a new sibling makes none.
    def pair():
        return tracethread.Lock(name="mutex"), tracethread.Lock()   # one line: one part

    def invert(m, h):
        with m, h:
            pass
        with h, m:
            pass

    with pytest.warns(tracethread.PotentialDeadlockWarning):
        m1, h1 = pair()
        invert(m1, h1)
    assert len(tracethread.findings("potential-deadlock")) == 1
    m2, h2 = pair()
    h2.acquire()
    t = tracethread.Thread(target=h2.release)
    t.start()
    t.join(TIMEOUT)
    assert tracethread.findings("potential-deadlock") == []
    m3, h3 = pair()
    invert(m3, h3)
    assert tracethread.findings("potential-deadlock") == []


# --- real deadlocks are still reported -------------------------------------------------

AB_BA = """
    import threading
    a = threading.Lock(name="A"); b = threading.Lock(name="B")
    both = threading.Barrier(2)
    def one(x, y):
        with x:
            both.wait()
            with y: pass
    ts = [threading.Thread(target=one, args=(a, b), name="t1"),
          threading.Thread(target=one, args=(b, a), name="t2")]
    for t in ts: t.start()
"""


@pytest.mark.parametrize("main", ["joins", "busy"])
def test_ab_ba_with_two_locks_is_reported(main, tmp_path):
    # "joins": main is blocked joining, so no thread outside the cycle can release A or
    # B: certain at once (a confirmation interval of an hour cannot delay it).
    # "busy": main keeps running (a timed wait in a loop), so the cycle must stay closed
    # through the confirmation interval first.
    tail = ("for t in ts: t.join()\n" if main == "joins" else
            "import time\nwhile True: threading.Event().wait(0.01)\n")
    confirm = "3600" if main == "joins" else "0.2"
    proc, report = traced(AB_BA + textwrap.indent(tail, "    "), "--deadlock-confirm",
                          confirm, tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert kinds(report) == ["deadlock"]
    assert "deadlock between 2 threads" in report["findings"][0]["message"]


@pytest.mark.parametrize("others", ["none", "running"])
def test_self_deadlock(others, tmp_path):
    # No other thread: nobody can release the lock, certain at once (an hour of
    # confirmation cannot delay it). Another thread running: it might release the lock,
    # so the wait is confirmed first, then reported.
    ticker = ("stop = threading.Event()\n"
              "threading.Thread(target=lambda: [stop.wait(0.01) for _ in iter(int, 1)],\n"
              "                 daemon=True).start()\n") if others == "running" else ""
    proc, report = traced("import threading\n" + ticker + """
lock = threading.Lock()
lock.acquire()
lock.acquire()
""", "--deadlock-confirm", "3600" if others == "none" else "0.2", tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert kinds(report) == ["deadlock"]
    assert "already holds" in report["findings"][0]["message"]


def test_join_deadlock_is_certain_at_once(tmp_path):
    proc, report = traced("""
        import threading
        lock = threading.Lock()
        started = threading.Event()
        def worker():
            started.set()
            with lock: pass
        with lock:
            t = threading.Thread(target=worker, name="worker"); t.start()
            started.wait()
            t.join()            # the worker needs `lock`, which we hold
    """, "--deadlock-confirm", "3600", tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert kinds(report) == ["deadlock"]


def test_a_cycle_of_rlocks_is_certain_even_while_other_threads_run(tmp_path):
    # Only an RLock's owner can release it: nothing outside the cycle can break it.
    proc, report = traced(AB_BA.replace("threading.Lock(", "threading.RLock(") + """
    while True: threading.Event().wait(0.01)
    """, "--deadlock-confirm", "3600", tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert kinds(report) == ["deadlock"]


def test_raise_policy_raises_after_confirmation_in_the_closing_thread():
    code = """
        import threading, tracethread
        tracethread.install(on_deadlock="raise", deadlock_confirm=0.1)
        ticking = threading.Event()
        def tick():                                   # outside the cycle, awake
            while not ticking.wait(0.01): pass
        threading.Thread(target=tick, daemon=True).start()
        lock = threading.Lock()
        lock.acquire()
        try:
            lock.acquire()
        except tracethread.DeadlockError as e:
            print("raised:", e.finding.kind)
        ticking.set()
    """
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "raised: deadlock"


def test_deadlock_confirm_setting_is_validated():
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="deadlock_confirm"):
            tracethread.configure(deadlock_confirm=bad)
    assert tracethread.configure(deadlock_confirm=0).deadlock_confirm == 0.0
    tracethread.configure(deadlock_confirm=0.5)
