"""Live detection: the glue between the primitives' hot paths and the two graphs.

Called by the primitives (and the C fast paths) at three moments:
- ``on_acquire(st, prim, bounded)``: a blocking acquire succeeded while ``st`` already
  held other locks (the fast paths check ``known`` first: an edge already taken without a
  timeout costs them a set lookup and no call at all).
- ``released_elsewhere(owner, prim, releaser)``: a lock left a held list other than by the
  usual last-in-first-out release by its owner (out-of-order release, or released by
  another thread: then it is a signal, not a mutex, and leaves cycle detection).
- ``before_block(st, prim, bounded)``: the thread is about to wait on a Lock, RLock or a
  join. It follows the wait-for chain (owner of what it waits on, what that owner waits on,
  …) and reports a deadlock when the chain comes back to it, before it blocks.
"""

from __future__ import annotations

import collections
import functools
import sys
import weakref
from typing import Any, Hashable

from . import _raw
from . import config as _config
from . import findings as F
from .lockorder import Cycle, LockOrderGraph

_graph_lock = _raw.allocate_lock()
_dead: collections.deque = collections.deque()   # nodes whose lock was collected
_tracked: set = set()                             # nodes with a finalizer registered
# (src_info, dst_info) of edges already taken without a timeout, by instance: the fast
# paths' "nothing new here" check.
known: set = set()
# Set by the pytest plugin to the running test's id: new edges remember it.
context = ""
# node -> keys of `known` it appears in, to forget them with it (from both ends: a
# long-lived lock taken before many short-lived ones must not keep their keys).
_known_by_node: dict = {}


def _name(node: Hashable) -> str:
    if isinstance(node, tuple):
        return f"{node[0]} {node[1]}"
    return f"{node.kind} {node.name}"


graph = LockOrderGraph(name_of=_name)


def info_of(prim: Any) -> Any:
    info = getattr(prim, "_info", None)
    return info if info is not None else getattr(prim, "_self_info", None)


def node_of(info: Any) -> Hashable:
    if _config.get().identity == "site":
        return (info.kind, info.name)
    return info


def _on_collected(node: Hashable) -> None:
    _dead.append(node)


def _drop_dead() -> None:
    while _dead:
        node = _dead.popleft()
        graph.drop_node(node)
        _tracked.discard(node)
        for key in _known_by_node.pop(node, ()):
            known.discard(key)
            other = _known_by_node.get(key[1] if key[0] is node else key[0])
            if other is not None:
                other.discard(key)


def reset() -> None:
    """Forget the lock-order graph (tests)."""
    with _graph_lock:
        global graph
        graph = LockOrderGraph(name_of=_name)
        known.clear()
        _known_by_node.clear()
        _tracked.clear()


# ---------------------------------------------------------------------------------------
# Lock order

_SEMAPHORES = ("Semaphore", "BoundedSemaphore")


def _orders(prim: Any, info: Any) -> bool:
    """Does this primitive take part in lock ordering? Locks always; a semaphore only once
    it has been seen used as a mutex (released by the thread that acquired it)."""
    return info.kind not in _SEMAPHORES or getattr(prim, "_as_lock", None) is True


def _contained(fn: Any) -> Any:
    """Detection runs inside the program's lock calls: an error of its own is counted and
    reported once (recorder.internal_error), never raised into the program. What detection
    raises on purpose passes: DeadlockError (policy "raise"), a warning the program turned
    into an error, the process exit of policy "exit"."""
    name = f"detection ({fn.__name__})"

    @functools.wraps(fn)
    def contained(*args: Any) -> Any:
        try:
            return fn(*args)
        except (F.DeadlockError, Warning):
            raise
        except Exception as exc:  # noqa: BLE001 - the tracer must not break the program
            from . import recorder
            recorder.internal_error(name, exc)
            return None

    return contained


