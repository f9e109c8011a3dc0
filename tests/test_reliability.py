"""The tracer never hurts the program it watches: a sink that raises anything, a sink too
slow for the exit, Ctrl-C, and the record stream's order under a forced drain. Programs
that could hang run in a subprocess with a timeout and faulthandler."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import tracethread
from tracethread._core import state, stream
from tracethread._core.errors import stats as stream_stats
from tracethread._core.records import LOCK_ACQUIRE, PrimitiveInfo

from helpers import TIMEOUT, default_sigint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code, *args, env=None, timeout=60, cwd=None):
    e = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT)
    for k in list(e):
        if k.startswith("TRACETHREAD_"):
            del e[k]
    e.update(env or {})
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)] if not args
                          else [sys.executable, *args], env=e, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, preexec_fn=default_sigint)


def test_a_sink_raising_systemexit_changes_nothing_and_the_drainer_survives():
    proc = python("""
        import sys, tracethread
        class Exits:
            def handle(self, records):
                raise SystemExit(42)
        class Interrupts:
            def handle(self, records):
                raise KeyboardInterrupt
        class Counts:
            n = 0
            def handle(self, records):
                Counts.n += len(records)
        for sink in (Exits(), Interrupts(), Counts()):
            tracethread.add_sink(sink)
        lock = tracethread.Lock()
        for _ in range(1000):
            with lock: pass
        tracethread.flush()                 # re-raised nothing into the program
        before = Counts.n
        for _ in range(1000):
            with lock: pass
        tracethread.flush()
        print(before > 0, Counts.n > before, tracethread.recorder_stats()["sink_errors"] >= 4)
        print("last line")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "last", "line"]
    # Each failing sink is reported once.
    assert proc.stderr.count("sink Exits failed") == 1
    assert proc.stderr.count("sink Interrupts failed") == 1


def test_a_slow_sink_cannot_hold_the_exit():
    # 0.2 s a batch: delivering 300k records would take minutes; the exit waits about
    # TRACETHREAD_EXIT_TIMEOUT, then says what it left undelivered.
    proc = python("""
        import time, tracethread
        class Slow:
            def handle(self, records):
                time.sleep(0.2)
        tracethread.add_sink(Slow())
        lock = tracethread.Lock()
        for _ in range(300_000):
            with lock: pass
        print("work done")
    """, env={"TRACETHREAD_EXIT_TIMEOUT": "1"}, timeout=45)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "work done\n"
    (line,) = [x for x in proc.stderr.splitlines() if "not delivered" in x]
    assert "within the exit timeout (1 s, TRACETHREAD_EXIT_TIMEOUT): counted as dropped" in line
    assert int(line.split()[1]) > 0


SIGINT_PROGRAM = """
import os, signal, threading
lock = threading.Lock(); lock.acquire()
def interrupt():
    os.kill(os.getpid(), signal.SIGINT)
threading.Timer(0.2, interrupt).start()
lock.acquire()            # a blocked acquire: Ctrl-C interrupts it, as in the stdlib
print("not reached")
"""


