"""A Chrome trace-event / Perfetto JSON file: opens in ui.perfetto.dev with no server.

One track per thread (named), waits as slices on it, holds as async slices (so holds that
do not nest — a Lock released out of order, or by another thread — still render), a short
``release`` slice where a lock was released, findings as global instant events, and flow
arrows from a release to the wait it ended. Events are kept in memory, bounded
(``max_events``; what does not fit is counted in the file's metadata).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .._core import api as core

# What a wait is called (blocked operations of these kinds are wait slices), and the
# releases that end a hold: the timeline of the HTML report (timeline.py) reads the same.
WAIT_SLICES = {core.LOCK_ACQUIRE: "lock.wait", core.RLOCK_ACQUIRE: "lock.wait",
               core.SEMAPHORE_ACQUIRE: "semaphore.wait", core.CONDITION_WAIT: "condition.wait",
               core.EVENT_WAIT: "event.wait", core.BARRIER_WAIT: "barrier.wait",
               core.THREAD_JOIN: "thread.join"}
HOLD_RELEASES = {core.LOCK_RELEASE, core.RLOCK_RELEASE}

_HANDED_OFF = {core.LOCK_ACQUIRE, core.RLOCK_ACQUIRE}   # waits a release ends
_OPEN_WAITS_PER_LOCK = 8
_MAX_LOCKS = 4096   # locks remembered for flow arrows (primitives come and go)


def _bounded(table: dict, key: int, kind: type) -> Any:
    """``table[key]`` (a new ``kind()`` if absent), the table emptied first when it is
    full: memory stays bounded however many locks a program makes."""
    got = table.get(key)
    if got is None:
        if len(table) >= _MAX_LOCKS:
            table.clear()
        got = table[key] = kind()
    return got


class ChromeTraceSink:
    def __init__(self, max_events: int = 1_000_000) -> None:
        self.events: list[dict[str, Any]] = []
        self.max_events = max_events
        self.overflow = 0
        self.threads: dict[int, str] = {}       # tid -> name
        self._tids: dict[tuple, int] = {}       # (ident, native_id) -> small tid
        # For the flow arrows, whichever record comes first (a release's record can follow
        # the record of the wait it ended: records are in the order they were made):
        self._last_release: dict[int, tuple] = {}  # lock id -> (ts_us, tid)
        self._open_waits: dict[int, list] = {}     # lock id -> [(start, end, tid)] unmatched
        self._flow = 0
        self._hold = 0
        self.pid = os.getpid()
        self._t0 = time.monotonic_ns()  # time zero of the trace: when tracing began

    def _tid(self, thread: Any) -> int:
        key = (thread.ident, thread.native_id)
        tid = self._tids.get(key)
        if tid is None:
            tid = self._tids[key] = thread.native_id or len(self._tids) + 1
        self.threads[tid] = thread.name
        return tid

    def _us(self, ns: int) -> float:
        return max(ns - self._t0, 0) / 1000.0

    def _add(self, ev: dict[str, Any]) -> None:
        if len(self.events) >= self.max_events:
            self.overflow += 1
            return
        ev["pid"] = self.pid
        self.events.append(ev)

    def handle(self, records: list) -> None:
        for r in records:
            op = r.op
            if op == core.FINDING:
                f = r.details.get("finding")
                self._add({"name": f"{f.kind}: {f.message}"[:200], "ph": "i", "s": "g",
                           "ts": self._us(r.end_ns), "tid": self._tid(r.thread),
                           "cat": "finding",
                           "args": {"fingerprint": f.fingerprint,
                                    "locks": [lk.name for lk in f.locks]}})
                continue
            tid = self._tid(r.thread)
            p = r.primitive
            if op in WAIT_SLICES and r.blocked:
                start, end = self._us(r.start_ns), self._us(r.end_ns)
                self._add({"name": f"{WAIT_SLICES[op]} {p.name}", "ph": "X", "ts": start,
                           "dur": max(end - start, 0.001), "tid": tid, "cat": "wait",
                           "args": {"lock": p.name, "kind": p.kind, "ok": r.ok,
                                    "site": str(r.site) if r.site else None}})
                rel = self._last_release.get(p.id)
                if rel is not None and rel[1] != tid and start <= rel[0] <= end:
                    self._handoff(rel[0], rel[1], start, end, tid)
                elif op in _HANDED_OFF:   # its release may come later
                    waits = _bounded(self._open_waits, p.id, list)
                    waits.append((start, end, tid))
                    del waits[:-_OPEN_WAITS_PER_LOCK]
            elif op in HOLD_RELEASES and r.held_ns is not None:
                end = self._us(r.end_ns)
                start = self._us(r.end_ns - r.held_ns)
                self._hold += 1
                name = f"hold {p.name}"
                self._add({"name": name, "ph": "b", "id": self._hold, "ts": start,
                           "tid": tid, "cat": "hold"})
                self._add({"name": name, "ph": "e", "id": self._hold, "ts": end, "tid": tid,
                           "cat": "hold"})
                self._add({"name": f"release {p.name}", "ph": "X", "ts": end, "dur": 0.001,
                           "tid": tid, "cat": "release"})
                _bounded(self._last_release, p.id, tuple)
                self._last_release[p.id] = (end, tid)
                waits = self._open_waits.get(p.id)
                for i, (w_start, w_end, w_tid) in enumerate(waits or ()):
                    if w_tid != tid and w_start <= end <= w_end:
                        self._handoff(end, tid, w_start, w_end, w_tid)
                        del waits[i]   # type: ignore[union-attr]
                        break

    def _handoff(self, rel_ts: float, rel_tid: int, start: float, end: float,
                 tid: int) -> None:
        """A flow arrow from a release to the wait on the same lock it ended."""
        self._flow += 1
        self._add({"name": "handoff", "ph": "s", "id": self._flow, "ts": rel_ts,
                   "tid": rel_tid, "cat": "handoff"})
        self._add({"name": "handoff", "ph": "f", "bp": "e", "id": self._flow,
                   "ts": max(end - 0.0005, start), "tid": tid, "cat": "handoff"})

    def document(self) -> dict[str, Any]:
        meta = [{"name": "process_name", "ph": "M", "pid": self.pid, "tid": 0,
                 "args": {"name": "tracethread"}}]
        meta += [{"name": "thread_name", "ph": "M", "pid": self.pid, "tid": tid,
                  "args": {"name": name}} for tid, name in sorted(self.threads.items())]
        return {"traceEvents": meta + self.events, "displayTimeUnit": "ms",
                "otherData": {"tool": "tracethread", "dropped_events": self.overflow,
                              "written": time.strftime("%Y-%m-%dT%H:%M:%S")}}

    def write(self, path: str) -> None:
        from .report.files import write_text
        write_text(path, json.dumps(self.document()) + "\n")