@_contained
def on_acquire(st: Any, prim: Any, bounded: bool) -> None:
    cfg = _config.get()
    if not cfg.detection or st.guard:
        return
    info = info_of(prim)
    if info is None or not _orders(prim, info):
        return
    dst = node_of(info)
    by_site = cfg.identity == "site"
    new_cycles: list[Cycle] = []
    stack = None
    held = list(st.held)
    with _graph_lock:
        if _dead:
            _drop_dead()
        held_nodes = None
        for h in held:
            if h is prim:
                continue
            hinfo = info_of(h)
            if hinfo is None or not _orders(h, hinfo):
                continue
            src = node_of(hinfo)
            edge = graph.edges.get((src, dst))
            if edge is not None and (bounded or not edge.bounded):
                edge.count += 1
                continue
            if stack is None:
                stack = F.current_stack(3)
            if held_nodes is None:
                held_nodes = [node_of(i) for i in map(info_of, held) if i is not None]
            for node, obj in ((src, h), (dst, prim)):
                if node not in _tracked and not by_site:
                    _tracked.add(node)
                    try:
                        weakref.finalize(obj, _on_collected, node)
                    except TypeError:
                        pass
            new_cycles += graph.add_edge(src, dst, thread=st.name, thread_ident=st.uid,
                                         held=held_nodes, stack=stack, bounded=bounded,
                                         context=context)
            if not bounded and not by_site:
                key = (hinfo, info)
                known.add(key)
                _known_by_node.setdefault(hinfo, set()).add(key)
                _known_by_node.setdefault(info, set()).add(key)
    for cycle in new_cycles:
        _report_cycle(cycle, st)


@_contained
def released_elsewhere(owner: Any, prim: Any, releaser: Any) -> None:
    """``prim`` was released, but not as the last item of its owner's held list.

    The owner may be another thread, changing its list meanwhile (a Semaphore acquired by
    one thread and released by another): the search starts over if the list shrank under
    it. Between the identity check and the ``del`` the interpreter cannot switch threads
    (no call or backward jump), so the item deleted is the one found."""
    held = owner.held
    for _ in range(100):
        try:
            for i in range(len(held) - 1, -1, -1):
                if held[i] is prim:
                    del held[i]
                    break
            break
        except IndexError:
            continue
    if releaser is not owner:
        info = info_of(prim)
        if info is not None:
            with _graph_lock:
                graph.mark_signal(node_of(info))


def _report_cycle(cycle: Cycle, st: Any) -> None:
    cfg = _config.get()
    if cycle.single_thread and not cfg.single_thread_cycles:
        return
    names = [_name(n) for n in cycle.nodes]
    chain = " -> ".join(names + [names[0]])
    if cycle.guarded_by:
        kind = "guarded-cycle"
        gates = sorted(_name(g) for g in cycle.guarded_by)
        msg = f"lock-order cycle {chain}, every edge taken while holding {', '.join(gates)}"
    else:
        kind = "potential-deadlock"
        gates = []
        where = ("within one thread (another thread taking the locks in this order "
                 "could deadlock with it)" if cycle.single_thread else "across threads")
        msg = f"lock-order inversion {chain}, seen {where}"
        if cycle.bounded:
            msg += "; some acquires have timeouts, so it can stall but not hang forever"
    locks = tuple(_lock_ref(n) for n in cycle.nodes)
    edges = tuple(F.EdgeRef(_name(e.src), _name(e.dst), e.thread, e.bounded,
                            tuple(F.Frame(*f) if not isinstance(f, F.Frame) else f
                                  for f in e.stack), e.context) for e in cycle.edges)
    threads = {}
    for e in cycle.edges:
        t = threads.setdefault(e.thread_ident, {"name": e.thread, "holds": [], "wants": []})
        t["holds"].append(_name(e.src))
        t["wants"].append(_name(e.dst))
    trefs = tuple(F.ThreadRef(t["name"], ident, tuple(t["holds"]), ", ".join(t["wants"]), ())
                  for ident, t in threads.items())
    finding = F.Finding(kind=kind, message=msg, fingerprint=cycle.fingerprint, locks=locks,
                        threads=trefs, edges=edges, single_thread=cycle.single_thread,
                        bounded=cycle.bounded, guarded_by=tuple(gates))
    if F.add(finding):
        F.publish(finding, st)


