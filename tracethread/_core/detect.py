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
import dataclasses
import functools
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any, Union

from . import _raw
from . import config as _config
from . import findings as F
from .errors import internal_error
from .state import live_states
from .lockorder import Cycle, LockOrderGraph

if TYPE_CHECKING:
    from .records import PrimitiveInfo, Site

    # A node of the lock-order graph: a primitive's info (identity "instance"), or for
    # identity "site" (kind, name), every instance of a name, or (kind, name, instance
    # number), one of two instances of a name taken together.
    Node = Union[tuple[str, str], tuple[str, str, int], PrimitiveInfo]

_graph_lock = _raw.allocate_lock()
_dead: collections.deque[Node] = collections.deque()   # nodes whose lock was collected
# nodes whose lock is watched (``_watch``) -> ((kind, name), instance number) (None: an
# instance node of identity "site")
_tracked: dict = {}
# node -> the weak reference to its lock whose callback queues the node on ``_dead``: a
# weakref that carries its node, and one callback for all (a ``weakref.finalize``, or a
# closure per node, allocates several objects the collector tracks, and the collections
# they trigger were a new edge's largest cost)
_refs: dict = {}
# (src_info, dst_info) of edges already taken without a timeout, by instance: the fast
# paths' "nothing new here" check. The graph keeps it (``LockOrderGraph.unbounded``): a
# key goes with its edge when either lock is collected.
known: set = set()
# Set by the pytest plugin to the running test's id: new edges remember it.
context = ""


def _name(node: Node) -> str:
    """``Kind name``: what every instance of a name shares (signals go by it)."""
    if isinstance(node, tuple):
        return f"{node[0]} {node[1]}"
    return f"{node.kind} {node.name}"


# Instances that share a name (made by one statement, or given one name: Account.lock of
# every account) are told apart in messages and in the report by an instance number per
# name, given in the order they enter the lock-order graph (two entering together: in the
# order they were made) or are first named in a deadlock message. Not the process-wide
# id: "#1" and "#2" of a program that runs the same way are the same numbers every run.
# The numbers of instance nodes are kept in _tracked, and go with them; _ordinals has
# those of the instances that are not nodes (named in a deadlock message; identity site).
_ordinals: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
_last_ordinal: dict = {}   # (kind, name) -> the last number given
_in_graph: dict = {}       # (kind, name) -> instance nodes of that name in the graph
# (kind, name) -> a creation site (identity "site": its nodes)
_site_of: dict[tuple[str, str], Site | None] = {}


def ordinal(info: Any) -> int:
    """The instance number of ``info`` among the primitives of its kind and name."""
    t = _tracked.get(info)
    if t is not None:
        return t[1]
    n = _ordinals.get(info)
    if n is None:
        n = _ordinals[info] = _next_ordinal(info)
    return n


def _next_ordinal(info: Any) -> int:
    group = (info.kind, info.name)
    n = _last_ordinal[group] = _last_ordinal.get(group, 0) + 1
    return n


def code_name(kind: str, name: str, site: Any) -> str | None:
    """The name the code gives a primitive whose name was made from its creation site
    (``Account.lock``: ``findings.assigned_name``), else None."""
    if site is not None and kind != "Thread" and name == f"{site.file}:{site.line}":
        return F.assigned_name(site)
    return None


def shown(kind: str, name: str, site: Any) -> str:
    """``Kind name``; a name made from the creation site with the name the code gives the
    primitive there, when its line says (``Lock Account.lock (bank.py:24)``)."""
    label = code_name(kind, name, site)
    return f"{kind} {label} ({name})" if label else f"{kind} {name}"


def _label(node: Node, shared: Any = None, named: bool = True) -> str:
    """How a node is shown: ``shown()`` (``named``; else ``Kind name``: the graph's node
    ids, which merging matches across runs), and ``#n`` for one of several instances of
    the name in the graph (``shared``: the (kind, name) pairs that have several; by
    default those the graph has now), and for an instance node of identity "site"."""
    if isinstance(node, tuple):
        text = (shown(node[0], node[1], _site_of.get((node[0], node[1]))) if named
                else f"{node[0]} {node[1]}")
        if len(node) > 2:
            return f"{text} #{node[2]}"
        return text
    text = shown(node.kind, node.name, node.site) if named else f"{node.kind} {node.name}"
    if _numbered(node, shared):
        return f"{text} #{ordinal(node)}"
    return text


