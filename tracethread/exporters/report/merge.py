"""Merging the lock-order graphs of several runs.

A test suite split across CI shards or a program split across processes may take A -> B
in one and B -> A in another: neither run has a cycle, the combination does. Nodes are
matched by their ``key`` (what identifies a lock: docs/report.md, "Fingerprints"; a
report without keys, written before them, by its kind and name) and, for several
instances of one key in a run (``Lock app.py:5 #1``, ``#2``), by their rank among them in
that run, by instance number (the first with the first: numbers follow the order in
which the instances entered the graph, so a program that runs alike numbers them alike);
a node standing for every instance of its name (identity "site") goes with the first
instance. Edges are unioned, and the cycles of the union are searched with the same graph
code as live detection; their fingerprints are made from the keys, as a single run makes
them. A cycle whose fingerprint no input reported is marked ``only_when_combined``.
"""

from __future__ import annotations

from typing import Any

from ..._core import api as core


def _base(node: dict) -> str:
    key = node.get("key")
    if isinstance(key, str) and key:
        return key
    kind, name = node.get("kind"), node.get("name")
    if isinstance(kind, str) and isinstance(name, str) and kind and name:
        return f"{kind} {name}"
    return str(node.get("id"))


def _instance(node: dict) -> int | None:
    n = node.get("instance")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _identify(graph_nodes: list) -> dict[str, tuple[str, int]]:
    """A report's node ids -> (base, rank): the rank of an instance among the nodes of
    its base in that report, by instance number (a node without one counts as the
    first)."""
    groups: dict[str, list] = {}
    for node in graph_nodes:
        groups.setdefault(_base(node), []).append(node)
    out = {}
    for base, group in groups.items():
        numbered = sorted({n for n in map(_instance, group) if n is not None})
        rank: dict[int | None, int] = {n: i for i, n in enumerate(numbered, 1)}
        for node in group:
            out[node["id"]] = (base, rank.get(_instance(node), 1))
    return out


def merge(reports: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    # nodes: (base, rank), as _identify gives them
    graph: core.LockOrderGraph[tuple[str, int]] = core.LockOrderGraph(
        name_of=lambda n: n[0], key_of=lambda n: n[0])
    nodes: dict[tuple, dict] = {}
    edges_in = []
    for run, (report, label) in enumerate(zip(reports, labels)):
        graph_nodes = report.get("graph", {}).get("nodes", [])
        ident = _identify(graph_nodes)
        for node in graph_nodes:
            n = ident[node["id"]]
            nodes.setdefault(n, node)
            if node.get("signal"):   # a signal in any run is one in the union
                graph.mark_signal(n)
        for e in report.get("graph", {}).get("edges", []):
            src = ident.get(e["from"]) or (e["from"], 1)
            dst = ident.get(e["to"]) or (e["to"], 1)
            for n, name in ((src, e["from"]), (dst, e["to"])):
                nodes.setdefault(n, {"id": name})
            stack = tuple((f["file"], f["line"], f["function"]) for f in e.get("stack", []))
            # Each run is its own set of threads: an edge's thread is (run, name).
            graph.add_edge(src, dst, thread=f"{label}: {e['thread']}",
                           thread_ident=hash((run, e["thread"])), stack=stack,
                           bounded=e.get("bounded", False), context=e.get("context", ""))
            edges_in.append((e, label, src, dst))
    ranks: dict[str, set] = {}
    for base, rank in nodes:
        ranks.setdefault(base, set()).add(rank)
    shown = {}
    for n, node in nodes.items():
        kind, name, code = node.get("kind"), node.get("name"), node.get("label")
        text = (f"{kind} {name}" if isinstance(kind, str) and isinstance(name, str)
                and kind and name else str(node.get("id")).split(" #")[0])
        if isinstance(code, str) and code and isinstance(kind, str) and kind:
            text = f"{kind} {code} ({text.partition(' ')[2]})"   # the code's name, the site
        shown[n] = f"{text} #{n[1]}" if len(ranks[n[0]]) > 1 else text
    bases: dict[str, list] = {}   # one name, other keys (runs of other code): told apart
    for n, text in shown.items():
        if n[0] not in bases.setdefault(text, []):
            bases[text].append(n[0])
    for n, text in list(shown.items()):
        if len(bases[text]) > 1:
            shown[n] = f"{text} [{bases[text].index(n[0]) + 1}]"
    edges_out = [dict(e, run=label, **{"from": shown[src], "to": shown[dst]})
                 for e, label, src, dst in edges_in]
    known = {f["fingerprint"] for r in reports for f in r.get("findings", [])}
    findings = []
    for cycle in graph.cycles.values():
        only = cycle.fingerprint not in known
        names = [shown[n] for n in cycle.nodes]
        chain = " -> ".join(names + [names[0]])
        kind = "guarded-cycle" if cycle.guarded_by else "potential-deadlock"
        msg = f"lock-order inversion {chain}"
        msg += (", seen only when the runs are combined" if only
                else ", also reported by a single run")
        findings.append({
            "kind": kind, "message": msg, "fingerprint": cycle.fingerprint, "count": 1,
            "single_thread": False, "bounded": cycle.bounded, "guarded_by": [],
            "only_when_combined": only,
            "locks": [dict({"name": nodes[n].get("name", shown[n]),
                            "kind": nodes[n].get("kind", ""), "site": nodes[n].get("site")},
                           **({"instance": n[1]} if len(ranks[n[0]]) > 1 else {}),
                           **({"label": nodes[n]["label"]}
                              if isinstance(nodes[n].get("label"), str) else {}))
                      for n in cycle.nodes],
            "threads": [],
            "edges": [{"from": shown[e.src], "to": shown[e.dst], "thread": e.thread,
                       "bounded": e.bounded, "context": e.context,
                       "stack": [{"file": f[0], "line": f[1], "function": f[2]}
                                 for f in e.stack]} for e in cycle.edges],
        })
    cut = [r["graph"]["truncated"] for r in reports if "truncated" in r.get("graph", {})]
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
        "graph": dict({"nodes": [dict(node, id=shown[n], key=n[0], instance=n[1])
                                 for n, node in nodes.items()], "edges": edges_out},
                      **({"truncated": {"max_edges": max(c["max_edges"] for c in cut),
                                        "not_kept": sum(c["not_kept"] for c in cut)}}
                         if cut else {})),
        "recorder": {"records": sum(r.get("recorder", {}).get("records", 0)
                                    for r in reports)},
        "merged_from": labels,
    }
