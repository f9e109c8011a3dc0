"""Merging the lock-order graphs of several runs.

A test suite split across CI shards or a program split across processes may take A -> B
in one and B -> A in another: neither run has a cycle, the combination does. Nodes are
matched by their report id (kind and name; a name defaults to the creation site, which is
the same in every run), edges are unioned, and the cycles of the union are searched with
the same graph code as live detection. A cycle whose fingerprint no input reported is
marked ``only_when_combined``.
"""

from __future__ import annotations

from typing import Any

from .._core.lockorder import LockOrderGraph


def merge(reports: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    graph = LockOrderGraph()
    nodes: dict[str, dict] = {}
    edges_out = []
    for run, (report, label) in enumerate(zip(reports, labels)):
        for node in report.get("graph", {}).get("nodes", []):
            nodes.setdefault(node["id"], node)
            if node.get("signal"):   # a signal in any run is one in the union
                graph.mark_signal(node["id"])
        for e in report.get("graph", {}).get("edges", []):
            stack = tuple((f["file"], f["line"], f["function"]) for f in e.get("stack", []))
            # Each run is its own set of threads: an edge's thread is (run, name).
            graph.add_edge(e["from"], e["to"], thread=f"{label}: {e['thread']}",
                           thread_ident=hash((run, e["thread"])), stack=stack,
                           bounded=e.get("bounded", False), context=e.get("context", ""))
            edges_out.append(dict(e, run=label))
    known = {f["fingerprint"] for r in reports for f in r.get("findings", [])}
    findings = []
    for cycle in graph.cycles.values():
        only = cycle.fingerprint not in known
        names = list(cycle.nodes)
        chain = " -> ".join(names + [names[0]])
        kind = "guarded-cycle" if cycle.guarded_by else "potential-deadlock"
        msg = f"lock-order inversion {chain}"
        msg += (", seen only when the runs are combined" if only
                else ", also reported by a single run")
        findings.append({
            "kind": kind, "message": msg, "fingerprint": cycle.fingerprint, "count": 1,
            "single_thread": False, "bounded": cycle.bounded, "guarded_by": [],
            "only_when_combined": only,
            "locks": [{"name": nodes.get(n, {}).get("name", n),
                       "kind": nodes.get(n, {}).get("kind", ""),
                       "site": nodes.get(n, {}).get("site")} for n in names],
            "threads": [],
            "edges": [{"from": e.src, "to": e.dst, "thread": e.thread, "bounded": e.bounded,
                       "context": e.context,
                       "stack": [{"file": f[0], "line": f[1], "function": f[2]}
                                 for f in e.stack]} for e in cycle.edges],
        })
    locks: dict[tuple, dict] = {}
    for report in reports:
        for row in report.get("locks", []):
            key = (row["kind"], row["name"])
            acc = locks.get(key)
            if acc is None:
                locks[key] = dict(row)
                continue
            for k in ("operations", "acquisitions", "contentions", "failures", "waits",
                      "timeouts", "wait_seconds_total", "hold_seconds_total", "instances",
                      "threads"):
                if k in row:
                    acc[k] = acc.get(k, 0) + row[k]
            for k in ("wait_seconds_max", "hold_seconds_max"):
                if k in row:
                    acc[k] = max(acc.get(k, 0), row[k])
    return {
        "version": 1, "tool": "tracethread", "command": ["merge", *labels],
        "exit_status": None, "findings": findings,
        "locks": sorted(locks.values(), key=lambda r: (r.get("wait_seconds_total", 0),
                                                       r.get("contentions", 0)),
                        reverse=True),
        "graph": {"nodes": list(nodes.values()), "edges": edges_out},
        "recorder": {"records": sum(r.get("recorder", {}).get("records", 0)
                                    for r in reports)},
        "merged_from": labels,
    }