def _numbered(node: Node, shared: Any = None) -> bool:
    if isinstance(node, tuple):
        return len(node) > 2
    t = _tracked.get(node)
    group = (node.kind, node.name) if t is None else t[0]
    return (group in shared) if shared is not None else (_in_graph.get(group, 0) > 1)


def instance_of(node: Node) -> int | None:
    """A node's instance number (None: a node standing for every instance of a name)."""
    if isinstance(node, tuple):
        return node[2] if len(node) > 2 else None
    t = _tracked.get(node)
    return _ordinals.get(node) if t is None else t[1]


def _key(node: Node) -> str:
    """What identifies the node's lock across runs and edits (docs/report.md,
    "Fingerprints"): instances made by one statement share it."""
    if isinstance(node, tuple):
        return F.lock_key(node[0], node[1], _site_of.get((node[0], node[1])))
    return F.info_key(node)


def _new_graph() -> LockOrderGraph[Node]:
    return LockOrderGraph(name_of=_name, key_of=_key, max_edges=_config.get().max_edges,
                          unbounded=known)


graph = _new_graph()


def _max_edges_changed(cfg: Any) -> None:
    graph.max_edges = cfg.max_edges


_config.on_change(_max_edges_changed)


def info_of(prim: Any) -> Any:
    info = getattr(prim, "_info", None)
    return info if info is not None else getattr(prim, "_self_info", None)


def node_of(info: Any) -> Node:
    if _config.get().identity == "site":
        return (info.kind, info.name)
    return info


class _NodeRef(weakref.ref):
    """A weak reference to a lock that knows its graph node."""

    __slots__ = ("node",)
    node: Any


def _collected(ref: _NodeRef) -> None:
    _dead.append(ref.node)


def _watch(obj: Any, node: Node) -> None:
    """Queue ``node`` on ``_dead`` when ``obj`` is garbage-collected (its edges go at the
    next graph operation, ``_drop_dead``). An object that takes no weak reference is
    never collected while its node is in the graph."""
    try:
        ref = _NodeRef(obj, _collected)
    except TypeError:
        return
    ref.node = node
    _refs[node] = ref


def _drop_dead() -> None:
    while _dead:
        node = _dead.popleft()
        graph.drop_node(node)
        _refs.pop(node, None)
        t = _tracked.pop(node, None)
        if t is not None:
            group = t[0]
            left = _in_graph.get(group, 0) - 1
            if left > 0:
                _in_graph[group] = left
            else:
                _in_graph.pop(group, None)


def reset() -> None:
    """Forget the lock-order graph (tests)."""
    with _graph_lock:
        global graph
        known.clear()
        graph = _new_graph()
        _tracked.clear()
        _refs.clear()
        _ordinals.clear()
        _last_ordinal.clear()
        _in_graph.clear()
        _site_of.clear()


# ---------------------------------------------------------------------------------------
# The graph as the layers above see it (``api.graph_snapshot``)

@dataclasses.dataclass(frozen=True)
class GraphNode:
    id: str                # how it is shown: ``Kind name``, ``#n`` when several share it
    name: str
    kind: str
    key: str               # the stable identity (docs/report.md, "Fingerprints")
    instance: int | None   # None: a node standing for every instance of a name
    site: Any              # a ``Site``-like (file, line, function) or None
    signal: bool           # released by another thread: left out of cycles
    label: str | None = None   # the name the code gives it (``code_name``), if any


@dataclasses.dataclass(frozen=True)
class GraphEdge:
    src: str               # node ids
    dst: str
    thread: str
    bounded: bool
    count: int
    context: str
    stack: tuple           # ``Frame``s, oldest first


@dataclasses.dataclass(frozen=True)
class GraphSnapshot:
    nodes: tuple
    edges: tuple
    truncated: dict | None   # {"max_edges": N, "not_kept": M} when the cap was reached


