"""tracethread is a drop-in threading: every name, every signature, every error."""

import _thread
import inspect
import threading

import pytest

import tracethread

OURS = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier",
        "Timer", "Thread", "BrokenBarrierError"}
LEGACY_MODULE = ["currentThread", "activeCount"]
LEGACY_METHODS = {"Condition": ["notifyAll"], "Event": ["isSet"],
                  "Thread": ["getName", "setName", "isDaemon", "setDaemon"]}


@pytest.mark.parametrize("name", sorted(set(threading.__all__) | set(LEGACY_MODULE)))
def test_every_threading_name_exists(name):
    assert hasattr(tracethread, name), f"tracethread lacks threading.{name}"
    if name not in OURS:
        # Not a primitive: the very same object as the stdlib's.
        assert getattr(tracethread, name) is getattr(threading, name)


def test_all_covers_threading_all():
    assert set(threading.__all__) <= set(tracethread.__all__)


def test_broken_barrier_error_is_the_stdlib_class():
    # `except threading.BrokenBarrierError` must catch what tracethread's Barrier raises.
    assert tracethread.BrokenBarrierError is threading.BrokenBarrierError


def _params(obj, drop_name=False):
    sig = inspect.signature(obj)
    params = [(p.name, p.kind, p.default) for p in sig.parameters.values()]
    if drop_name:
        # tracethread's one extension: an optional keyword-only name=, the last parameter
        # but for a **kwargs (RLock's: the stdlib's RLock takes (*args, **kwargs)).
        at = len(params) - (1 if params and params[-1][1] is inspect.Parameter.VAR_KEYWORD
                            else 0) - 1
        assert params[at] == ("name", inspect.Parameter.KEYWORD_ONLY, None), params
        del params[at]
    return params


PY_CLASSES = ["Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier", "Thread",
              "Timer"]
ALL_CLASSES = PY_CLASSES + ["Lock", "RLock"]
EXTENDED = set(ALL_CLASSES) - {"Thread", "Timer"}   # Thread has its own name=, Timer none


def _std_params(obj):
    """The stdlib's signature of obj; a C callable inspect cannot read (3.10/3.11's
    threading.Lock, _thread.allocate_lock) takes no arguments."""
    try:
        return _params(obj)
    except ValueError:
        return []


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_class_signature_is_the_stdlibs(name):
    # What help(), IDEs and signature-driven tools see: inspect.signature of the class.
    ours, std = getattr(tracethread, name), getattr(threading, name)
    assert _params(ours, drop_name=name in EXTENDED) == _std_params(std)
    # No annotations or return annotation of our own: the stdlib's (none).
    assert inspect.signature(ours).return_annotation is inspect.Signature.empty


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_help_shows_the_signature(name):
    import pydoc
    text = pydoc.render_doc(getattr(tracethread, name), renderer=pydoc.plaintext)
    assert f"{name}{inspect.signature(getattr(tracethread, name))}" in text


@pytest.mark.parametrize("name", PY_CLASSES)
def test_constructor_signature_matches(name):
    ours, std = getattr(tracethread, name), getattr(threading, name)
    assert _params(ours.__init__, drop_name=name in EXTENDED) == _params(std.__init__)


def test_a_subclass_shows_its_own_constructor():
    class Worker(tracethread.Thread):
        def __init__(self, job, *, retries=3):
            super().__init__()

    class Plain(tracethread.Thread):
        pass

    class Pool(tracethread.Semaphore):
        def __init__(self, size, name=None):
            super().__init__(size, name=name)

    class Spread(tracethread.Lock):
        def __init__(self, *args, **kwargs):
            super().__init__()

    class MyLock(tracethread.Lock):
        pass

    assert str(inspect.signature(Worker)) == "(job, *, retries=3)"
    assert inspect.signature(Plain) == inspect.signature(threading.Thread)
    assert str(inspect.signature(Pool)) == "(size, name=None)"
    assert str(inspect.signature(Spread)) == "(*args, **kwargs)"
    assert str(inspect.signature(MyLock)) == "(*, name=None)"
    assert Worker(1).name and Pool(2)._value == 2 and isinstance(MyLock(), tracethread.Lock)


def _public_methods(cls):
    return {n for n, v in inspect.getmembers(cls)
            if not n.startswith("_") and (callable(v) or isinstance(v, property))}


