"""The JSON report: a documented, versioned schema (docs/report.md).

Built from the statistics sink, the findings and the lock-order graph. Version 1.
"""

from __future__ import annotations

from typing import Any

from ..._core import api as core
from ..stats import StatsSink
from .files import write_json

SCHEMA_VERSION = 1


def _site(file: str | None, line: int | None, function: str | None) -> dict | None:
    if file is None:
        return None
    return {"file": file, "line": line, "function": function}


def _stack(frames: Any) -> list[dict]:
    return [{"file": fr.file, "line": fr.line, "function": fr.function} for fr in frames]


def display_name(row: dict[str, Any]) -> str:
    """How a person is shown a lock row or reference of the report: as the code names it,
    the site beside (``Account.lock bank.py:24``), where the report knows that name
    (``label``), else its name."""
    label = row.get("label")
    return f"{label} {row['name']}" if isinstance(label, str) and label else row["name"]


def finding_dict(f: core.Finding) -> dict[str, Any]:
    return {
        "kind": f.kind, "message": f.message, "fingerprint": f.fingerprint,
        "count": f.count, "single_thread": f.single_thread, "bounded": f.bounded,
        "guarded_by": list(f.guarded_by),
        **({} if f.recovered_after_s is None else {"recovered_after_s": f.recovered_after_s}),
        "locks": [dict({"name": lk.name, "kind": lk.kind,
                        "site": _site(lk.file, lk.line, lk.function)},
                       **({} if lk.instance is None else {"instance": lk.instance}),
                       **({} if lk.label is None else {"label": lk.label}))
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
    snap = core.graph_snapshot()
    out: dict[str, Any] = {
        "nodes": [{"id": n.id, "name": n.name, "kind": n.kind, "key": n.key,
                   "instance": n.instance,
                   "site": None if n.site is None else
                   _site(n.site.file, n.site.line, n.site.function),
                   "signal": n.signal, **({} if n.label is None else {"label": n.label})}
                  for n in snap.nodes],
        "edges": [{"from": e.src, "to": e.dst, "thread": e.thread, "bounded": e.bounded,
                   "count": e.count, "context": e.context, "stack": _stack(e.stack)}
                  for e in snap.edges]}
    if snap.truncated is not None:   # docs/report.md: the graph reached its cap
        out["truncated"] = dict(snap.truncated)
    return out


def build(stats: StatsSink | None, command: list[str], exit_status: int | None,
          recorder: dict[str, int] | None = None) -> dict[str, Any]:
    locks = []
    if stats is not None:
        for row in stats.top():
            d = row.as_dict()
            label = core.code_name(row.kind, row.name, row.site)
            if label:
                d["label"] = label   # the name the code gives it (Account.lock)
            locks.append(d)
    return {
        "version": SCHEMA_VERSION,
        "tool": "tracethread",
        "command": list(command),
        "exit_status": exit_status,
        "findings": [finding_dict(f) for f in core.findings()],
        "withdrawn": [{"reason": reason, "finding": finding_dict(f)}
                      for f, reason in core.withdrawn()],
        "locks": locks,
        "graph": graph_dict(),
        "recorder": dict(recorder or {}),
    }


def write(path: str, report: dict[str, Any]) -> None:
    write_json(path, report)