def snapshot() -> GraphSnapshot:
    """The lock-order graph now: nodes in the order they first appear in an edge."""
    with _graph_lock:
        edges = list(graph.edges.values())
        signal = set(graph.signal)
        cap, not_kept = graph.truncated(), graph.not_kept
    order: list = []
    seen: set = set()
    for e in edges:
        for n in (e.src, e.dst):
            if n not in seen:
                seen.add(n)
                order.append(n)
    count: dict = {}
    for n in order:
        if not isinstance(n, tuple):
            group = (n.kind, n.name)
            count[group] = count.get(group, 0) + 1
    shared = {g for g, c in count.items() if c > 1}
    nodes: dict = {}
    for n in order:
        ref = _lock_ref(n)
        made = _site(n)   # (the file, line and function of ref)
        site = None if made is None else F.Frame(made.file, made.line, made.function)
        nodes[n] = GraphNode(_label(n, shared, named=False), ref.name, ref.kind, _key(n),
                             instance_of(n), site, n in signal, ref.label)
    out = tuple(GraphEdge(nodes[e.src].id, nodes[e.dst].id, e.thread, e.bounded, e.count,
                          e.context, tuple(f if isinstance(f, F.Frame) else F.Frame(*f)
                                           for f in e.stack)) for e in edges)
    return GraphSnapshot(tuple(nodes.values()), out,
                         None if cap is None else {"max_edges": cap, "not_kept": not_kept})


# ---------------------------------------------------------------------------------------
# Lock order

_SEMAPHORES = ("Semaphore", "BoundedSemaphore")


def _orders(prim: Any, info: Any) -> bool:
    """Does this primitive take part in lock ordering? Locks always; a semaphore only once
    it has been seen used as a mutex (released by the thread that acquired it)."""
    return info.kind not in _SEMAPHORES or getattr(prim, "_as_lock", None) is True


