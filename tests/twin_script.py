"""Scripted operation sequences, run by tests/test_twins.py once on the C paths and once on
the pure-Python paths (TRACETHREAD_PURE_PYTHON=1): prints what the sinks received, with
everything that may differ between runs (times, ids, sequence numbers, stacks) left out.
The two outputs must be equal line for line."""

import json
import os
import sys
import time
import threading as _std_threading

import tracethread as tt
from tracethread.testing import wait_until_blocked


class Everything:
    """Receives every record, and the summaries when ``summaries`` (then, as the report's
    statistics sink, it lets the core count uncontended operations instead)."""

    def __init__(self, summaries):
        self.accepts_summaries = summaries
        self.got = []

    def handle(self, records):
        self.got += records


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, tt.ThreadInfo):
        return value.name
    if hasattr(value, "kind") and hasattr(value, "name"):
        return f"{value.kind} {value.name}"
    return type(value).__name__


# Details that are times, contexts or ids: present or not, never their value.
_VOLATILE = {"context", "hold_ns_total", "hold_ns_min", "hold_ns_max", "hold_bucket_sums_ns",
             "instances", "hold_buckets", "waited_ns", "reacquired_ns"}


def line(r):
    details = {}
    for k, v in sorted((r.details or {}).items()):
        details[k] = "…" if k in _VOLATILE else _plain(v)
    thread = r.thread.name
    if r.op == "summary":   # its thread is one of its threads: which one is not defined
        details["instances"] = len(r.details["instances"])
        details["hold_buckets"] = sum(r.details["hold_buckets"])
        details["threads"] = sorted(details["threads"])
        thread = "…"
    return json.dumps([r.op, r.primitive.kind, r.primitive.name, thread, r.ok,
                       r.blocked, r.held_ns is not None, r.site is not None, details],
                      ensure_ascii=False)


def _join(t):
    """Join ``t`` once it has finished (so the join never waits: whether it would have is
    scheduling, not the implementation)."""
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    t.join()


def contended(make):
    """A second thread blocks on ``prim`` (made by ``make``) until the main thread lets go."""
    prim = make()
    prim.acquire()
    t = tt.Thread(target=lambda: (prim.acquire(), prim.release()), name="waiter")
    t.start()
    wait_until_blocked(prim, 1)
    prim.release()
    _join(t)


def condition_round(lock_factory, name):
    cond = tt.Condition(lock_factory(name=f"{name}-lock"), name=name) \
        if lock_factory is not None else tt.Condition(name=name)
    ready = []

    def waiter():
        with cond:
            while not ready:
                cond.wait()

    t = tt.Thread(target=waiter, name=f"{name}-waiter")
    t.start()
    wait_until_blocked(cond, 1)
    with cond:
        ready.append(1)
        cond.notify()
    _join(t)
    with cond:
        cond.notify()          # wakes nobody
        cond.wait(0)           # times out at once
        cond.wait(timeout=0.001)


SCRIPTS = {
    "lock default": lambda: [(lk.acquire(), lk.release()) for lk in [tt.Lock(name="L")]],
    "lock with": lambda: [None for lk in [tt.Lock(name="L")] for _ in [lk.__enter__(),
                                                                      lk.__exit__()]],
    "lock acquire(True, -1)": lambda: [(lk.acquire(True, -1), lk.release())
                                       for lk in [tt.Lock(name="L")]],
    "lock acquire(True, -1.0)": lambda: [(lk.acquire(True, -1.0), lk.release())
                                         for lk in [tt.Lock(name="L")]],
    "lock acquire(timeout=-1.0)": lambda: [(lk.acquire(timeout=-1.0), lk.release())
                                           for lk in [tt.Lock(name="L")]],
    "lock try-acquire": lambda: [(lk.acquire(False), lk.acquire(False), lk.release())
                                 for lk in [tt.Lock(name="L")]],
    "lock timeout": lambda: [(lk.acquire(), lk.acquire(True, 0.001), lk.acquire(timeout=0),
                              lk.release()) for lk in [tt.Lock(name="L")]],
    "lock contended": lambda: contended(lambda: tt.Lock(name="L")),
    "rlock re-entry": lambda: [(lk.acquire(), lk.acquire(), lk.acquire(True, -1.0),
                                lk.release(), lk.release(), lk.release())
                               for lk in [tt.RLock(name="R")]],
    "rlock try and timeout": lambda: [(lk.acquire(False), lk.release(),
                                       lk.acquire(timeout=0.5), lk.release())
                                      for lk in [tt.RLock(name="R")]],
    "rlock contended": lambda: contended(lambda: tt.RLock(name="R")),
    "condition over rlock": lambda: condition_round(None, "C"),
    "condition over lock": lambda: condition_round(tt.Lock, "C"),
    "condition over an rlock given": lambda: condition_round(tt.RLock, "C"),
    "semaphore": lambda: [(s.acquire(), s.acquire(False), s.acquire(timeout=0.001),
                           s.release(), s.acquire(timeout=0), s.release())
                          for s in [tt.Semaphore(1, name="S")]],
    "bounded semaphore": lambda: [(s.acquire(), s.release(), s.acquire(blocking=False),
                                   s.release()) for s in [tt.BoundedSemaphore(1, name="B")]],
    "semaphore contended": lambda: contended(lambda: tt.Semaphore(1, name="S")),
    "event": lambda: [(e.wait(0), e.wait(0.001), e.set(), e.wait(), e.wait(0), e.clear(),
                       e.is_set()) for e in [tt.Event(name="E")]],
}


