"""A finding's cycle as a graph in inline SVG: locks as nodes, each edge labelled with the
thread that took it and where, the cycle's edges highlighted (other lock-order edges
between the same locks, from the report's graph, drawn thin and grey).

Where the nodes go is the layout's job, and there are two:

- **Graphviz ``dot``**, when it is installed: it places nodes and routes curved edges
  around each other and their labels, which matters from three locks up. It is asked for
  positions only (``dot -Tplain``: node centres, edge splines, label centres), with
  neutral node ids and placeholder labels of the real labels' sizes; it never sees a
  lock name, a thread name or a path, and none of its output is copied into the page but
  numbers. So the SVG is written by this module in both cases — one drawing code, one
  place where strings are escaped — and a Graphviz that misbehaves (missing, slow,
  failing, printing something unexpected) means the fallback, never a broken page. It
  runs with a timeout (``DOT_TIMEOUT_S``).
- **Nodes on a circle**, in cycle order, edges bent to one side so the two edges of a
  two-lock inversion do not overlap: the cycle reads around the circle. Pure Python,
  always there.

Text sizes are estimated from a monospace font (``CHAR_W`` per character), the font the
page uses for names; long names are cut (keeping their end: file and line) and shown
whole in the node's tooltip.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .htmltext import esc, plain, shorten

DOT_TIMEOUT_S = 10.0
CHAR_W = 7.3            # px per character of 12px monospace
NODE_H = 42.0
NAME_CHARS = 56         # longer lock names are cut in the node (whole in its tooltip)
LABEL_CHARS = 44
ARROW = 10.0            # arrowhead length; an edge's path stops this short of its node
MARGIN = 16.0
MAX_OTHER_EDGES = 30


@dataclass
class Node:
    id: str
    name: str
    kind: str

    @property
    def width(self) -> float:
        return max(len(shorten(plain(self.name), NAME_CHARS)), len(self.kind), 6) * CHAR_W + 24


@dataclass
class Edge:
    src: str
    dst: str
    thread: str
    site: str
    in_cycle: bool
    stack: list = field(default_factory=list)

    def lines(self) -> list[str]:
        return [shorten(plain(f"thread {self.thread}"), LABEL_CHARS),
                shorten(plain(self.site or "?"), LABEL_CHARS)]

    @property
    def label_size(self) -> tuple[float, float]:
        return max(len(line) for line in self.lines()) * CHAR_W + 8, 32.0


@dataclass
class Layout:
    width: float
    height: float
    centres: dict[str, tuple[float, float]]
    paths: list[str]                       # per edge, an SVG path
    labels: list[tuple[float, float]]      # per edge, its label's centre
    engine: str


def _shown(lock: dict[str, Any]) -> str:
    """``Kind name``, or ``Kind label (name)`` where the code names the lock (a finding's
    edges and threads name locks so)."""
    label = lock.get("label")
    if isinstance(label, str) and label:
        return f"{lock['kind']} {label} ({lock['name']})"
    return f"{lock['kind']} {lock['name']}"


def _node_id(lock: dict[str, Any]) -> str:
    """The id the report's edges use for a lock: ``_shown``, ``#n`` for an instance."""
    inst = lock.get("instance")
    return _shown(lock) + (f" #{inst}" if inst else "")


def _graph_ids(graph: dict[str, Any] | None) -> dict[str, str]:
    """The report graph's node ids (``Kind name #n``, the names merging matches) -> the
    ids a finding's edges use for the same locks (``Kind label (name) #n``)."""
    out = {}
    for n in (graph or {}).get("nodes", []):
        ident, kind, name = n.get("id"), n.get("kind"), n.get("name")
        if isinstance(ident, str) and isinstance(kind, str) and isinstance(name, str) \
                and ident.startswith(f"{kind} {name}"):
            out[ident] = _shown(n) + ident[len(f"{kind} {name}"):]
    return out


def _site(stack: list[dict[str, Any]]) -> str:
    if not stack:
        return ""
    fr = stack[-1]
    return f"{fr['file']}:{fr['line']}"


