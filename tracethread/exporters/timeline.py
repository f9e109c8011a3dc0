"""The waits and holds of each thread, for the HTML report's timeline (``run --html``).

The same slices as the Chrome trace (``chrome_trace.WAIT_SLICES``, ``HOLD_RELEASES``: a
blocked operation is a wait, a Lock/RLock release ends a hold), kept differently: a trace
file keeps events in order until it is full, so a long run shows only its start; a page
a person reads can draw a few thousand bars, and the ones worth seeing are the long ones.
This sink keeps the ``max_slices`` longest slices of the whole run (a heap: memory is
bounded by ``max_slices`` whatever the run does) and counts the rest. A slice carries its
thread's name, so no table of every thread the program ever ran is kept either.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any

from .._core import api as core
from .chrome_trace import HOLD_RELEASES, WAIT_SLICES

MAX_SLICES = 5000
MAX_FINDINGS = 100


class TimelineSink:
    def __init__(self, max_slices: int = MAX_SLICES) -> None:
        self.max_slices = max_slices
        # (duration_ns, n, thread key, thread name, kind, label, start_ns, site): the
        # smallest on top, pushed out when a longer one comes
        self._heap: list[tuple] = []
        self._n = itertools.count()
        self.seen = 0
        self.findings: list[tuple[int, str, str, str]] = []   # (ns, thread, kind, fingerprint)
        self._t0 = time.monotonic_ns()   # time zero: when tracing began
        self._end = self._t0

    def _keep(self, kind: str, label: str, start: int, end: int, thread: Any,
              site: Any) -> None:
        self.seen += 1
        # A thread is its ident, native id and name: idents are reused by later threads,
        # and two threads that share all three never run at once (one lane is right).
        key = (thread.ident, thread.native_id, thread.name)
        item = (end - start, next(self._n), key, thread.name, kind, label, start,
                None if site is None else str(site))
        if len(self._heap) < self.max_slices:
            heapq.heappush(self._heap, item)
        elif item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def handle(self, records: list) -> None:
        for r in records:
            self._end = max(self._end, r.end_ns)
            op = r.op
            if op == core.FINDING:
                f = r.details.get("finding")
                if f is not None and len(self.findings) < MAX_FINDINGS:
                    self.findings.append((r.end_ns, r.thread.name, f.kind, f.fingerprint))
            elif op in WAIT_SLICES and r.blocked:
                self._keep("wait", f"{WAIT_SLICES[op]} {r.primitive.name}", r.start_ns,
                           r.end_ns, r.thread, r.site)
            elif op in HOLD_RELEASES and r.held_ns is not None:
                self._keep("hold", f"hold {r.primitive.name}", r.end_ns - r.held_ns,
                           r.end_ns, r.thread, r.site)

    def data(self) -> dict[str, Any]:
        """The timeline as the HTML report embeds it (times in µs from when tracing
        began): ``threads`` [[lane, name]], ``slices`` [[lane, kind, label, start, duration,
        site]] in start order, ``findings`` [[time, thread, kind, fingerprint]],
        ``duration``, ``slices_seen`` and ``slices_not_kept``."""
        lanes: dict[tuple, int] = {}
        names: list[list[Any]] = []
        slices = []
        for dur, _, key, name, kind, label, start, site in sorted(
                self._heap, key=lambda item: item[6]):
            lane = lanes.get(key)
            if lane is None:
                lane = lanes[key] = len(names)
                names.append([lane, name])
            slices.append([lane, kind, label, self._us(start), dur / 1000.0, site])
        return {"duration": self._us(self._end), "threads": names, "slices": slices,
                "findings": [[self._us(ns), thread, kind, fp]
                             for ns, thread, kind, fp in self.findings],
                "slices_seen": self.seen, "slices_not_kept": self.seen - len(slices)}

    def _us(self, ns: int) -> float:
        return max(ns - self._t0, 0) / 1000.0
