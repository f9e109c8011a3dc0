"""SARIF 2.1.0 for code-scanning tools: one result per finding, located at the
acquisition lines involved, with a stable fingerprint."""

from __future__ import annotations

from typing import Any

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULES = {
    "potential-deadlock": ("TT001", "Lock-order inversion (potential deadlock)", "error"),
    "deadlock": ("TT002", "Deadlock", "error"),
    "hang": ("TT003", "Thread blocked past the hang timeout", "error"),
    "guarded-cycle": ("TT004", "Lock-order cycle guarded by a common lock", "note"),
}


def _locations(f: dict[str, Any]) -> list[dict[str, Any]]:
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
            "artifactLocation": {"uri": fr["file"]},
            "region": {"startLine": max(1, int(fr["line"] or 1))}}})
    return locs


def build(report: dict[str, Any]) -> dict[str, Any]:
    results = []
    for f in report.get("findings", []):
        rule_id, _, level = RULES.get(f["kind"], ("TT000", f["kind"], "warning"))
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "level": level,
            "message": {"text": f["message"]},
            "partialFingerprints": {"tracethread/v1": f["fingerprint"]},
        }
        locs = _locations(f)
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
            "results": results,
        }],
    }


def write(path: str, report: dict[str, Any]) -> None:
    from .files import write_json
    write_json(path, build(report))