def of_finding(finding: dict[str, Any], graph: dict[str, Any] | None = None
               ) -> tuple[list[Node], list[Edge]]:
    """The nodes (in cycle order) and edges to draw for ``finding``. A lock-order cycle
    has its edges; a deadlock has threads each holding a lock another waits for, drawn as
    the same kind of edge (held -> wanted), its nodes named as the threads name them (a
    deadlock's ``locks`` may not number instances of one name; its threads do)."""
    nodes: dict[str, Node] = {}

    def node(ident: str, lock: dict[str, Any] | None = None) -> None:
        if ident in nodes:
            return
        if lock is not None:
            nodes[ident] = Node(ident, _shown(lock).partition(" ")[2] + (
                f" #{lock['instance']}" if lock.get("instance") else ""), lock["kind"])
        else:   # ``Kind name``, as the report's edges and threads name locks
            kind, _, name = ident.partition(" ")
            nodes[ident] = Node(ident, name or kind, kind if name else "")

    edges = []
    if finding.get("edges"):
        for lk in finding.get("locks", []):
            node(_node_id(lk), lk)
        for e in finding["edges"]:
            node(e["from"])
            node(e["to"])
            edges.append(Edge(e["from"], e["to"], e["thread"], _site(e.get("stack", [])),
                              True, e.get("stack", [])))
    else:
        threads = finding.get("threads", [])
        wanted = {t["waits_for"] for t in threads if t.get("waits_for")}
        for t in threads:
            for held in t.get("holds", []):
                if held in wanted:   # a lock of the cycle (not one merely held besides)
                    node(held)
                    node(t["waits_for"])
                    edges.append(Edge(held, t["waits_for"], t["name"],
                                      _site(t.get("stack", [])), True, t.get("stack", [])))
        if not nodes:   # a hang: what it waits on, no cycle
            for lk in finding.get("locks", []):
                node(_node_id(lk), lk)
    taken = {(e.src, e.dst) for e in edges}
    ids = _graph_ids(graph)
    other = []
    for e in (graph or {}).get("edges", []):
        src, dst = ids.get(e["from"], e["from"]), ids.get(e["to"], e["to"])
        if src in nodes and dst in nodes and (src, dst) not in taken:
            other.append((src, dst, e))
    for src, dst, e in other[:MAX_OTHER_EDGES]:
        taken.add((src, dst))
        edges.append(Edge(src, dst, e["thread"], _site(e.get("stack", [])), False,
                          e.get("stack", [])))
    return list(nodes.values()), edges


# -- layout: dot ------------------------------------------------------------------------
def _dot_source(nodes: list[Node], edges: list[Edge]) -> str:
    """The graph with ids n0, n1… and labels of x's: sizes, never names."""
    index = {n.id: i for i, n in enumerate(nodes)}
    out = ["digraph cycle {", "graph [rankdir=TB, nodesep=0.6, ranksep=0.7];",
           'node [shape=box, fixedsize=true, label=""];',
           "edge [fontname=Courier, fontsize=12];"]
    for i, n in enumerate(nodes):
        out.append(f"n{i} [width={n.width / 72:.3f}, height={NODE_H / 72:.3f}];")
    for e in edges:
        placeholder = "\\n".join("x" * len(line) for line in e.lines())
        out.append(f'n{index[e.src]} -> n{index[e.dst]} [label="{placeholder}"];')
    out.append("}")
    return "\n".join(out)


def dot_layout(nodes: list[Node], edges: list[Edge], exe: str | None = None,
               timeout: float = DOT_TIMEOUT_S) -> Layout | None:
    """The layout ``dot`` computes, or None when there is no dot or it failed (in any
    way: the caller then lays the graph out itself)."""
    exe = exe or shutil.which("dot")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-Tplain"], input=_dot_source(nodes, edges),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        return _from_plain(proc.stdout, nodes, edges)
    except (ValueError, IndexError, KeyError):
        return None