def test_ctrl_c_ends_a_traced_program_as_it_ends_python(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(SIGINT_PROGRAM)
    native = python(None, str(prog))
    traced = python(None, "-m", "tracethread", "run", "-q", str(prog))
    assert native.returncode == traced.returncode == -2, (native, traced.stderr)
    assert native.stderr.splitlines()[-1] == traced.stderr.splitlines()[-1] == \
        "KeyboardInterrupt"
    assert "not reached" not in traced.stdout


class _Capture:
    def __init__(self):
        self.seqs = []

    def handle(self, records):
        self.seqs += [r.seq for r in records if r.op == LOCK_ACQUIRE]


def _lock_record(n, info, st):
    return (n, LOCK_ACQUIRE, info, st, 0, 0, True, False, None, None, None)


def _one_number_in_flight(name):
    """A number taken and not yet appended, then two records appended after it: (the
    late number, the two appended, the dropped count before)."""
    info = PrimitiveInfo("Lock", name, None)
    st = state.current_state()
    late = stream.next_seq()
    early = [stream.next_seq() for _ in range(2)]
    for n in early:
        stream.buffer.append(_lock_record(n, info, st))
    return _lock_record(late, info, st), early, stream_stats()["dropped"]


@pytest.fixture
def seqs():
    """A sink of the lock acquires' sequence numbers, attached for the test."""
    sink = _Capture()
    tracethread.add_sink(sink)
    try:
        yield sink.seqs
    finally:
        tracethread.remove_sink(sink)


def test_records_reach_sinks_in_order_and_once_or_are_counted_dropped(seqs):
    # A record whose number was taken before a forced drain, and appended after it, was
    # already counted as dropped: it must not be delivered too (it would arrive out of
    # order, [3, 4, 2]).
    late, early, dropped = _one_number_in_flight("order")
    with stream._drain_lock:
        stream._drain_locked(force_upto=early[-1])   # gives up on `late`
    stream.buffer.append(late)
    tracethread.flush()
    assert seqs == early
    assert stream_stats()["dropped"] == dropped + 1


def test_a_record_in_flight_across_drains_is_waited_for_not_dropped(seqs):
    # The interpreter may switch threads between taking a record's number and appending
    # the record. Drains that find the gap meanwhile (the drainer's, every 50 ms, and other
    # threads' flushes) wait for it. Before, the second drain to see it counted it dropped
    # and a flush gave it 1 ms: CI on 3.13 lost one hold in 20,000 that way.
    late, early, dropped = _one_number_in_flight("in flight")
    with stream._drain_lock:
        for _ in range(3):                         # the drainer, three times
            stream._drain_locked()
    assert seqs == []                              # held back behind the gap
    flusher = threading.Thread(target=tracethread.flush)
    flusher.start()
    stream.buffer.append(late)                     # lands while it flushes
    flusher.join(TIMEOUT)
    tracethread.flush()
    assert seqs == [late[0]] + early
    assert stream_stats()["dropped"] == dropped


def test_a_number_that_never_lands_is_counted_dropped_and_does_not_hold_a_flush(seqs):
    # A thread can take a number and never append its record (an exception raised in
    # between, such as KeyboardInterrupt): flush waits a bounded time, then counts it.
    late, early, dropped = _one_number_in_flight("never lands")
    tracethread.flush()
    assert seqs == early
    assert stream_stats()["dropped"] == dropped + 1


# --- fork ------------------------------------------------------------------------------

FORKS_WHILE_NESTING = """
import os, sys, threading, time
import tracethread
tracethread.install(warn=False)
stop = threading.Event()
def nest():                      # new locks, nested: every acquire adds lock-order edges
    while not stop.is_set():
        a, b = threading.Lock(), threading.Lock()
        with a:
            with b:
                pass
workers = [threading.Thread(target=nest, daemon=True) for _ in range(3)]
for w in workers: w.start()
children = []
for _ in range(100):
    pid = os.fork()
    if pid == 0:                 # the child: a nested acquire of its own, then leave
        a, b = threading.Lock(), threading.Lock()
        with a:
            with b:
                pass
        os._exit(0)
    children.append(pid)
stop.set()
hung, deadline = 0, time.monotonic() + 20
for pid in children:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.01)
print("hung", hung)
"""


def test_forks_while_other_threads_update_the_graph_never_hang_a_child():
    proc = python(FORKS_WHILE_NESTING, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["hung", "0"]


def test_multiprocessing_fork_with_a_queue_loses_no_result():
    proc = python("""
        import multiprocessing as mp, threading
        import tracethread
        tracethread.install(warn=False)
        def work(q, i):
            lock = threading.Lock()
            with lock:
                q.put(i * i)
        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            q = ctx.Queue()
            stop = threading.Event()
            def churn():
                while not stop.is_set():
                    a, b = threading.Lock(), threading.Lock()
                    with a, b:
                        pass
            threading.Thread(target=churn, daemon=True).start()
            procs = [ctx.Process(target=work, args=(q, i)) for i in range(80)]
            for p in procs: p.start()
            got = sorted(q.get(timeout=30) for _ in procs)
            for p in procs: p.join(30)
            stop.set()
            print(got == sorted(i * i for i in range(80)), sum(p.exitcode == 0 for p in procs))
    """, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "80"]


def test_a_forked_child_under_run_keeps_its_status_and_the_parents_report(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent("""
        import os, sys, threading
        a, b = threading.Lock(name="A"), threading.Lock(name="B")
        pid = os.fork()
        if pid == 0:                      # the child makes an inversion, then exits 0
            with a, b: pass
            with b, a: pass
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """))
    report = tmp_path / "r.json"
    proc = python(None, "-m", "tracethread", "run", "--fail-on", "any", "--report",
                  str(report), str(prog))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "child 0\n"
    assert proc.stderr.count("tracethread: lock contention") == 1   # one report: the parent's
    import json
    data = json.loads(report.read_text())
    assert data["findings"] == [] and data["exit_status"] == 0


def test_the_watchdog_runs_again_in_a_forked_child():
    proc = python("""
        import os, threading, time
        import tracethread
        tracethread.install(warn=False, hang_timeout=0.3)
        time.sleep(0.1)                                   # the parent's watchdog runs
        pid = os.fork()
        if pid == 0:
            stuck = threading.Event()
            t = threading.Thread(target=stuck.wait, name="stuck", daemon=True)
            t.start()
            deadline = time.monotonic() + 10
            while not tracethread.findings("hang") and time.monotonic() < deadline:
                time.sleep(0.05)
            found = tracethread.findings("hang")
            os._exit(0 if found and "'stuck'" in found[0].message else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "child 0\n"


def test_a_forked_childs_exports_carry_its_own_instance_id(tmp_path):
    from helpers import OTLPReceiver, clean_env
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent("""
        import os, sys, threading, time
        def contend(name):
            lock = threading.Lock(name=name)
            lock.acquire()
            t = threading.Thread(target=lambda: lock.acquire() and lock.release(),
                                 name=name + "-waiter")
            t.start()
            time.sleep(0.2)
            lock.release()
            t.join()
        pid = os.fork()
        if pid == 0:
            contend("child-lock")
            sys.exit(0)
        contend("parent-lock")
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), pid, os.getpid())
    """))
    with OTLPReceiver() as receiver:
        proc = subprocess.run(
            [sys.executable, "-m", "tracethread", "run", "-q", "--otlp", receiver.endpoint,
             str(prog)], env=clean_env(), capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _, status, child, parent = proc.stdout.split()
        assert status == "0"
        by_lock = {}
        for req in receiver.traces():
            for rs in req.resource_spans:
                ids = {a.value.string_value for a in rs.resource.attributes
                       if a.key == "service.instance.id"}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        for a in span.attributes:
                            if a.key == "tracethread.lock.name":
                                by_lock.setdefault(a.value.string_value, set()).update(ids)
    parent_ids, child_ids = by_lock["parent-lock"], by_lock["child-lock"]
    assert len(parent_ids) == 1 and len(child_ids) == 1, by_lock
    assert parent_ids != child_ids
    assert child_ids.pop().endswith(f"-{child}")
    assert parent_ids.pop().endswith(f"-{parent}")


# --- bounded memory ----------------------------------------------------------------------

def test_the_lock_order_graph_stops_at_its_cap_and_the_report_says_so(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent("""
        import threading
        locks = [threading.Lock(name=f"L{i}") for i in range(4)]
        for a in locks:              # 12 ordered pairs: 12 new edges
            for b in locks:
                if a is not b:
                    with a, b:
                        pass
        with locks[0], locks[1]:     # an edge already kept: not one "not kept"
            pass
    """))
    report = tmp_path / "r.json"
    from helpers import tt
    proc = tt("run", "--max-edges", "5", "--report", str(report), str(prog))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    graph = json.loads(report.read_text())["graph"]
    assert len(graph["edges"]) == 5
    assert graph["truncated"] == {"max_edges": 5, "not_kept": 7}
    assert "lock-order graph truncated at 5 edges (7 acquires in a new order" in proc.stderr
    # and the report, read back, is valid input
    merged = tmp_path / "m.json"
    proc = tt("merge", "-o", str(merged), str(report))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(merged.read_text())["graph"]["truncated"]["not_kept"] == 7


def test_max_edges_is_checked():
    with __import__("pytest").raises(ValueError, match="max_edges"):
        tracethread.configure(max_edges=0)
    from helpers import tt
    proc = tt("run", "--max-edges", "-3", "x.py")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--max-edges" in proc.stderr


def test_a_lock_acquired_and_dropped_is_let_go_and_guards_nothing():
    # A hand-written Condition whose timed-out waiter lock stays acquired and is dropped:
    # without the tracer the lock is freed. It must not stay on the thread's held list,
    # keeping it (and its graph nodes) alive and making later cycles look "guarded".
    import gc
    import weakref
    tracethread.configure(warn=False)
    leaked = tracethread.Lock()
    leaked.acquire()
    gone = weakref.ref(leaked)
    del leaked
    a, b = tracethread.Lock(name="a"), tracethread.Lock(name="b")
    with a:
        with b:
            pass
    with b:
        with a:
            pass
    tracethread.flush()
    gc.collect()
    assert gone() is None
    (finding,) = tracethread.findings()
    assert finding.kind == "potential-deadlock" and not finding.guarded_by
