"""install()/uninstall(): unmodified code and the stdlib's own modules run on tracethread."""

import _thread
import concurrent.futures
import io
import logging
import queue
import sys
import threading
import types
import warnings

import pytest

import tracethread
from tracethread import testing
from tracethread.patching import TARGETS

ORIGINALS = {name: getattr(threading, name) for name in TARGETS}


@pytest.fixture
def installed():
    tracethread.install()
    try:
        yield
    finally:
        if tracethread.is_installed():
            tracethread.uninstall()


def test_install_replaces_and_uninstall_restores_exactly():
    # The stdlib's own: a factory function before 3.13, the lock class from 3.13 on.
    assert threading.Lock is getattr(_thread, "lock", None) or _thread.allocate_lock
    tracethread.install()
    try:
        for name in TARGETS:
            assert getattr(threading, name) is getattr(tracethread, name), name
        assert "threading.Lock" in tracethread.patched_names()
    finally:
        tracethread.uninstall()
    for name in TARGETS:
        assert getattr(threading, name) is ORIGINALS[name], name
    assert not tracethread.is_installed()


def test_installed_context_manager_round_trip():
    with tracethread.installed():
        assert threading.Condition is tracethread.Condition
        assert tracethread.is_installed()
    assert threading.Condition is ORIGINALS["Condition"]


def test_second_install_warns_and_changes_nothing(installed):
    before = tracethread.patched_names()
    with pytest.warns(RuntimeWarning, match="already installed"):
        tracethread.install()
    assert tracethread.patched_names() == before


def test_uninstall_without_install_warns():
    with pytest.warns(RuntimeWarning, match="not installed"):
        tracethread.uninstall()


def test_modules_that_bound_names_early_are_patched_and_restored():
    mod = types.ModuleType("early_binder")
    mod.Lock = threading.Lock          # as `from threading import Lock` would
    mod.Event = threading.Event
    mod.Other = threading.Lock         # another alias: documented as not found
    sys.modules["early_binder"] = mod
    try:
        with tracethread.installed():
            assert mod.Lock is tracethread.Lock
            assert mod.Event is tracethread.Event
            assert mod.Other is ORIGINALS["Lock"]
        assert mod.Lock is ORIGINALS["Lock"]
        assert mod.Event is ORIGINALS["Event"]
    finally:
        del sys.modules["early_binder"]


def test_uninstall_leaves_what_someone_else_changed():
    sentinel = object()
    tracethread.install()
    try:
        threading.Barrier = sentinel
    finally:
        with pytest.warns(RuntimeWarning, match="changed by someone else"):
            tracethread.uninstall()
    try:
        assert threading.Barrier is sentinel
        assert threading.Lock is ORIGINALS["Lock"]
    finally:
        threading.Barrier = ORIGINALS["Barrier"]


def test_isinstance_checks_that_held_before_still_hold(installed):
    event_made_before = ORIGINALS["Event"]()
    assert isinstance(threading.main_thread(), threading.Thread)
    assert isinstance(threading.current_thread(), threading.Thread)
    assert isinstance(event_made_before, threading.Event)
    assert isinstance(threading.Event(), threading.Event)
    timer = threading.Timer(60, lambda: None)
    assert isinstance(timer, threading.Thread)
    assert issubclass(threading.Timer, threading.Thread)


def test_threading_bookkeeping_stays_untraced(installed):
    t = threading.Thread(target=lambda: None)
    assert type(t) is tracethread.Thread
    # Thread's own _started Event is built by threading.py: left raw, so starting a
    # thread does not show up as event operations.
    assert type(t._started) is ORIGINALS["Event"]
    with testing.capture() as cap:
        t.start()
        t.join(10)
    assert [r.op for r in cap.records if r.primitive.kind == "Event"] == []
    assert {r.op for r in cap.records} == {"thread.start", "thread.run.begin",
                                          "thread.run.end", "thread.join"}


def test_threads_threading_did_not_start_still_get_a_current_thread(installed):
    """A thread started by _thread (or a C extension) asks current_thread(): the stdlib
    builds a _DummyThread with ``Thread.__init__(self)``, which after install() names
    tracethread's class; it must still work."""
    done = ORIGINALS["Event"]()
    got = []

    def foreign():
        try:
            t = threading.current_thread()
            got.append((type(t).__name__, isinstance(t, threading.Thread), t.name))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            got.append(repr(exc))
        done.set()

    _thread.start_new_thread(foreign, ())
    assert done.wait(10)
    assert got == [("_DummyThread", True, got[0][2])] and got[0][2].startswith("Dummy-")


def test_subclasses_of_the_stdlib_thread_made_before_install_keep_working(installed):
    """Old code calls the base class by name: ``threading.Thread.__init__(self)`` and
    ``threading.Thread.join(self)`` in a class that subclassed the stdlib Thread before
    install(); after install() those names are tracethread's, the object is not."""
    class Old(ORIGINALS["Thread"]):
        def __init__(self):
            threading.Thread.__init__(self, name="old-style")
            self.ran = False

        def run(self):
            self.ran = True

        def start(self):
            threading.Thread.start(self)

        def join(self, timeout=None):
            threading.Thread.join(self, timeout)

    t = Old()
    t.start()
    t.join(10)
    assert t.ran and not t.is_alive() and t.name == "old-style"