def _contained(fn: Any) -> Any:
    """Detection runs inside the program's lock calls: an error of its own is counted and
    reported once (errors.internal_error), never raised into the program. What detection
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
            internal_error(name, exc)
            return None

    return contained


def _orphan_refs() -> int:
    """What ``sys.getrefcount`` says, in ``_forget_orphans``, of an object that only one
    list refers to (the interpreter's own references differ between versions)."""
    held = [object()]
    h = held[0]
    return sys.getrefcount(h)


_ORPHAN_REFS = _orphan_refs()


def _forget_orphans(st: Any) -> None:
    """Take off ``st``'s held list the primitives nothing else refers to: acquired, never
    released, and dropped by the program (a waiter lock of a hand-written Condition whose
    wait timed out). Nothing can release them any more; without the tracer they would be
    gone. Kept, they would pin their graph nodes for the thread's life and make every
    later cycle of the thread look "guarded" by them."""
    held = st.held
    for i in range(len(held) - 1, -1, -1):
        try:
            h = held[i]
        except IndexError:   # a release by another thread shortened the list
            continue
        if sys.getrefcount(h) - held.count(h) + 1 <= _ORPHAN_REFS:
            try:
                if held[i] is h:
                    del held[i]
            except IndexError:
                continue
            st.held_sites.pop(id(h), None)
        del h


@_contained
def on_acquire(st: Any, prim: Any, bounded: bool) -> None:
    cfg = _config.get()
    _forget_orphans(st)
    if not cfg.detection or st.guard:
        return
    info = info_of(prim)
    if info is None or not _orders(prim, info):
        return
    dst = node_of(info)
    by_site = cfg.identity == "site"
    new_cycles: list[Cycle[Node]] = []
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
            to = dst
            if by_site and src == to:
                # Two instances of one name (Account.lock of two accounts), one taken
                # while holding the other: kept apart as instance nodes, or transfer(a, b)
                # against transfer(b, a) would be a loop on one node, never a cycle.
                src, to = _instance_nodes(hinfo, info)
            edge = graph.edges.get((src, to))
            if edge is not None and (bounded or not edge.bounded):
                edge.count += 1
                continue
            if edge is None and graph.full():
                graph.not_kept += 1   # at the cap (docs/detection.md, "Memory")
                continue
            if stack is None:
                stack = F.current_stack(3)
            if held_nodes is None:
                held_nodes = [node_of(i) for i in map(info_of, held) if i is not None]
            gates = held_nodes if to is dst else [n for n in held_nodes if n != dst]
            # (two new instances are numbered in the order they were made)
            for node, ninfo, obj in (((src, hinfo, h), (to, info, prim))
                                     if hinfo.id < info.id else
                                     ((to, info, prim), (src, hinfo, h))):
                if node in _tracked:
                    continue
                if by_site:
                    _site_of.setdefault((ninfo.kind, ninfo.name), ninfo.site)
                    assert isinstance(node, tuple)   # (identity "site": nodes are tuples)
                    if len(node) == 2:
                        continue   # a node for every instance of a name: stays
                    _tracked[node] = None
                else:
                    group = (ninfo.kind, ninfo.name)
                    n = _ordinals.pop(ninfo, None) if _ordinals else None
                    if n is None:
                        n = _last_ordinal[group] = _last_ordinal.get(group, 0) + 1
                    _tracked[node] = (group, n)
                    _in_graph[group] = _in_graph.get(group, 0) + 1
                _watch(obj, node)
            new_cycles += graph.add_edge(src, to, thread=st.name, thread_ident=st.uid,
                                         held=gates, stack=stack, bounded=bounded,
                                         context=context)
    for cycle in new_cycles:
        _report_cycle(cycle, st)


def _instance_nodes(a: Any, b: Any) -> tuple:
    """Identity "site": the instance nodes of two primitives of one name (new ones are
    numbered in the order they were made)."""
    for info in sorted((a, b), key=lambda i: i.id):
        ordinal(info)
    return (a.kind, a.name, ordinal(a)), (b.kind, b.name, ordinal(b))


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
            node = node_of(info)
            with _graph_lock:
                gone = graph.mark_signal(node)
            for cycle in gone:
                F.withdraw("guarded-cycle" if cycle.guarded_by else "potential-deadlock",
                           cycle.fingerprint,
                           f"{_name(node)} was released by a thread that did not acquire "
                           f"it ({releaser.name!r}): a signal, not a mutex")


def _report_cycle(cycle: Cycle[Node], st: Any) -> None:
    cfg = _config.get()
    if cycle.single_thread and not cfg.single_thread_cycles:
        return
    names = [_label(n) for n in cycle.nodes]
    chain = " -> ".join(names + [names[0]])
    if cycle.guarded_by:
        kind = "guarded-cycle"
        gates = sorted(_label(g) for g in cycle.guarded_by)
        msg = f"lock-order cycle {chain}, every edge taken while holding {', '.join(gates)}"
    else:
        kind = "potential-deadlock"
        gates = []
        where = ("within one thread (another thread taking the locks in this order "
                 "could deadlock with it)" if cycle.single_thread else "across threads")
        msg = f"lock-order inversion {chain}, seen {where}"
        if cycle.bounded:
            msg += "; some acquires have timeouts, so it can stall but not hang forever"
    locks = tuple(_lock_ref(n, _numbered(n)) for n in cycle.nodes)
    edges = tuple(F.EdgeRef(_label(e.src), _label(e.dst), e.thread, e.bounded,
                            tuple(F.Frame(*f) if not isinstance(f, F.Frame) else f
                                  for f in e.stack), e.context) for e in cycle.edges)
    threads: dict[int, dict[str, Any]] = {}
    for e in cycle.edges:
        t = threads.setdefault(e.thread_ident, {"name": e.thread, "holds": [], "wants": []})
        t["holds"].append(_label(e.src))
        t["wants"].append(_label(e.dst))
    trefs = tuple(F.ThreadRef(t["name"], ident, tuple(t["holds"]), ", ".join(t["wants"]), ())
                  for ident, t in threads.items())
    finding = F.Finding(kind=kind, message=msg, fingerprint=cycle.fingerprint, locks=locks,
                        threads=trefs, edges=edges, single_thread=cycle.single_thread,
                        bounded=cycle.bounded, guarded_by=tuple(gates))
    if F.add(finding):
        F.publish(finding, st)


def _site(node: Node) -> Site | None:
    """Where the node's lock was made (identity "site": the first of the name seen)."""
    if isinstance(node, tuple):
        return _site_of.get((node[0], node[1]))
    return node.site


def _lock_ref(node: Node, numbered: bool = False) -> F.LockRef:
    """``numbered``: the node is shown with its instance number (one of several)."""
    instance = instance_of(node) if numbered else None
    site = _site(node)
    kind, name = (node[0], node[1]) if isinstance(node, tuple) else (node.kind, node.name)
    return F.LockRef(name, kind, site.file if site else None,
                     site.line if site else None, site.function if site else None, instance,
                     code_name(kind, name, site))


# ---------------------------------------------------------------------------------------
# Wait-for graph (actual deadlocks)
#
# A thread about to block follows the chain: the owner of what it waits for, what that
# owner waits for, ... A chain that comes back to it is a cycle. Whether the cycle is a
# deadlock *for certain* depends on who could still end one of its waits:
# - an RLock is released only by its owner and a joined thread ends only by itself, so a
#   cycle made of RLocks and joins is certain the moment it closes;
# - a Lock may be released by any thread (a Lock used as a signal, a reader-writer lock's
#   "last reader unlocks"): its "owner" is only the thread that acquired it. A cycle
#   through a Lock is certain at once only when no thread outside it can act: every
#   other live thread is itself blocked without a timeout in a traced wait. Otherwise the
#   closing thread waits ``deadlock_confirm`` seconds on the lock and looks again: the
#   same threads, waiting on the same primitives in the same waits (none woke, nothing
#   changed hands) mean it is a deadlock; a changed cycle is watched again; a broken one
#   was never a deadlock.
# Only the closing thread checks: the others were not in a cycle when they blocked.

_OWNER_ONLY = ("RLock", "Thread")


def owner_of(obj: Any) -> Any:
    """The ThreadState that must act for a wait on ``obj`` to end, if there is one."""
    st = getattr(obj, "_tt_state", None)  # a Thread being joined
    if st is not None:
        return st
    return getattr(obj, "_owner", None)


def _kind_of(obj: Any) -> str | None:
    info = info_of(obj) or getattr(obj, "_tt_info", None)
    return None if info is None else info.kind


def _chain(st: Any, prim: Any) -> list | None:
    """The wait-for cycle ``st`` closes by waiting on ``prim``, as [(state, waits on), ...]
    starting with ``st``; None when the chain does not come back to it."""
    owner = owner_of(prim)
    if owner is None:
        return None
    path = [(st, prim)]
    seen = {id(st)}
    cur = owner
    while cur is not None and id(cur) not in seen:
        nxt = cur.blocked_on
        if nxt is None:
            return None
        path.append((cur, nxt))
        seen.add(id(cur))
        cur = owner_of(nxt)
    return path if cur is st else None


def in_wait_cycle(st: Any) -> bool:
    """Is ``st`` blocked (without a timeout) in a wait-for cycle: the deadlock
    ``before_block`` reports?"""
    prim = st.blocked_on
    return prim is not None and _chain(st, prim) is not None


def _others_asleep(path: list) -> bool:
    """Is every live thread outside the cycle blocked without a timeout in a traced wait,
    so that none of them can release a Lock of it? Threads the tracer has no state for
    (never touched a traced primitive, or started before install) count as awake; the
    tracer's own threads do not count."""
    inside = {id(t) for t, _ in path}
    frames = sys._current_frames()
    by_ident = live_states(frames)
    for ident in frames:
        s = by_ident.get(ident)
        if s is None:
            return False
        if id(s) in inside or s.internal or s.blocked_on is not None:
            continue
        if s.waiting is not None and not s.wait_bounded:
            continue
        return False
    return True


def _certain(path: list) -> bool:
    return all(_kind_of(p) in _OWNER_ONLY for _, p in path) or _others_asleep(path)


def _snapshot(path: list) -> tuple:
    return tuple((t, p, t.wait_since) for t, p in path)


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x[0] is y[0] and x[1] is y[1] and x[2] == y[2]
                                    for x, y in zip(a, b))


