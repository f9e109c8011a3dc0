"""The lock-order graph: potential deadlocks, found the moment they become possible.

Idea (Linux lockdep's, with Python's semantics)
-----------------------------------------------
Whenever a thread that holds lock A does a *blocking* acquire of lock B, the program has
shown that it may hold A while waiting for B: an edge A -> B. If the graph ever contains a
cycle A -> B -> ... -> A, some interleaving of the threads that took those edges can
deadlock, even if this run never did. So we keep every edge ever taken and look for a cycle
exactly when an edge is *new*: a path from B back to A closes one. Repeated edges cost a
dictionary lookup and nothing else; the search (a breadth-first walk, so the shortest
cycle through the new edge is the one shown) runs once per new edge.

Invariants and choices
- Nodes are keys chosen by the caller: a primitive's ``PrimitiveInfo`` (identity by
  instance, the default; ids never reused) or a ``(kind, name)`` pair (identity by creation
  site, which merges the many locks created at one line). A node disappears with its lock
  (``drop_node``), so memory follows the live locks, not the history.
- Memory is budgeted (docs/detection.md, "Memory"): an edge is a slotted object (~300 B
  with its dict, set and index entries), stacks are interned, the other locks held are a
  tuple (empty, shared, in the usual case of one lock held), and the graph holds at most
  ``max_edges`` edges. At the cap, a new edge is not kept (counted in ``not_kept``, said
  once in the report as "graph truncated at N edges"); edges already kept go on counting.
- An edge remembers how it was first seen: the thread, the other locks held (a *gate*
  common to every edge of a cycle makes the cycle harmless: "guarded"), the stack, and
  whether every acquire that took it had a timeout ("bounded": it can stall, never hang).
  An edge seen bounded first and unbounded later is upgraded, and that upgrade re-runs the
  search, because it can turn a harmless cycle into a real one.
- Each cycle is reported once, by a fingerprint of its nodes' stable keys (``key_of``:
  what identifies a lock across runs and edits, docs/report.md "Fingerprints"; by
  default its name) in their smallest rotation; later closings of the same cycle, and
  cycles through other instances made by the same statements, only count.
- Nodes marked *signal* (a Lock or Semaphore released by a thread that did not acquire
  it: it is used as a signal, not a mutex), and every node of the same name (made at the
  same line, or given the same ``name=``: the same part in the program, as lockdep's
  lock classes), are left out of cycles, and the cycles found
  through one before its first such release are withdrawn when it comes: an edge into a
  signal says "waited for a hand-off while holding A", which no lock order can invert.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Iterable, TypeVar

# The node type, chosen by the caller (see above).
N = TypeVar("N", bound=Hashable)


@dataclass(slots=True)
class Edge(Generic[N]):
    src: N
    dst: N
    thread: str
    thread_ident: int
    held: tuple      # the other nodes held when the edge was first taken (src is implied)
    stack: tuple     # frames (file, line, function) where it was first taken (interned)
    bounded: bool    # only ever taken with a timeout
    count: int = 1
    context: str = ""  # what was running when it was first taken (e.g. a pytest test id)


@dataclass
class Cycle(Generic[N]):
    nodes: list[N]           # [n0, n1, ..., n0 is implied]: n_i -> n_{i+1}
    edges: list[Edge[N]]
    fingerprint: str
    single_thread: bool
    guarded_by: frozenset[N]  # gate nodes common to every edge (empty: not guarded)
    bounded: bool            # some edge only ever taken with a timeout
    hits: int = 1
    extra: dict = field(default_factory=dict)


class LockOrderGraph(Generic[N]):
    """Edges between lock nodes, with incremental cycle detection on new edges."""

    # Distinct stacks kept shared between edges; past this many, new ones are not shared.
    STACKS_MAX = 65_536

    def __init__(self, name_of: Callable[[N], str] = str,
                 key_of: Callable[[N], str] | None = None,
                 max_edges: int | None = None, unbounded: set | None = None) -> None:
        self.name_of = name_of
        self.key_of = key_of or name_of
        self.max_edges = max_edges       # None: no cap
        self.not_kept = 0                # new edges not kept because of the cap
        # The keys of the edges taken at least once without a timeout, kept up to date
        # here (the C fast paths look an acquire's edge up in this set).
        self.unbounded = unbounded if unbounded is not None else set()
        self._stacks: dict[tuple, tuple] = {}   # the frames' ids -> the stack
        self.edges: dict[tuple[N, N], Edge[N]] = {}
        self.succ: dict[N, set[N]] = {}
        self.pred: dict[N, set[N]] = {}
        self.signal: set[N] = set()         # nodes used as signals (left out of cycles)
        self.signal_names: set = set()   # their names: a lock made where a signal was made
        #                                  (or given its name) is one too
        self.cycles: dict[str, Cycle[N]] = {}

    # -- building -----------------------------------------------------------------------
    def has_edge(self, src: N, dst: N) -> bool:
        return (src, dst) in self.edges

    def full(self) -> bool:
        """At the cap: a new edge would not be kept."""
        return self.max_edges is not None and len(self.edges) >= self.max_edges

    def truncated(self) -> int | None:
        """The cap, if new edges were left out because of it (None: nothing was)."""
        return self.max_edges if self.not_kept else None

    def add_edge(self, src: N, dst: N, *, thread: str = "", thread_ident: int = 0,
                 held: Iterable[N] = (), stack: tuple = (), bounded: bool = False,
                 context: str = "") -> list[Cycle[N]]:
        """Record that ``dst`` was acquired while ``src`` was held. Returns the cycles this
        edge closes that were not known before (empty for repeated edges)."""
        if src == dst:
            return []
        key = (src, dst)
        edge = self.edges.get(key)
        if edge is not None:
            edge.count += 1
            if edge.bounded and not bounded:
                edge.bounded = False  # now it can wait forever: look again
                self.unbounded.add(key)
                return self._check(edge)
            return []
        if self.full():
            self.not_kept += 1
            return []
        if not held or (type(held) is list and len(held) == 1 and held[0] == src):
            others: tuple = ()   # (the usual case: only src held)
        else:
            others = tuple(dict.fromkeys(n for n in held if n != src))
        if stack:
            # Interned by the frames' ids: the kept stack keeps its frames alive, so ids
            # found here are its frames (hashing a tuple of frames hashes each one).
            ids = tuple(map(id, stack))
            shared = self._stacks.get(ids)
            if shared is not None:
                stack = shared
            elif len(self._stacks) < self.STACKS_MAX:
                self._stacks[ids] = stack
        edge = Edge(src, dst, thread, thread_ident, others, stack, bounded,
                    context=context)
        self.edges[key] = edge
        if not bounded:
            self.unbounded.add(key)
        if self.signal_names:
            for node in (src, dst):
                if node not in self.succ and node not in self.pred and \
                        self.name_of(node) in self.signal_names:
                    self.signal.add(node)
        self.succ.setdefault(src, set()).add(dst)
        self.pred.setdefault(dst, set()).add(src)
        return self._check(edge)

    def mark_signal(self, node: N) -> list[Cycle[N]]:
        """``node`` is a signal, not a mutex: it and every node of the same name (locks
        made at the same line play the same part) leave cycle detection, and the cycles
        already found through them are withdrawn (returned, for their findings to go)."""
        name = self.name_of(node)
        self.signal.add(node)
        if name in self.signal_names:
            return []   # its name's nodes and cycles were dealt with when it was first seen
        self.signal_names.add(name)
        for other in set(self.succ) | set(self.pred):
            if self.name_of(other) == name:
                self.signal.add(other)
        gone = [c for c in self.cycles.values()
                if any(self.name_of(n) == name for n in c.nodes)]
        for c in gone:
            del self.cycles[c.fingerprint]
        return gone

    def drop_node(self, node: N) -> None:
        """Forget a node and its edges (its lock was garbage-collected)."""
        unbounded = self.unbounded
        for dst in self.succ.pop(node, ()):
            self.edges.pop((node, dst), None)
            unbounded.discard((node, dst))
            self.pred.get(dst, set()).discard(node)
        for src in self.pred.pop(node, ()):
            self.edges.pop((src, node), None)
            unbounded.discard((src, node))
            self.succ.get(src, set()).discard(node)
        self.signal.discard(node)

    # -- searching ----------------------------------------------------------------------
    def _check(self, edge: Edge[N]) -> list[Cycle[N]]:
        if edge.src in self.signal or edge.dst in self.signal:
            return []
        path = self._path(edge.dst, edge.src)
        if path is None:
            return []
        nodes = [edge.src] + path[:-1]  # src -> dst -> ... -> (back to src)
        edges = [self.edges[(nodes[i], nodes[(i + 1) % len(nodes)])]
                 for i in range(len(nodes))]
        fp = self.fingerprint(nodes)
        known = self.cycles.get(fp)
        if known is not None:
            known.hits += 1
            if known.bounded and not any(e.bounded for e in edges):
                known.bounded = False
                known.edges = edges
                return [known]  # it just became able to hang: report it again
            return []
        gate = frozenset.intersection(*(frozenset(e.held) | {e.src} for e in edges)
                                      ) - set(nodes)
        cycle = Cycle(nodes=nodes, edges=edges, fingerprint=fp,
                      single_thread=len({e.thread_ident for e in edges}) == 1,
                      guarded_by=gate, bounded=any(e.bounded for e in edges))
        self.cycles[fp] = cycle
        return [cycle]

    def _path(self, start: N, goal: N) -> list[N] | None:
        """Shortest path start -> ... -> goal (as a node list ending with goal)."""
        if start == goal:
            return [goal]
        if not self.succ.get(start):
            return None   # (the usual new edge: into a lock that was never held over another)
        parent: dict[N, N] = {start: start}
        queue = deque([start])
        signal = self.signal
        while queue:
            node = queue.popleft()
            for nxt in self.succ.get(node, ()):
                if nxt in parent or nxt in signal:
                    continue
                parent[nxt] = node
                if nxt == goal:
                    path = [goal]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                queue.append(nxt)
        return None

    def fingerprint(self, nodes: list[N]) -> str:
        keys = [self.key_of(n) for n in nodes]
        # The smallest rotation: the same cycle found from any edge of it gets the same
        # fingerprint, also when a key comes twice (two instances made by one statement);
        # keys name what a lock is, not where it is now, so it is stable across runs.
        canon = min(keys[i:] + keys[:i] for i in range(len(keys)))
        return hashlib.sha256("\x00".join(canon).encode("utf-8", "surrogatepass")
                              ).hexdigest()[:16]

    def stats(self) -> dict[str, int]:
        return {"nodes": len(set(self.succ) | set(self.pred)), "edges": len(self.edges),
                "cycles": len(self.cycles), "not_kept": self.not_kept}