def test_stdlib_classes_held_from_before_install_still_construct(installed):
    """A reference to a stdlib class kept from before install() (a default argument, a
    module that was not patched) builds a working stdlib object, even where the stdlib
    calls its base class by name (BoundedSemaphore -> Semaphore.__init__, Timer ->
    Thread.__init__)."""
    sem = ORIGINALS["BoundedSemaphore"](2)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    fired = ORIGINALS["Event"]()
    timer = ORIGINALS["Timer"](0.01, fired.set)
    timer.start()
    timer.join(10)
    assert fired.is_set()
    for name in ("Condition", "Event", "Semaphore", "Barrier"):
        obj = ORIGINALS[name](2) if name in ("Semaphore", "Barrier") else ORIGINALS[name]()
        assert type(obj) is ORIGINALS[name]

    class Bounded(ORIGINALS["BoundedSemaphore"]):  # old style: the base class by name
        def __init__(self, n):
            threading.BoundedSemaphore.__init__(self, n)

    b = Bounded(1)
    b.acquire()
    b.release()
    with pytest.raises(ValueError, match="released too many times"):
        b.release()


def test_class_keywords_and_classes_defined_while_installed(installed):
    class Base(tracethread.Thread):
        def __init_subclass__(cls, role=None, **kw):
            super().__init_subclass__(**kw)
            cls.role = role

    class Worker(Base, role="io"):
        pass

    assert Worker.role == "io"

    class Late(threading.Thread):  # subclasses tracethread.Thread: install() is active
        def __init__(self):
            threading.Thread.__init__(self)  # after uninstall(): the stdlib's __init__

        def run(self):
            self.ran = True

    tracethread.uninstall()
    t = Late()
    t.start()
    t.join(10)
    assert t.ran and not t.is_alive()


def test_user_subclass_of_threading_thread_is_traced(installed):
    class Worker(threading.Thread):
        def run(self):
            self.result = 42

    with testing.capture() as cap:
        w = Worker(name="worker-A")
        w.start()
        w.join(10)
    assert w.result == 42
    assert [r.op for r in cap.ops("thread.run.begin", "thread.run.end")] == [
        "thread.run.begin", "thread.run.end"]
    assert cap.ops("thread.run.begin")[0].thread.name == "worker-A"


def test_stdlib_workload_runs_traced(installed):
    """queue + concurrent.futures + logging, constructed after install, all recorded."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tracethread.test.workload")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    dropped_before = tracethread.recorder_stats()["dropped"]
    try:
        with testing.capture() as cap:
            q = queue.Queue(maxsize=4)
            results = []

            def producer():
                for i in range(50):
                    q.put(i, timeout=10)
                q.put(None, timeout=10)

            def consumer():
                while (item := q.get(timeout=10)) is not None:
                    results.append(item)
                    q.task_done()
                q.task_done()
                logger.info("consumer done with %d items", len(results))

            threads = [threading.Thread(target=producer, name="producer"),
                       threading.Thread(target=consumer, name="consumer")]
            for t in threads:
                t.start()
            q.join()
            for t in threads:
                t.join(10)
            with concurrent.futures.ThreadPoolExecutor(max_workers=3) as ex:
                squares = list(ex.map(lambda x: x * x, range(40), timeout=30))
    finally:
        logger.removeHandler(handler)

    assert results == list(range(50))
    assert squares == [x * x for x in range(40)]
    assert "consumer done with 50 items" in stream.getvalue()

    records = cap.records
    by_file = {}
    for r in records:
        if r.primitive.site is not None:
            by_file.setdefault(r.primitive.site.file, set()).add(r.op)
    # queue.Queue's mutex and conditions were created in queue.py and recorded.
    assert {"lock.acquire", "lock.release", "condition.notify"} <= by_file["queue.py"]
    # The executor's work queue, its shutdown lock and its idle semaphore.
    assert any(f.startswith("concurrent/futures/") for f in by_file)
    # logging's handler lock is an RLock created after install.
    assert "rlock.acquire" in by_file["logging/__init__.py"]
    # The worker threads: started, ran, and joined.
    names = {r.thread.name for r in records if r.op == "thread.run.begin"}
    assert {"producer", "consumer"} <= names
    assert any(n.startswith("ThreadPoolExecutor") for n in names)
    # Records are totally ordered.
    seqs = [r.seq for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Nothing was lost.
    assert tracethread.recorder_stats()["dropped"] == dropped_before
    # A busy queue/executor/logging workload is not a deadlock risk: no false positives.
    assert tracethread.findings("potential-deadlock") == []


def test_after_uninstall_new_objects_are_plain_stdlib():
    with tracethread.installed():
        traced = threading.Lock()
    plain = threading.Lock()
    assert type(traced) is tracethread.Lock
    assert type(plain) is _thread.LockType
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with traced:  # objects made while installed keep working after uninstall
            pass