@pytest.mark.parametrize("name", PY_CLASSES)
def test_methods_and_signatures_match(name):
    ours, std = getattr(tracethread, name), getattr(threading, name)
    missing = _public_methods(std) - _public_methods(ours)
    assert not missing, f"{name} lacks {missing}"
    for meth in sorted(_public_methods(std)):
        s, o = inspect.getattr_static(std, meth), inspect.getattr_static(ours, meth)
        if isinstance(s, property):
            assert isinstance(o, property), meth
            continue
        if callable(s) and not isinstance(s, type):
            assert _params(getattr(ours, meth)) == _params(getattr(std, meth)), meth


_POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
# The C lock types' methods as 3.13 shows them (3.10 and 3.11 show no signature for them).
C_LOCK_METHODS = {"acquire": [("blocking", _POK, True), ("timeout", _POK, -1)],
                  "release": [], "locked": []}
C_LOCK_METHODS.update(acquire_lock=C_LOCK_METHODS["acquire"], release_lock=[],
                      locked_lock=[])


def _method_params(obj, meth):
    """The parameters of a method after self (a C method's self is positional-only, a
    Python one's not: not compared); None if the stdlib's shows none."""
    try:
        params = _params(getattr(obj, meth))
    except ValueError:
        return None
    if not isinstance(obj, type):
        return params   # bound: no self
    assert params and params[0][0] == "self", (meth, params)
    return params[1:]


@pytest.mark.parametrize("name,raw,make", [("Lock", _thread.LockType, _thread.allocate_lock),
                                           ("RLock", _thread.RLock, _thread.RLock)])
def test_lock_method_signatures_match(name, raw, make):
    ours = getattr(tracethread, name)
    publics = [m for m in dir(raw) if not m.startswith("_")]
    assert "acquire" in publics and "release" in publics
    for target in (raw, make()):   # the methods, and bound to an object
        obj = ours if isinstance(target, type) else ours()
        for meth in publics:
            expected = _method_params(target, meth)
            if expected is None:
                expected = C_LOCK_METHODS[meth]
            assert _method_params(obj, meth) == expected, (name, meth)


def test_condition_acquire_and_release_show_the_locks_signatures():
    # threading.Condition's acquire/release are its lock's (bound, per object).
    for lock in (None, "Lock"):
        std = threading.Condition(None if lock is None else threading.Lock())
        ours = tracethread.Condition(None if lock is None else tracethread.Lock())
        for meth in ("acquire", "release"):
            expected = _method_params(std, meth)
            if expected is None:
                expected = C_LOCK_METHODS[meth]
            assert _method_params(ours, meth) == expected, (lock, meth)


@pytest.mark.parametrize("name,methods", sorted(LEGACY_METHODS.items()))
def test_legacy_camelcase_methods(name, methods):
    for meth in methods:
        assert callable(getattr(getattr(tracethread, name), meth))


@pytest.mark.parametrize("name,raw", [("Lock", _thread.LockType), ("RLock", _thread.RLock)])
def test_lock_methods_cover_the_c_types(name, raw):
    ours = getattr(tracethread, name)
    wanted = {n for n in dir(raw) if not n.startswith("__")}
    assert wanted <= set(dir(ours))
    # (self may be positional-only: the C fast path's method.)
    assert _params(ours.acquire)[1:] == [
        ("blocking", inspect.Parameter.POSITIONAL_OR_KEYWORD, True),
        ("timeout", inspect.Parameter.POSITIONAL_OR_KEYWORD, -1)]


def test_primitives_are_classes():
    for name in OURS - {"BrokenBarrierError"}:
        obj = getattr(tracethread, name)
        assert isinstance(obj, type), name
    # `Lock | None` annotations work (a class, as threading.Lock is on 3.13+).
    assert (tracethread.Lock | None) is not None
    assert isinstance(tracethread.Lock(), tracethread.Lock)
    assert issubclass(tracethread.Thread, threading.Thread)


def test_stdlib_objects_pass_isinstance_against_ours():
    assert isinstance(threading.main_thread(), tracethread.Thread)
    assert isinstance(threading.Event(), tracethread.Event)
    assert isinstance(_thread.allocate_lock(), tracethread.Lock)
    assert isinstance(threading.RLock(), tracethread.RLock)
    assert not isinstance(threading.Event(), tracethread.Condition)


# ---- bad input: the stdlib's exception types and messages ---------------------------