@_contained
def before_block(st: Any, prim: Any, bounded: bool) -> Any:
    """About to block on ``prim`` (Lock, RLock, Thread). If this wait closes a wait-for
    cycle that is certain, reports it (and per policy raises or exits) before blocking.
    Returns None, or a snapshot of a cycle still to be confirmed: then the caller waits
    through ``wait_confirming``. Sets ``st.blocked_on``: the caller clears it after the
    wait."""
    cfg = _config.get()
    st.blocked_on = None if bounded else prim
    st.wait_bounded = bool(bounded)
    if bounded or not cfg.detection or st.guard:
        return None
    path = _chain(st, prim)
    if path is None:
        return None
    if cfg.deadlock_confirm and not _certain(path):
        return _snapshot(path)
    _deadlock(path, st, cfg)
    return None


# How often a suspected cycle is looked at again while it is being confirmed: it is
# reported early when every thread outside it has gone to sleep meanwhile.
_CONFIRM_STEP = 0.05


@_contained
def _confirm(st: Any, prim: Any, suspect: tuple, since: float) -> Any:
    """A look at a suspected cycle: ``(snapshot, since)`` to keep watching (``since`` is
    when this shape of it was first seen), or None (reported, or gone)."""
    path = _chain(st, prim)
    if path is None:
        return None
    snap = _snapshot(path)
    now = time.monotonic()
    changed = not _same(snap, suspect)
    if changed:
        since = now   # the cycle changed under us: watch the new one from now
    if _certain(path) or (not changed and now - since >= _config.get().deadlock_confirm):
        _deadlock(path, st, _config.get())
        return None
    return snap, since