def _lock_ref(node: Hashable) -> F.LockRef:
    if isinstance(node, tuple):
        return F.LockRef(node[1], node[0], None, None, None)
    site = node.site
    return F.LockRef(node.name, node.kind, site.file if site else None,
                     site.line if site else None, site.function if site else None)


# ---------------------------------------------------------------------------------------
# Wait-for graph (actual deadlocks)

def owner_of(obj: Any) -> Any:
    """The ThreadState that must act for a wait on ``obj`` to end, if there is one."""
    st = getattr(obj, "_tt_state", None)  # a Thread being joined
    if st is not None:
        return st
    return getattr(obj, "_owner", None)


@_contained
def before_block(st: Any, prim: Any, bounded: bool) -> None:
    """About to block on ``prim`` (Lock, RLock, Thread). Reports (and per policy raises or
    exits) if this wait closes a wait-for cycle. Sets ``st.blocked_on``: the caller clears
    it after the wait."""
    cfg = _config.get()
    st.blocked_on = None if bounded else prim
    if bounded or not cfg.detection or st.guard:
        return
    owner = owner_of(prim)
    if owner is None:
        return
    path = [(st, prim)]
    seen = {id(st)}
    cur = owner
    while cur is not None and id(cur) not in seen:
        nxt = cur.blocked_on
        if nxt is None:
            return
        path.append((cur, nxt))
        seen.add(id(cur))
        cur = owner_of(nxt)
    if cur is not st:
        return
    _deadlock(path, st, cfg)


def _describe(obj: Any, instance: bool = True) -> str:
    """``Kind name``; with ``instance``, locks that share a default (creation-site) name
    get ``#id`` so five forks made on one line can be told apart in a report."""
    info = info_of(obj) or getattr(obj, "_tt_info", None)
    if info is None:
        return repr(obj)
    if instance and info.site is not None and info.kind != "Thread" and \
            info.name == f"{info.site.file}:{info.site.line}":
        return f"{info.kind} {info.name} #{info.id}"
    return f"{info.kind} {info.name}"


def _deadlock(path: list, st: Any, cfg: Any) -> None:
    threads = []
    frames = sys._current_frames()
    for tst, waits in path:
        holds = tuple(_describe(h) for h in list(tst.held))
        held_at = tuple((_describe(h), tst.held_sites.get(id(h))) for h in list(tst.held))
        stack = (F.current_stack(3) if tst is st
                 else F.frames_of(frames.get(tst.ident)))
        threads.append(F.ThreadRef(tst.name, tst.ident, holds, _describe(waits), stack,
                                   held_at))
    if len(path) == 1:
        msg = (f"thread {st.name!r} tries to acquire {_describe(path[0][1])}, which it "
               "already holds: a Lock is not reentrant, this wait never ends "
               "(use an RLock, or release first)")
    else:
        chain = "; ".join(f"{t.name!r} holds {', '.join(t.holds) or 'nothing'} and waits "
                          f"for {t.waits_for}" for t in threads)
        msg = f"deadlock between {len(path)} threads: {chain}"
    names = sorted(_describe(w, instance=False) for _, w in path)
    import hashlib
    fp = hashlib.sha256("\x00".join(["deadlock"] + names).encode()).hexdigest()[:16]
    locks = tuple(_lock_ref(info_of(w)) for _, w in path if info_of(w) is not None)
    finding = F.Finding(kind="deadlock", message=msg, fingerprint=fp, locks=locks,
                        threads=tuple(threads), single_thread=len(path) == 1)
    new = F.add(finding)
    if new:
        F.publish(finding, st)
    policy = cfg.on_deadlock
    if policy == "raise":
        st.blocked_on = None
        raise F.DeadlockError(msg, finding)
    if policy == "exit":
        F.end_process(_config.EXIT_DEADLOCK)
