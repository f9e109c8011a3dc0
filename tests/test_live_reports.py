"""Reports said when they happen (issue 19): a hang is on stderr while the program still
runs, and so is the end of it; "all threads are asleep" is a deadlock found at once, not
after the hang timeout; a program that waits for a Timer is not one. Programs run in a
subprocess with a timeout and faulthandler."""

import json
import os
import re
import subprocess
import sys
import textwrap
import time

from helpers import clean_env, default_sigint, finish, run_traced

# No assertion on how long detection took (machines are shared and noisy): the programs
# below would run for the hang timeout (30 s) or forever without the rule under test,
# so finishing well within that bound shows which rule fired.
BOUND_S = 25


def _run(tmp_path, code, *args, quiet=True):
    t0 = time.monotonic()
    proc = run_traced(["-q", *args] if quiet else list(args), code, tmp_path)
    out, err = finish(proc, 60)
    return proc.returncode, out, err, time.monotonic() - t0


ASLEEP_EVENTS = """
    import threading
    a, b = threading.Event(), threading.Event()
    def one():
        a.wait()
        b.set()
    def two():
        b.wait()
        a.set()
    ts = [threading.Thread(target=f, name=f.__name__) for f in (one, two)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("never")
"""

ASLEEP_CONDITION = """
    import threading
    cond = threading.Condition()
    ready = []
    def consumer(name):
        with cond:
            while not ready:
                cond.wait()    # the producer below never comes: nobody will notify
    ts = [threading.Thread(target=consumer, args=(n,), name=n) for n in ("c1", "c2")]
    for t in ts: t.start()
    for t in ts: t.join()
    print("never")
"""


def test_all_threads_asleep_on_events_is_a_deadlock_found_at_once(tmp_path):
    status, out, err, took = _run(tmp_path, ASLEEP_EVENTS, "--report",
                                  str(tmp_path / "r.json"))
    assert status == 3, err
    assert "never" not in out
    assert took < BOUND_S, f"took {took:.1f} s: the hang timeout (30 s), not the rule"
    assert "tracethread: deadlock: all threads are asleep" in err
    assert "'one' waits for Event" in err and "'two' waits for Event" in err
    assert "hang:" not in err
    (f,) = json.loads((tmp_path / "r.json").read_text())["findings"]
    assert f["kind"] == "deadlock" and f["message"].startswith("all threads are asleep")
    assert {t["name"] for t in f["threads"]} == {"one", "two", "MainThread"}


def test_all_threads_asleep_on_a_condition_is_a_deadlock_found_at_once(tmp_path):
    status, out, err, took = _run(tmp_path, ASLEEP_CONDITION)
    assert status == 3, err
    assert took < BOUND_S, f"took {took:.1f} s"
    assert "all threads are asleep" in err and "'c1' waits for Condition" in err


def test_a_program_waiting_for_its_timer_is_not_asleep(tmp_path):
    # The Timer's thread waits with a timeout: it will wake and set the event.
    status, out, err, _ = _run(tmp_path, """
        import threading
        done = threading.Event()
        threading.Timer(1.0, done.set).start()
        done.wait()
        print("the timer set it")
    """, "--report", str(tmp_path / "r.json"))
    assert status == 0, err
    assert out == "the timer set it\n"
    assert json.loads((tmp_path / "r.json").read_text())["findings"] == []


def test_a_program_exiting_with_threads_that_never_end_is_ended(tmp_path):
    # Python would wait for the non-daemon thread forever; the report policy keeps the
    # program running while it can run, but at exit nothing can ever end that wait.
    status, out, err, took = _run(tmp_path, """
        import threading
        threading.Thread(target=threading.Event().wait, name="forever").start()
        print("main is done")
    """, "--on-deadlock", "report")
    assert status == 3, err
    assert out == "main is done\n"
    assert took < BOUND_S
    assert "all threads are asleep" in err and "waits for the other threads, at exit" in err
    assert "threads that can never end: ending it (exit status 3)" in err