def constructions():
    """What ``PrimitiveInfo`` (made by every primitive) accepts and refuses."""
    Site = tt.Site
    cases = [("Lock", "a", None), ("Lock", "a", Site("f.py", 3, "g")), ("Lock", 5, None),
             (5, "a", None), ("Lock", "a", 5), ("Lock", "a", Site(1, 1, "g")),
             ("Lock", "a", Site("f", "1", "g")), ("Lock", "a", Site("f", None, "g")),
             ("Lock", "a", Site("f", 1, None)), ("Lock",), ("Lock", "a", None, 1)]
    out = []
    for args in cases:
        try:
            info = tt.PrimitiveInfo(*args)
            out.append(f"{args!r}: {info.kind!r} {info.name!r} {info.site!r}")
        except Exception as exc:  # noqa: BLE001 - the error is what is compared
            out.append(f"{args!r}: {type(exc).__name__}: {exc}")
    info = tt.PrimitiveInfo("Lock", "a", None)
    for field, value in (("kind", "RLock"), ("kind", 3), ("name", b"x"), ("site", "f:1"),
                         ("site", Site("f", 1, "g"))):
        try:
            setattr(info, field, value)
            out.append(f"set {field}={value!r}: {getattr(info, field)!r}")
        except Exception as exc:  # noqa: BLE001
            out.append(f"set {field}={value!r}: {type(exc).__name__}: {exc}")
    for field in ("kind", "site", "id"):
        try:
            delattr(info, field)
            out.append(f"del {field}: deleted")
        except Exception as exc:  # noqa: BLE001
            out.append(f"del {field}: {type(exc).__name__}: {exc}")
    import copy
    import pickle
    out.append(f"copy keeps the id: {copy.copy(info).id == info.id}, pickle: "
               f"{pickle.loads(pickle.dumps(info)).id == info.id}")
    for bad in ((), ("Lock", "a"), ("Lock", "a", None, 1)):
        for kw in ({}, {"bogus": 1}, {"kind": "x"}):
            try:
                tt.PrimitiveInfo(*bad, **kw)
                out.append(f"{bad!r} {kw!r}: made")
            except Exception as exc:  # noqa: BLE001
                out.append(f"{bad!r} {kw!r}: {type(exc).__name__}: {exc}")
    try:
        info = tt.PrimitiveInfo(kind="Lock", name="k", site=None)
        out.append(f"keywords: {info.kind!r} {info.name!r}")
    except Exception as exc:  # noqa: BLE001
        out.append(f"keywords: {type(exc).__name__}: {exc}")
    return out


def main():
    from tracethread._core._accel import speedups
    pure = os.environ.get("TRACETHREAD_PURE_PYTHON") == "1"
    assert (speedups is None) == pure, f"asked for pure={pure}, got C module {speedups}"
    summaries = sys.argv[1] == "summaries"
    out = ["== PrimitiveInfo", *constructions()]
    for name, script in SCRIPTS.items():
        sink = Everything(summaries)
        tt.add_sink(sink)
        try:
            script()
        finally:
            tt.remove_sink(sink)
        out.append(f"== {name}")
        out += sorted(line(r) for r in sink.got if r.thread.name != "tracethread-drainer")
    out.append(f"== findings {[f.kind for f in tt.findings()]}")
    print("\n".join(out))
    assert _std_threading.active_count() == 1


if __name__ == "__main__":
    main()
