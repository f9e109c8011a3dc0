"""Files tracethread reads back — JSON reports (``report``, ``merge``) and baselines
(``--baseline``) — loaded and validated before anything uses them.

Every problem is one ``InputError`` whose message is one line naming the file and, for a
wrong shape, the path of the offending value (``findings[3].locks[0].name: expected a
string, got 12``). Valid JSON of the wrong shape, another tool's file, a SARIF file given
as a report, a report of another schema version, nesting deep enough to exhaust the
parser: all end there, never in a traceback.

Why a small validator of our own rather than ``jsonschema`` or ``pydantic``: tracethread
is installed into other people's environments, where every dependency is one more thing
to conflict with (``jsonschema`` brings ``attrs``, ``referencing`` and the compiled
``rpds-py``); the schema is small and documented in docs/report.md; and the messages are
ours to make one line. Keys beyond the schema are accepted (newer minor additions), keys
it names must have the documented types.
"""

from __future__ import annotations

import json
import math
from typing import Any

REPORT_VERSION = 1
BASELINE_VERSION = 1
FINDING_KINDS = ("potential-deadlock", "guarded-cycle", "deadlock", "hang")


class InputError(Exception):
    """A file tracethread was given cannot be used: the message says why, in one line."""


# -- a schema language in five shapes ---------------------------------------------------
class Opt:
    """The value may also be null."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


class OneOf:
    def __init__(self, *values: Any) -> None:
        self.values = values


class Num:
    """A finite number (int or float, not bool), at least ``low``."""

    def __init__(self, low: float | None = 0, integer: bool = False) -> None:
        self.low = low
        self.integer = integer


INT = Num(0, integer=True)
LINE = Opt(Num(None, integer=True))
FRAME = {"file": str, "line": LINE, "function": Opt(str)}
SITE = Opt({"file": str, "line": LINE, "function": Opt(str)})
LOCK_REF = {"name": str, "kind": str, "?site": SITE, "?instance": Opt(INT), "?label": str}
THREAD_REF = {"name": str, "?holds": [str], "?waits_for": Opt(str), "?stack": [FRAME],
              "?held_at": [{"lock": str, "?site": SITE}]}
EDGE = {"from": str, "to": str, "thread": str, "?bounded": bool, "?context": str,
        "?count": INT, "?stack": [FRAME]}
FINDING = {"kind": OneOf(*FINDING_KINDS), "message": str, "fingerprint": str,
           "?count": INT, "?single_thread": bool, "?bounded": bool, "?guarded_by": [str],
           "locks": [LOCK_REF], "?threads": [THREAD_REF], "?edges": [EDGE],
           "?only_when_combined": bool, "?recovered_after_s": Num()}
LOCK_ROW = {"name": str, "kind": str, "?site": SITE, "?instances": INT,
            "operations": INT, "acquisitions": INT, "contentions": INT, "?failures": INT,
            "waits": INT, "timeouts": INT, "wait_seconds_total": Num(),
            "wait_seconds_max": Num(), "?hold_seconds_total": Num(),
            "hold_seconds_max": Num(), "threads": INT, "?label": str}
GRAPH_NODE = {"id": str, "?name": str, "?kind": str, "?site": SITE, "?signal": bool,
              "?key": str, "?instance": Opt(INT), "?label": str}
REPORT = {"version": Num(None, integer=True), "tool": str, "?command": [str],
          "?exit_status": Opt(Num(None, integer=True)), "?ended_by_tracethread": bool,
          "findings": [FINDING], "?withdrawn": [{"reason": str, "finding": FINDING}],
          "locks": [LOCK_ROW],
          "graph": {"nodes": [GRAPH_NODE], "edges": [EDGE],
                    "?truncated": {"max_edges": INT, "not_kept": INT}},
          "?recorder": {}, "?merged_from": [str]}
BASELINE = {"version": Num(None, integer=True),
            "accepted": [{"fingerprint": str, "?kind": str, "?reason": str,
                          "?message": str}]}

_TYPE_WORDS = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "a string" if len(value) > 40 else repr(value)
    words: dict[type, str] = {dict: "an object", list: "a list"}
    return words.get(type(value), type(value).__name__)


def _fail(where: str, expected: str, value: Any) -> InputError:
    return InputError(f"{where or 'the file'}: expected {expected}, got {_what(value)}")


def check(value: Any, spec: Any, where: str = "") -> None:
    """Raise InputError if ``value`` does not have the shape ``spec``."""
    if isinstance(spec, Opt):
        if value is not None:
            check(value, spec.spec, where)
        return
    if isinstance(spec, OneOf):
        if value not in spec.values:
            raise _fail(where, "one of " + ", ".join(map(repr, spec.values)), value)
        return
    if isinstance(spec, Num):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and spec.integer:
            ok = isinstance(value, int)
        if ok and isinstance(value, float):
            ok = math.isfinite(value)
        if not ok:
            raise _fail(where, "an integer" if spec.integer else "a finite number", value)
        if spec.low is not None and value < spec.low:
            raise _fail(where, f"a number >= {spec.low}", value)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        for i, item in enumerate(value):
            check(item, spec[0], f"{where}[{i}]")
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key, sub in spec.items():
            optional = key.startswith("?")
            name = key[1:] if optional else key
            here = f"{where}.{name}" if where else name
            if name not in value:
                if optional:
                    continue
                raise InputError(f"{where or 'the file'}: missing {name!r}")
            check(value[name], sub, here)
        return
    if not isinstance(value, spec) or (spec is not bool and isinstance(value, bool)):
        raise _fail(where, _TYPE_WORDS.get(spec, spec.__name__), value)


# -- loading ----------------------------------------------------------------------------
def _kind_of(data: Any) -> str:
    """What a parsed file looks like: 'report', 'baseline', 'sarif' or 'other'."""
    if not isinstance(data, dict):
        return "other"
    if "runs" in data and (str(data.get("version")) == "2.1.0"
                           or "sarif" in str(data.get("$schema", "")).lower()):
        return "sarif"
    if "accepted" in data and "findings" not in data:
        return "baseline"
    if data.get("tool") == "tracethread" or "findings" in data:
        return "report"
    return "other"


_DESCRIBE = {"sarif": "a SARIF file (--sarif output)", "baseline": "a baseline "
             "(--write-baseline output)", "report": "a tracethread JSON report (--report "
             "output)"}


def load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except RecursionError:
        raise InputError(f"{path!r}: nested too deeply to be a tracethread file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path!r}: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path!r}: not valid JSON ({exc.msg}: line {exc.lineno} "
                         f"column {exc.colno})") from None
    except IsADirectoryError:
        raise InputError(f"{path!r}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:   # e.g. a number too large to convert
        raise InputError(f"{path!r}: not valid JSON ({exc})") from None


def _checked(path: str, data: Any, spec: Any, what: str, version: int) -> None:
    """Refuse ``data`` unless it is a ``what`` ("report", "baseline") of ``version`` with
    the shape ``spec``; a version that differs is named before any shape error."""
    found = data.get("version") if isinstance(data, dict) else None
    if isinstance(found, int) and not isinstance(found, bool) and found != version:
        raise InputError(f"{path!r} is a {what} of schema version {found}; this tracethread "
                         f"reads version {version}")
    try:
        check(data, spec)
    except InputError as exc:
        raise InputError(f"{path!r} is not a valid {what}: {exc}") from None
    except RecursionError:
        raise InputError(f"{path!r}: nested too deeply to be a tracethread file") from None


def load_report(path: str) -> dict[str, Any]:
    """A validated JSON report (``tracethread report``, ``merge``)."""
    data = load_json(path)
    kind = _kind_of(data)
    if kind in ("sarif", "baseline"):
        raise InputError(f"{path!r} is {_DESCRIBE[kind]}, not a JSON report: give the file "
                         "written by --report")
    if isinstance(data, dict) and data.get("tool") not in (None, "tracethread"):
        raise InputError(f"{path!r} was written by {_what(data.get('tool'))}, not "
                         "tracethread")
    _checked(path, data, REPORT, "report", REPORT_VERSION)   # (tool: now "tracethread")
    return data


def load_baseline(path: str) -> dict[str, str]:
    """The accepted findings of a baseline: fingerprint -> reason."""
    data = load_json(path)
    kind = _kind_of(data)
    if kind in ("sarif", "report"):
        raise InputError(f"{path!r} is {_DESCRIBE[kind]}, not a baseline: write one with "
                         "--write-baseline")
    _checked(path, data, BASELINE, "baseline", BASELINE_VERSION)
    return {item["fingerprint"]: item.get("reason", "") for item in data["accepted"]}