def _error(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return type(exc), str(exc)
    return None


CASES = [
    ("Semaphore(-1)", lambda m: m.Semaphore(-1)),
    ("BoundedSemaphore(-5)", lambda m: m.BoundedSemaphore(-5)),
    ("release unlocked Lock", lambda m: m.Lock().release()),
    ("release unowned RLock", lambda m: m.RLock().release()),
    ("acquire(False, 1)", lambda m: m.Lock().acquire(False, 1)),
    ("RLock acquire(False, 1)", lambda m: m.RLock().acquire(False, 1)),
    ("acquire(timeout=-100)", lambda m: m.Lock().acquire(timeout=-100)),
    ("acquire(timeout=1e100)", lambda m: m.Lock().acquire(timeout=1e100)),
    ("acquire(timeout=TIMEOUT_MAX+1)", lambda m: m.Lock().acquire(timeout=m.TIMEOUT_MAX + 1)),
    ("acquire(timeout='x')", lambda m: m.Lock().acquire(timeout="x")),
    ("RLock acquire(timeout=-2)", lambda m: m.RLock().acquire(timeout=-2)),
    ("wait un-acquired", lambda m: m.Condition().wait()),
    ("notify un-acquired", lambda m: m.Condition().notify()),
    ("notify_all un-acquired", lambda m: m.Condition().notify_all()),
    ("Semaphore acquire(False, 1)", lambda m: m.Semaphore().acquire(False, 1)),
    ("Semaphore release(0)", lambda m: m.Semaphore().release(0)),
    ("BoundedSemaphore over-release", lambda m: m.BoundedSemaphore(1).release()),
    ("Thread start twice", lambda m: (lambda t: (t.start(), t.join(), t.start()))(m.Thread())),
    ("join unstarted", lambda m: m.Thread().join()),
    ("join current", lambda m: m.current_thread().join()),
    ("Lock(1)", lambda m: m.Lock(1)),
    ("Event wait bad timeout", lambda m: m.Event().wait("x")),
    ("Barrier broken", lambda m: (lambda b: (b.abort(), b.wait()))(m.Barrier(2))),
]


@pytest.mark.parametrize("label,fn", CASES, ids=[c[0] for c in CASES])
def test_errors_match_the_stdlib(label, fn):
    std = _error(lambda: fn(threading))
    ours = _error(lambda: fn(tracethread))
    assert std is not None, "the case should fail in the stdlib"
    assert ours is not None, f"{label}: stdlib raises {std}, tracethread raised nothing"
    assert ours == std   # (tests/test_stdlib_parity.py: the full matrix)


def test_free_lock_acquire_false_with_timeout_stays_unlocked():
    lock = tracethread.Lock()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    assert not lock.locked()


def test_return_values_match():
    for m in (threading, tracethread):
        lock = m.Lock()
        assert lock.acquire() is True
        assert lock.acquire(False) is False
        assert lock.acquire(timeout=0.001) is False
        lock.release()
        with lock as entered:
            assert entered is True
        r = m.RLock()
        assert r.acquire() is True and r.acquire(False) is True
        r.release(), r.release()
        s = m.Semaphore(1)
        assert s.acquire() is True and s.acquire(False) is False
        assert s.acquire(timeout=0.001) is False
        e = m.Event()
        assert e.wait(0) is False
        e.set()
        assert e.wait() is True
        assert m.Barrier(1).wait() == 0
        c = m.Condition()
        with c:
            assert c.wait(0) is False
            assert c.wait_for(lambda: 7) == 7


class _BareLock:
    """A lock with only acquire/release (and the context protocol)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


@pytest.mark.parametrize("cls", [threading.Condition, tracethread.Condition])
def test_a_condition_over_a_bare_lock_uses_the_default_protocol(cls):
    # What the stdlib does: a lock without _release_save/_acquire_restore/_is_owned gets
    # the Condition's own; a subclass may override them; a set attribute wins until deleted.
    lock = _BareLock()
    cond = cls(lock)
    assert not cond._is_owned()
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        assert cond._is_owned()
        assert cond.wait(0.01) is False   # released and re-acquired through the defaults
        assert lock._lock.locked()
    assert not lock._lock.locked()

    class Mine(cls):
        def _is_owned(self):
            return True

    assert Mine(lock)._is_owned() is True     # the subclass's, the lock has none
    cond._is_owned = lambda: "set"
    assert cond._is_owned() == "set"
    del cond._is_owned
    assert cond._is_owned() is False
    assert cls(threading.RLock())._is_owned() is False


def test_a_primitive_info_copies_and_pickles_with_its_id():
    import copy
    import pickle

    from tracethread import PrimitiveInfo, Site
    info = PrimitiveInfo("Lock", "db", Site("app.py", 3, "main"))
    for other in (copy.copy(info), copy.deepcopy(info), pickle.loads(pickle.dumps(info))):
        assert (other.id, other.kind, other.name, str(other.site)) == (info.id, "Lock", "db",
                                                                       "app.py:3")
    assert PrimitiveInfo("Lock", "db", None).id != info.id   # a new one: a new id