def _from_plain(text: str, nodes: list[Node], edges: list[Edge]) -> Layout:
    """Graphviz's plain format (inches, y upwards) to SVG pixels (y downwards).
    Raises ValueError/IndexError/KeyError on anything it does not expect."""
    height = 0.0
    centres: dict[str, tuple[float, float]] = {}
    routes: dict[tuple[int, int], list[tuple[list[float], tuple[float, float] | None]]] = {}
    width = 0.0
    for line in text.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "graph":
            width, height = float(tok[2]) * 72, float(tok[3]) * 72
        elif tok[0] == "node":
            centres[nodes[int(tok[1][1:])].id] = (float(tok[2]) * 72, float(tok[3]) * 72)
        elif tok[0] == "edge":
            n = int(tok[3])
            coords = [float(v) * 72 for v in tok[4:4 + 2 * n]]
            rest = tok[4 + 2 * n:]
            label = (float(rest[1]) * 72, float(rest[2]) * 72) if len(rest) >= 5 else None
            routes.setdefault((int(tok[1][1:]), int(tok[2][1:])), []).append((coords, label))
    if len(centres) != len(nodes):
        raise ValueError("dot left out a node")

    def flip(x: float, y: float) -> tuple[float, float]:
        return x + MARGIN, height - y + MARGIN

    index = {n.id: i for i, n in enumerate(nodes)}
    paths, labels = [], []
    for e in edges:
        coords, label = routes[(index[e.src], index[e.dst])].pop(0)
        pts = [flip(coords[i], coords[i + 1]) for i in range(0, len(coords), 2)]
        if len(pts) < 4 or (len(pts) - 1) % 3:
            raise ValueError("not a cubic B-spline")
        d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}" + "".join(
            " C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts[i:i + 3])
            for i in range(1, len(pts), 3))
        paths.append(d)
        labels.append(flip(*label) if label else pts[len(pts) // 2])
    return Layout(width + 2 * MARGIN, height + 2 * MARGIN,
                  {k: flip(*v) for k, v in centres.items()}, paths, labels, "dot")


# -- layout: a circle -------------------------------------------------------------------
def _border(c: tuple[float, float], toward: tuple[float, float], node: Node,
            back: float = 0.0) -> tuple[float, float]:
    """Where the ray from ``c`` toward ``toward`` leaves ``node``'s box, ``back`` further."""
    dx, dy = toward[0] - c[0], toward[1] - c[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    t = min(node.width / 2 / abs(ux) if ux else math.inf,
            NODE_H / 2 / abs(uy) if uy else math.inf)
    return c[0] + ux * (t + back), c[1] + uy * (t + back)


def circle_layout(nodes: list[Node], edges: list[Edge]) -> Layout:
    n = len(nodes)
    widest = max((nd.width for nd in nodes), default=60.0)
    radius = 0.0 if n < 2 else max(110.0, (widest + 60) / (2 * math.sin(math.pi / n)))
    centres = {nd.id: (radius * math.cos(-math.pi / 2 + 2 * math.pi * i / n),
                       radius * math.sin(-math.pi / 2 + 2 * math.pi * i / n))
               for i, nd in enumerate(nodes)}
    by_id = {nd.id: nd for nd in nodes}
    paths, labels = [], []
    boxes = [(x - by_id[k].width / 2, y - NODE_H / 2, x + by_id[k].width / 2, y + NODE_H / 2)
             for k, (x, y) in centres.items()]
    for e in edges:
        a, b = centres[e.src], centres[e.dst]
        if e.src == e.dst:   # a lock re-acquired by its holder: a loop on its right side
            right = a[0] + by_id[e.src].width / 2
            top, bottom = a[1] - NODE_H / 4, a[1] + NODE_H / 4
            paths.append(f"M{right:.1f},{top:.1f} C{right + 60:.1f},{top - 30:.1f} "
                         f"{right + 60:.1f},{bottom + 30:.1f} {right + ARROW:.1f},{bottom:.1f}")
            labels.append((right + 60 + e.label_size[0] / 2, a[1]))
            continue
        dx, dy = b[0] - a[0], b[1] - a[1]
        dist = math.hypot(dx, dy) or 1.0
        bend = 0.22 * dist   # to the right of the direction of travel
        ctrl = ((a[0] + b[0]) / 2 - dy / dist * bend, (a[1] + b[1]) / 2 + dx / dist * bend)
        start = _border(a, ctrl, by_id[e.src])
        end = _border(b, ctrl, by_id[e.dst], back=ARROW)
        paths.append(f"M{start[0]:.1f},{start[1]:.1f} Q{ctrl[0]:.1f},{ctrl[1]:.1f} "
                     f"{end[0]:.1f},{end[1]:.1f}")
        labels.append((0.25 * start[0] + 0.5 * ctrl[0] + 0.25 * end[0],
                       0.25 * start[1] + 0.5 * ctrl[1] + 0.25 * end[1]))
    for e, (x, y) in zip(edges, labels):
        w, h = e.label_size
        boxes.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    left = min((bx[0] for bx in boxes), default=0.0) - MARGIN
    top = min((bx[1] for bx in boxes), default=0.0) - MARGIN
    right = max((bx[2] for bx in boxes), default=0.0) + MARGIN
    bottom = max((bx[3] for bx in boxes), default=0.0) + MARGIN
    return Layout(right - left, bottom - top,
                  {k: (x - left, y - top) for k, (x, y) in centres.items()},
                  [_shift(p, -left, -top) for p in paths],
                  [(x - left, y - top) for x, y in labels], "circle")


def _shift(path: str, dx: float, dy: float) -> str:
    """An SVG path of absolute commands, each ``x,y`` pair moved by (dx, dy)."""
    out = []
    for word in path.split():
        cmd = word[0] if word[0].isalpha() else ""
        x, y = (float(v) for v in word[len(cmd):].split(","))
        out.append(f"{cmd}{x + dx:.1f},{y + dy:.1f}")
    return " ".join(out)


# -- drawing ----------------------------------------------------------------------------
def svg(finding: dict[str, Any], graph: dict[str, Any] | None = None, ident: str = "g",
        engine: str = "auto") -> str:
    """The inline ``<svg>`` of ``finding``'s cycle ("" when it names no lock). ``engine``:
    ``auto`` (dot if it works, else the circle), ``dot`` or ``circle``; ``ident`` makes
    the arrowheads' ids unique in the page."""
    nodes, edges = of_finding(finding, graph)
    if not nodes:
        return ""
    layout = dot_layout(nodes, edges) if engine in ("auto", "dot") else None
    if layout is None:
        layout = circle_layout(nodes, edges)
    w, h = layout.width, layout.height
    out = [f'<svg class="cycle" data-layout="{layout.engine}" width="{w:.0f}" '
           f'height="{h:.0f}" viewBox="0 0 {w:.1f} {h:.1f}" role="img" '
           f'aria-label="{esc(finding["kind"])}: {len(nodes)} locks">',
           "<defs>"]
    for tone in ("hot", "cold"):
        out.append(f'<marker id="{ident}-{tone}" class="arrow-{tone}" markerWidth="10" '
                   'markerHeight="8" refX="0" refY="4" orient="auto" '
                   'markerUnits="userSpaceOnUse"><path d="M0,0 L10,4 L0,8 z"/></marker>')
    out.append("</defs>")
    for e, d, (lx, ly) in zip(edges, layout.paths, layout.labels):
        tone = "hot" if e.in_cycle else "cold"
        first, second = e.lines()
        out.append(
            f'<g class="edge {"cycle-edge" if e.in_cycle else "other-edge"}" '
            f'data-from="{esc(e.src)}" data-to="{esc(e.dst)}" data-thread="{esc(e.thread)}">'
            f"<title>{esc(e.src)} → {esc(e.dst)}: thread {esc(e.thread)} at "
            f"{esc(e.site or '?')}</title>"
            f'<path d="{d}" marker-end="url(#{ident}-{tone})"/>'
            f'<text x="{lx:.1f}" y="{ly - 4:.1f}" text-anchor="middle">{esc(first)}</text>'
            f'<text class="site" x="{lx:.1f}" y="{ly + 11:.1f}" text-anchor="middle">'
            f"{esc(second)}</text></g>")
    for nd in nodes:
        x, y = layout.centres[nd.id]
        out.append(
            f'<g class="node" data-lock="{esc(nd.id)}"><title>{esc(nd.id)}</title>'
            f'<rect x="{x - nd.width / 2:.1f}" y="{y - NODE_H / 2:.1f}" '
            f'width="{nd.width:.1f}" height="{NODE_H:.1f}" rx="5"/>'
            f'<text class="name" x="{x:.1f}" y="{y - 2:.1f}" text-anchor="middle">'
            f"{esc(shorten(plain(nd.name), NAME_CHARS))}</text>"
            f'<text class="kind" x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle">'
            f"{esc(nd.kind)}</text></g>")
    out.append("</svg>")
    return "".join(out)