def wait_confirming(st: Any, prim: Any, suspect: tuple, wait: Any) -> bool:
    """Wait on ``prim`` (``wait(seconds or None) -> bool``, None: without a timeout) while
    the suspected cycle ``suspect`` is confirmed or dropped (see above)."""
    since = time.monotonic()
    while True:
        if wait(min(_CONFIRM_STEP, _config.get().deadlock_confirm or _CONFIRM_STEP)):
            return True
        watching = _confirm(st, prim, suspect, since)
        if watching is None:
            return wait(None)
        suspect, since = watching


def _describe(obj: Any, instance: bool = True) -> str:
    """``Kind name``; with ``instance``, locks that share a default (creation-site) name,
    or a name that several instances in the lock-order graph have, get their instance
    number ``#n`` so five forks made on one line can be told apart in a report."""
    info = info_of(obj) or getattr(obj, "_tt_info", None)
    if info is None:
        return repr(obj)
    return describe_info(info, instance)


def describe_info(info: Any, instance: bool = True) -> str:
    """``_describe`` of a ``PrimitiveInfo`` (the watchdog's, for hang messages):
    ``shown()``, with ``#n`` telling apart the instances of one name."""
    default = info.site is not None and info.name == f"{info.site.file}:{info.site.line}"
    text = shown(info.kind, info.name, info.site)
    if instance and info.kind != "Thread" and (
            default or _in_graph.get((info.kind, info.name), 0) > 1):
        with _graph_lock:
            n = ordinal(info)
        return f"{text} #{n}"
    return text


def held_at(st: Any, stack: tuple) -> tuple:
    """(how each lock ``st`` holds is shown, where it was taken): the site recorded when
    it was taken after waiting, else the ``with``/``acquire()`` of it on the thread's
    stack (``findings.taken_at``), else None."""
    out = []
    for h in list(st.held):
        site = st.held_sites.get(id(h))
        if site is None:
            info = info_of(h)
            label = None if info is None else (
                code_name(info.kind, info.name, info.site) or
                (info.name if info.name.isidentifier() else None))
            if label:
                site = F.taken_at(stack, label)
        out.append((_describe(h), site))
    return tuple(out)


def _key_of(obj: Any) -> str:
    info = info_of(obj) or getattr(obj, "_tt_info", None)
    return type(obj).__name__ if info is None else F.info_key(info)


def _deadlock(path: list, st: Any, cfg: Any) -> None:
    threads = []
    frames = sys._current_frames()
    for tst, waits in path:
        holds = tuple(_describe(h) for h in list(tst.held))
        stack = (F.current_stack(3) if tst is st
                 else F.frames_of(frames.get(tst.ident)))
        threads.append(F.ThreadRef(tst.name, tst.ident, holds, _describe(waits), stack,
                                   held_at(tst, stack)))
    if len(path) == 1:
        msg = (f"thread {st.name!r} tries to acquire {_describe(path[0][1])}, which it "
               "already holds: a Lock is not reentrant, this wait never ends "
               "(use an RLock, or release first)")
    else:
        chain = "; ".join(f"{t.name!r} holds {', '.join(t.holds) or 'nothing'} and waits "
                          f"for {t.waits_for}" for t in threads)
        msg = f"deadlock between {len(path)} threads: {chain}"
    fp = F.fingerprint("deadlock", *sorted(_key_of(w) for _, w in path))
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
