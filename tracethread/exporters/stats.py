"""Per-primitive statistics aggregated from records: the numbers behind the contention
report. Keyed by (kind, name) — a name defaults to the creation site, so a lock created per
request at one line is one row, and the table stays bounded by the number of sites."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .._core import api as core

_ACQUIRES = {core.LOCK_ACQUIRE, core.RLOCK_ACQUIRE, core.SEMAPHORE_ACQUIRE}
_RELEASES = {core.LOCK_RELEASE, core.RLOCK_RELEASE, core.SEMAPHORE_RELEASE}
_WAITS = {core.CONDITION_WAIT, core.EVENT_WAIT, core.BARRIER_WAIT, core.THREAD_JOIN}
_FINDING, _SUMMARY = core.FINDING, core.SUMMARY
# A summary's counts of operations (see docs/records.md, "Summaries").
_SUMMARY_OPS = core.SUMMARY_OPERATION_KEYS


class InstanceCount:
    """How many distinct primitives a row covers, in bounded memory. Ids are never reused
    and a primitive's operations come close together, so an id is counted the first time
    it is seen among the last ``RECENT`` ids kept: exact while fewer than ``RECENT``
    instances of one name are in use at once; beyond that an instance used again after
    ``RECENT`` others counts again (the count is then an upper bound). 400k short-lived
    locks of one site cost a few hundred KiB, not the ~58 MiB a set of every id did."""

    RECENT = 4096
    __slots__ = ("n", "_recent")

    def __init__(self) -> None:
        self.n = 0
        self._recent: OrderedDict = OrderedDict()

    def add(self, pid: int) -> None:
        recent = self._recent
        if pid in recent:
            return
        recent[pid] = None
        self.n += 1
        if len(recent) > self.RECENT:
            recent.popitem(last=False)

    def update(self, pids: Any) -> None:
        for pid in pids:
            self.add(pid)

    def __len__(self) -> int:
        return self.n


@dataclass
class PrimitiveStats:
    name: str
    kind: str
    site: core.Site | None
    instances: InstanceCount = field(default_factory=InstanceCount)
    operations: int = 0
    acquisitions: int = 0
    contentions: int = 0   # acquisitions that had to wait
    failures: int = 0      # try-acquires and timed acquires that did not get it
    waits: int = 0         # condition/event/barrier waits and joins
    timeouts: int = 0
    wait_ns_total: int = 0
    wait_ns_max: int = 0
    hold_ns_total: int = 0
    hold_ns_max: int = 0
    threads: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind,
            "site": None if self.site is None else {
                "file": self.site.file, "line": self.site.line,
                "function": self.site.function},
            "instances": len(self.instances), "operations": self.operations,
            "acquisitions": self.acquisitions, "contentions": self.contentions,
            "failures": self.failures, "waits": self.waits, "timeouts": self.timeouts,
            "wait_seconds_total": self.wait_ns_total / 1e9,
            "wait_seconds_max": self.wait_ns_max / 1e9,
            "hold_seconds_total": self.hold_ns_total / 1e9,
            "hold_seconds_max": self.hold_ns_max / 1e9,
            "threads": len(self.threads),
        }


class StatsSink:
    """Aggregates records into ``PrimitiveStats`` rows. At most ``max_rows`` rows (bounded
    memory); records of further primitives are counted in ``overflow``. Accepts summaries
    (operations that neither waited nor woke a thread, counted in the core): ``records``
    counts operations either way."""

    MAX_THREAD_NAMES = 64
    accepts_summaries = True

    def __init__(self, max_rows: int = 10_000) -> None:
        self.rows: dict[tuple[str, str], PrimitiveStats] = {}
        self.max_rows = max_rows
        self.overflow = 0
        self.records = 0
        self.threads: set[str] = set()

    def handle(self, records: list[core.Record]) -> None:
        # (a Record is a tuple: unpacked, not read through its properties, one call each;
        # the drain's largest cost with this sink alone, issue 20)
        rows = self.rows
        for r in records:
            _, op, p, thread, start_ns, end_ns, ok, blocked, held_ns, _, details = r
            if op == _FINDING:
                continue
            key = (p.kind, p.name)
            row = rows.get(key)
            if row is None:
                if len(rows) >= self.max_rows:
                    self.overflow += 1
                    continue
                row = rows[key] = PrimitiveStats(p.name, p.kind, p.site)
            if op == _SUMMARY:
                row.instances.update(details["instances"])
                self._summary(row, details)
                continue
            row.instances.add(p.id)
            self.records += 1
            row.operations += 1
            self._thread(row, thread.name)
            if op in _ACQUIRES:
                if ok:
                    row.acquisitions += 1
                else:
                    row.failures += 1
                if blocked:
                    row.contentions += 1
                    self._waited(row, end_ns - start_ns, ok, details)
            elif op in _RELEASES:
                if held_ns is not None:
                    row.hold_ns_total += held_ns
                    if held_ns > row.hold_ns_max:
                        row.hold_ns_max = held_ns
            elif op in _WAITS:
                row.waits += 1
                if blocked:
                    self._waited(row, end_ns - start_ns, ok, details)

    def _thread(self, row: PrimitiveStats, name: str) -> None:
        if len(row.threads) < self.MAX_THREAD_NAMES:
            row.threads.add(name)
        if len(self.threads) < 100_000:
            self.threads.add(name)

    def _summary(self, row: PrimitiveStats, d: Any) -> None:
        ops = sum(d[k] for k in _SUMMARY_OPS)
        self.records += ops
        row.operations += ops
        row.acquisitions += d["acquisitions"] + d["reentries"]
        row.failures += d["failures"]
        row.waits += d["event_waits"]
        row.hold_ns_total += d["hold_ns_total"]
        if d["hold_ns_max"] > row.hold_ns_max:
            row.hold_ns_max = d["hold_ns_max"]
        for t in d["threads"]:
            self._thread(row, t.name)

    @staticmethod
    def _waited(row: PrimitiveStats, d: int, ok: Any, details: Any) -> None:
        """A blocked operation's wait (``Record.timed_out``: not ok, with a timeout)."""
        row.wait_ns_total += d
        if d > row.wait_ns_max:
            row.wait_ns_max = d
        if ok is False and details.get("timeout") is not None:
            row.timeouts += 1

    def top(self, n: int | None = None) -> list[PrimitiveStats]:
        """Rows by total wait, then contentions, then operations."""
        rows = sorted(self.rows.values(),
                      key=lambda s: (s.wait_ns_total, s.contentions, s.operations),
                      reverse=True)
        return rows if n is None else rows[:n]
