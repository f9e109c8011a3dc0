"""The JSON report: a documented, versioned schema (docs/report.md).

Built from the statistics sink, the findings and the lock-order graph. Version 1.
"""

from __future__ import annotations

from typing import Any

from .._core import detect, findings as F
from .files import write_json
from .stats import StatsSink

SCHEMA_VERSION = 1


def _site(file: str | None, line: int | None, function: str | None) -> dict | None:
    if file is None:
        return None
    return {"file": file, "line": line, "function": function}


def _stack(frames: Any) -> list[dict]:
    return [{"file": fr.file, "line": fr.line, "function": fr.function} for fr in frames]


def finding_dict(f: F.Finding) -> dict[str, Any]:
    return {
        "kind": f.kind, "message": f.message, "fingerprint": f.fingerprint,
        "count": f.count, "single_thread": f.single_thread, "bounded": f.bounded,
        "guarded_by": list(f.guarded_by),
        "locks": [dict({"name": lk.name, "kind": lk.kind,
                        "site": _site(lk.file, lk.line, lk.function)},
                       **({} if lk.instance is None else {"instance": lk.instance}))
                  for lk in f.locks],
        "threads": [{"name": t.name, "holds": list(t.holds), "waits_for": t.waits_for,
                     "stack": _stack(t.stack),
                     "held_at": [{"lock": name, "site": None if fr is None else
                                  _site(fr.file, fr.line, fr.function)}
                                 for name, fr in t.held_at]} for t in f.threads],
        "edges": [{"from": e.src, "to": e.dst, "thread": e.thread, "bounded": e.bounded,
                   "context": e.context, "stack": _stack(e.stack)} for e in f.edges],
    }


def graph_dict() -> dict[str, Any]:
    """The lock-order graph. A node's ``id`` is its name (``Lock app.py:12``), with the
    instance number (``Lock app.py:5 #2``) when several nodes share the name; ``key`` is
    what its fingerprint part is made of (stable across runs: ``merge`` computes cycle
    fingerprints from it); ``instance`` its instance number (null: a node that stands for
    every instance of its name, identity "site")."""
    with detect._graph_lock:
        edges = list(detect.graph.edges.values())
        signal = set(detect.graph.signal)
        cap, not_kept = detect.graph.truncated(), detect.graph.not_kept
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
    nodes: dict[Any, dict] = {}
    for n in order:
        ref = detect._lock_ref(n)
        nodes[n] = {"id": detect._label(n, shared), "name": ref.name, "kind": ref.kind,
                    "key": detect._key(n), "instance": detect.instance_of(n),
                    "site": _site(ref.file, ref.line, ref.function), "signal": n in signal}
    out_edges = []
    for e in edges:
        out_edges.append({"from": nodes[e.src]["id"], "to": nodes[e.dst]["id"],
                          "thread": e.thread, "bounded": e.bounded, "count": e.count,
                          "context": e.context,
                          "stack": [{"file": f[0], "line": f[1], "function": f[2]}
                                    if isinstance(f, tuple) else
                                    {"file": f.file, "line": f.line, "function": f.function}
                                    for f in e.stack]})
    out = {"nodes": list(nodes.values()), "edges": out_edges}
    if cap is not None:   # docs/report.md: the graph reached its cap (--max-edges)
        out["truncated"] = {"max_edges": cap, "not_kept": not_kept}
    return out


def build(stats: StatsSink | None, command: list[str], exit_status: int | None,
          recorder: dict[str, int] | None = None) -> dict[str, Any]:
    locks = []
    if stats is not None:
        for row in stats.top():
            d = row.as_dict()
            locks.append(d)
    return {
        "version": SCHEMA_VERSION,
        "tool": "tracethread",
        "command": list(command),
        "exit_status": exit_status,
        "findings": [finding_dict(f) for f in F.findings()],
        "withdrawn": [{"reason": reason, "finding": finding_dict(f)}
                      for f, reason in F.withdrawn()],
        "locks": locks,
        "graph": graph_dict(),
        "recorder": dict(recorder or {}),
    }


def write(path: str, report: dict[str, Any]) -> None:
    write_json(path, report)