HANGS_UNTIL_TOLD = """
    import sys, threading
    go = threading.Event()
    def worker():
        go.wait()                  # a hang: nobody sets `go` until the test says so
        print("worker went on", flush=True)
    t = threading.Thread(target=worker, name="worker")
    t.start()
    sys.stdin.readline()           # awake, in I/O: not all threads are asleep
    go.set()
    t.join()
"""


def test_a_hang_is_reported_while_the_program_runs_and_so_is_its_end(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(HANGS_UNTIL_TOLD))
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracethread", "run", "-q", "--hang-timeout", "1",
         "--report", str(report), str(prog)],
        env=clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        os.set_blocking(proc.stderr.fileno(), True)
        first = proc.stderr.readline()       # blocks until tracethread says something
        assert first.startswith("tracethread: hang: thread 'worker' has been waiting on "
                                "Event"), first
        assert proc.poll() is None            # said while the program still runs
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "worker went on\n"
    assert "tracethread: hang over: thread 'worker' went on after at most" in err
    (f,) = json.loads(report.read_text())["findings"]
    assert f["kind"] == "hang" and f["recovered_after_s"] >= 1.0


def test_the_pytest_plugin_shows_a_hang_while_the_test_runs(pytester):
    # pytest captures a test's output and shows it only when the test fails; a hang
    # report is for now, so it goes past the capture, to the terminal.
    pytester.makepyfile(test_slow="""
        import threading, time
        def test_waits_a_while():
            go = threading.Event()
            t = threading.Thread(target=go.wait, name="slowpoke")
            t.start()
            time.sleep(2.5)        # awake: only a hang, no deadlock
            go.set()
            t.join()
    """)
    result = pytester.runpytest_subprocess("--tracethread", "--tracethread-hang-timeout",
                                           "1", "--tracethread-fail-on", "none", "-p",
                                           "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "tracethread: hang: thread 'slowpoke' has been waiting on Event" in out
    assert "hang over: thread 'slowpoke' went on after at most" in out


NAMED_DEADLOCK = """
    import threading
    a = threading.Lock()
    b = threading.Lock()
    both = threading.Barrier(2)
    def one():
        with a:
            both.wait()
            with b: pass
    def two():
        b.acquire()
        both.wait()
        with a: pass
    ts = [threading.Thread(target=f, name=f.__name__) for f in (one, two)]
    for t in ts: t.start()
    for t in ts: t.join()
"""


def test_ctrl_c_on_a_reported_deadlock_does_not_hang_the_exit(tmp_path):
    # --on-deadlock report keeps the program waiting, as it would without tracethread.
    # Ctrl-C then ends the main thread, and Python's exit would join the deadlocked
    # threads forever (it did, for 10 minutes): the exit sees that and ends the process.
    import signal
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(NAMED_DEADLOCK))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracethread", "run", "-q", "--on-deadlock", "report",
         str(prog)], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint)
    try:
        first = proc.stderr.readline()       # the deadlock, said when it was found
        assert first.startswith("tracethread: deadlock: deadlock between 2 threads"), first
        assert proc.poll() is None            # the report policy: still waiting
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    assert "KeyboardInterrupt" in err
    assert "waits for threads that can never end: ending it (exit status 3)" in err
    assert "all threads are asleep" not in err   # the same deadlock, not said twice


def test_a_deadlock_report_says_where_each_held_lock_was_taken(tmp_path):
    status, out, err, _ = _run(tmp_path, NAMED_DEADLOCK, "--report", str(tmp_path / "r.json"))
    assert status == 3, err
    # prog.py: `a = ...` is line 3, `with a:` line 7, `b.acquire()` line 11
    assert re.search(r"took Lock a \([^)]*prog\.py:3\) #1 at [^ ]*prog\.py:7\n", err), err
    assert re.search(r"took Lock b \([^)]*prog\.py:4\) #1 at [^ ]*prog\.py:11\n", err), err
    (f,) = json.loads((tmp_path / "r.json").read_text())["findings"]
    taken = {t["name"]: [(h["lock"].split(" (")[0], h["site"]["line"]) for h in t["held_at"]]
             for t in f["threads"]}
    assert taken == {"one": [("Lock a", 7)], "two": [("Lock b", 11)]}


