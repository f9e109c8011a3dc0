"""SARIF 2.1.0 for code-scanning tools: one result per finding, located at the
acquisition lines involved, with a stable fingerprint."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULES = {
    "potential-deadlock": ("TT001", "Lock-order inversion (potential deadlock)", "error"),
    "deadlock": ("TT002", "Deadlock", "error"),
    "hang": ("TT003", "Thread blocked past the hang timeout", "error"),
    "guarded-cycle": ("TT004", "Lock-order cycle guarded by a common lock", "note"),
}


def source_root(cwd: str | None = None) -> str:
    """The directory SARIF paths are relative to: the repository holding the working
    directory (the nearest ancestor with ``.git``), else the working directory — where
    CI runs and where code scanning resolves relative URIs."""
    cur = os.path.abspath(cwd or os.getcwd())
    probe = cur
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            return cur
        probe = parent


def artifact(file: str, root: str) -> dict[str, str]:
    """A SARIF artifactLocation: relative to the source root (``%SRCROOT%``) when the file
    is under it, else an absolute ``file://`` URI — never ``../`` out of the root."""
    full = os.path.abspath(file)
    rel = os.path.relpath(full, root)
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and not os.path.isabs(rel):
        return {"uri": quote(PurePath(rel).as_posix()), "uriBaseId": "%SRCROOT%"}
    return {"uri": Path(full).as_uri()}


def _locations(f: dict[str, Any], root: str) -> list[dict[str, Any]]:
    seen = set()
    locs = []
    frames = [e["stack"][-1] for e in f.get("edges", []) if e.get("stack")]
    frames += [t["stack"][-1] for t in f.get("threads", []) if t.get("stack")]
    frames += [lk["site"] for lk in f.get("locks", []) if lk.get("site")]
    for fr in frames:
        key = (fr["file"], fr["line"])
        if key in seen or not fr["file"] or fr["file"].startswith("<"):
            continue
        seen.add(key)
        locs.append({"physicalLocation": {
            "artifactLocation": artifact(fr["file"], root),
            "region": {"startLine": max(1, int(fr["line"] or 1))}}})
    return locs


def build(report: dict[str, Any], root: str | None = None) -> dict[str, Any]:
    root = root or source_root()
    results = []
    for f in report.get("findings", []):
        rule_id, _, level = RULES.get(f["kind"], ("TT000", f["kind"], "warning"))
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "level": level,
            "message": {"text": f["message"]},
            "partialFingerprints": {"tracethread/v1": f["fingerprint"]},
        }
        locs = _locations(f, root)
        if locs:
            result["locations"] = locs[:1]
            if len(locs) > 1:
                result["relatedLocations"] = [dict(loc, id=i) for i, loc in
                                              enumerate(locs[1:], 1)]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "tracethread",
                "informationUri": "https://github.com/tracethread/tracethread",
                "rules": [{"id": rid, "name": kind.replace("-", " ").title().replace(" ", ""),
                           "shortDescription": {"text": text},
                           "defaultConfiguration": {"level": level}}
                          for kind, (rid, text, level) in RULES.items()],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(root).as_uri() + "/"}},
            "results": results,
        }],
    }


def write(path: str, report: dict[str, Any]) -> None:
    from .files import write_json
    write_json(path, build(report))