INVERSION = """
    import threading
    class Account:
        def __init__(self):
            self.lock = threading.Lock()
    ledger_lock = threading.Lock()
    acct = Account()
    def book():
        with ledger_lock:
            with acct.lock: pass
    def audit():
        with acct.lock:
            with ledger_lock: pass
    for f in (book, audit):
        t = threading.Thread(target=f, name=f.__name__); t.start(); t.join()
"""


def test_an_inversion_shows_the_unsafe_scenario_and_the_fix(tmp_path):
    status, out, err, _ = _run(tmp_path, INVERSION, quiet=False)   # the report at exit
    assert status == 0, err
    lines = [line.rstrip() for line in err.splitlines()]
    start = lines.index("  how it can deadlock (one interleaving of the two threads):")
    first, second = lines[start + 1].split()
    assert {first, second} == {"book", "audit"}
    # the first thread takes its first lock, the second its own, then each waits
    takes = {"book": "Lock ledger_lock", "audit": "Lock Account.lock"}
    steps = lines[start + 2:start + 6]
    assert steps[0].strip() == f"takes {takes[first]}" and not steps[0].startswith("     " * 3)
    assert steps[1].strip() == f"takes {takes[second]}" and steps[1].startswith("     " * 3)
    assert steps[2].strip() == f"waits for {takes[second]}"
    assert steps[3].strip() == f"waits for {takes[first]}"
    fix = " ".join(line.strip() for line in lines[start + 7:start + 10])
    assert fix.startswith(f"fix: take the two locks in one order everywhere: thread "
                          f"'{second}' takes {takes[first]} while holding {takes[second]} at ")


def test_a_potential_deadlock_warning_points_at_the_programs_line():
    # It pointed at tracethread/_core/detect.py (the wrapper that contains our errors).
    import warnings

    import tracethread
    from tracethread._core import findings
    findings.clear()
    a, b = tracethread.Lock(name="warn-a"), tracethread.Lock(name="warn-b")
    with a:
        with b:
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with b:
            with a:   # marker: closes the cycle
                pass
    (w,) = [w for w in caught if issubclass(w.category, tracethread.PotentialDeadlockWarning)]
    assert w.filename == __file__
    with open(__file__) as f:
        assert w.lineno == next(i for i, line in enumerate(f, 1) if "marker: closes" in line)


LEAKED_SLOT = """
    import threading, time
    pool = threading.Semaphore(2)
    taken = threading.Barrier(2)
    def leaky():
        pool.acquire()     # never released: the slot leaks
    def holder():
        with pool:
            taken.wait()   # holds its slot while the worker hangs
            taken.wait()
    def worker():
        with pool:
            pass
    t = threading.Thread(target=leaky, name="leaky"); t.start(); t.join()
    h = threading.Thread(target=holder, name="holder"); h.start()
    taken.wait()
    w = threading.Thread(target=worker, name="worker"); w.start()
    time.sleep(2)          # awake: a hang, not a deadlock
    print("done", flush=True)
    import os; os._exit(0)
"""


def test_a_hang_on_a_semaphore_says_who_took_the_slots(tmp_path):
    status, out, err, _ = _run(tmp_path, LEAKED_SLOT, "--hang-timeout", "1")
    assert status == 0, err
    line = next(line for line in err.splitlines()
                if line.startswith("tracethread: hang: thread 'worker'"))
    assert "Semaphore pool (" in line
    assert "the slots are held by 'leaky' (its thread has ended: the slot leaked), 'holder' " \
           "(took one at " in line and line.endswith(", taken and not released")
    assert re.search(r"'holder' \(took one at [^ ]*prog\.py:8\)", line), line
