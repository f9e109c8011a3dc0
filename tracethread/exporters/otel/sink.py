"""OpenTelemetry export: spans and metrics built from records, off the hot path.

The sink runs in the record drainer's thread (guarded: nothing the SDK does is recorded),
so the application never waits for it; the SDK's batch processor and periodic reader do
the network I/O on their own threads. When the program outruns the drainer, the record
buffer overflows and the loss is counted (``tracethread.records.dropped``).

Default mode: a span for every operation that blocked (``lock.wait``, ``condition.wait``,
``event.wait``, ``semaphore.wait``, ``barrier.wait``, ``thread.join``), for contended
holds (``lock.hold``) and each thread's run (``thread.run``); every operation counts in
the metrics. ``spans="all"`` makes a span of every operation.

Spans of the provider ``setup`` made go through the direct pipeline (``direct.py``) where
it can make them; the rest through the SDK's Tracer.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left as _bisect_left
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ... import __version__
from ..._core import api as core
from . import _sdk_private
from . import names as N
from . import wire as _enc
from .direct import DirectSpans, count_full, record_attrs

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

_LOCK_ACQ = {core.LOCK_ACQUIRE, core.RLOCK_ACQUIRE, core.SEMAPHORE_ACQUIRE}
_RELEASES = {core.LOCK_RELEASE, core.RLOCK_RELEASE}
_WAIT_SPANS = {
    core.LOCK_ACQUIRE: N.SPAN_LOCK_WAIT, core.RLOCK_ACQUIRE: N.SPAN_LOCK_WAIT,
    core.SEMAPHORE_ACQUIRE: N.SPAN_SEMAPHORE_WAIT, core.CONDITION_WAIT: N.SPAN_CONDITION_WAIT,
    core.EVENT_WAIT: N.SPAN_EVENT_WAIT, core.BARRIER_WAIT: N.SPAN_BARRIER_WAIT,
    core.THREAD_JOIN: N.SPAN_THREAD_JOIN,
}


class _Attrs(dict):
    """A metric attribute set, hashable so per-batch sums can be keyed by it (never
    mutated after creation)."""

    __hash__ = object.__hash__   # type: ignore[assignment]  # by identity, in C


def _queued(span: Any) -> bool:
    """Will the batch processor queue this span when it ends (recording and sampled)?"""
    return span.is_recording() and span.get_span_context().trace_flags.sampled


class OTelSink:
    """Turns records into spans and metrics through the given (or global) providers."""

    MAX_EVENTS_PER_RUN = 128
    MAX_PARTIAL_RUNS = 256   # threads without a traced run, holding events at once

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None,
                 spans: str = "blocked", min_duration_s: float = 0.0,
                 max_lock_names: int = 200, span_events: bool = False,
                 span_processors: Any = None) -> None:
        # span_events: uncontended operations become events on their thread's run span
        # (at most MAX_EVENTS_PER_RUN each; the rest are counted in an attribute).
        self.span_events = span_events
        self._events: dict[tuple, list] = {}     # (ident, native_id) -> [(name, t, attrs)]
        self._events_dropped: dict[tuple, int] = {}
        # Threads whose run was not seen to begin (the main thread, threads started before
        # install() or by _thread): (ident, native_id) -> [thread, first ns, last ns]; their
        # events go on a partial thread.run span made at close() (or when the key is reused).
        self._partial: dict[tuple, list] = {}
        self._finding_events: dict[int, list] = {}  # running thread's id -> [(kind, msg, t)]
        if spans == "events":  # blocked operations as spans, the rest as run-span events
            spans, self.span_events = "blocked", True
        if spans not in ("blocked", "all", "none"):
            raise ValueError("spans must be 'blocked', 'events', 'all' or 'none'")
        self.spans = spans
        self.min_ns = int(min_duration_s * 1e9)
        self._tp = tracer_provider
        self._tracer: tuple[Any, Any] | None = None   # (provider, its tracer): tracer()
        # span_processors: those of tracer_provider, known to the caller (setup made them):
        # spans of that provider are then handed to them directly (DirectSpans).
        self._direct = None
        self._queues = _sdk_private.batch_queues(span_processors)   # drops counted (of _tp)
        if span_processors is not None and tracer_provider is not None:
            direct = DirectSpans(tracer_provider, span_processors, self._queues)
            self._direct = direct if direct.ok else None
        self._names: dict[str, str] = {}
        self.max_lock_names = max_lock_names
        self._offset = time.time_ns() - time.monotonic_ns()
        self._runs: dict[int, Any] = {}  # thread info id -> run-begin record
        self._findings: dict[str, int] = {}
        self._attr_sets: dict[tuple, Any] = {}
        self._prim_attrs: dict[Any, dict] = {}   # PrimitiveInfo -> its span attributes
        # Attribute bytes for spans made in wire format (_attr_bytes), bounded.
        self._attr_blobs: dict[tuple, tuple] = {}
        self._extra_bytes: dict = {}
        self._pending: dict[tuple, int] = {}   # (counter, attrs) -> this batch's sum
        self.meter: Meter | None = None
        self._merge_holds = False
        self._mergeable: dict[Any, bool] = {}   # histogram -> values merged per batch
        self._values: dict[tuple, list] = {}     # (histogram, attrs) -> this batch's values
        if meter_provider is not None or spans != "none":
            self._make_instruments(meter_provider)

    @property
    def accepts_summaries(self) -> bool:
        """Summaries of the operations that neither waited nor woke a thread (see
        docs/records.md, "Summaries") are taken when no
        span or event is wanted per operation and the hold histogram can take a summary in
        one step; else every operation comes as a record (exact, and slower). Read when
        the sink is added."""
        return (self.spans != "all" and not self.span_events and
                (self.meter is None or self._merge_holds))

    # -- providers ------------------------------------------------------------------------
    def tracer(self) -> Any:
        # The application's global provider if it set one (even after us), else ours.
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider) and self._tp is not None:
            provider = self._tp
        if self._tracer is None or self._tracer[0] is not provider:
            self._tracer = (provider, provider.get_tracer("tracethread", __version__))
        return self._tracer[1]

    def _make_instruments(self, meter_provider: Any) -> None:
        from opentelemetry import metrics
        mp = meter_provider or metrics.get_meter_provider()
        m = self.meter = mp.get_meter("tracethread", __version__)

        def hist(spec):
            name, unit, desc = spec
            return m.create_histogram(name, unit=unit, description=desc,
                                      explicit_bucket_boundaries_advisory=N.DURATION_BUCKETS)

        def counter(spec):
            name, unit, desc = spec
            return m.create_counter(name, unit=unit, description=desc)

        self.h_wait = hist(N.WAIT_DURATION)
        self.h_hold = hist(N.HOLD_DURATION)
        self.h_cond = hist(N.CONDITION_WAIT_DURATION)
        self.h_barrier = hist(N.BARRIER_WAIT_DURATION)
        self.c_acq = counter(N.ACQUISITIONS)
        self.c_cont = counter(N.CONTENTIONS)
        self.c_timeouts = counter(N.TIMEOUTS)
        self.c_notify = counter(N.NOTIFICATIONS)
        self.c_findings = counter(N.FINDINGS)
        # A batch's values of one histogram and attribute set are added to the SDK's
        # aggregation in one step where it can take that (_sdk_private.merge), as the same values
        # recorded one by one would leave it (bucket counts, sum, min, max), except for
        # exemplars: asked for explicitly (always_on: the drainer has no span context, so
        # the default trace_based filter keeps none), every value is recorded.
        exemplars = os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip() == "always_on"
        for h in (self.h_wait, self.h_hold, self.h_cond, self.h_barrier):
            supported = _sdk_private.supports(h, N.DURATION_BUCKETS)
            if h is self.h_hold:
                self._merge_holds = supported   # summaries' holds (they carry no exemplar)
            self._mergeable[h] = not exemplars and supported
        from opentelemetry.metrics import Observation

        waited: set[tuple] = set()  # bounded: names are capped, kinds are few

        def waiters(options: Any) -> list[Observation]:
            counts: dict[tuple, int] = {}
            for info in core.waiting_primitives():
                key = (self._metric_name(info.name, info.kind), info.kind)
                counts[key] = counts.get(key, 0) + 1
            # A primitive once waited on keeps reporting (0 when nobody waits), so its
            # series drops to zero instead of going stale at its last value.
            waited.update(counts)
            return [Observation(counts.get(k, 0), {N.M_LOCK_NAME: k[0], N.M_LOCK_KIND: k[1]})
                    for k in list(waited)] or [Observation(0)]

        def graph(key):
            return lambda options: [Observation(core.graph_stats()[key])]

        m.create_observable_gauge(N.WAITERS[0], [waiters], unit=N.WAITERS[1],
                                  description=N.WAITERS[2])
        m.create_observable_gauge(N.CYCLES[0], [graph("cycles")], unit=N.CYCLES[1],
                                  description=N.CYCLES[2])
        m.create_observable_gauge(N.EDGES[0], [graph("edges")], unit=N.EDGES[1],
                                  description=N.EDGES[2])
        m.create_observable_gauge(N.THREADS_LIVE[0],
                                  [lambda o: [Observation(threading.active_count())]],
                                  unit=N.THREADS_LIVE[1], description=N.THREADS_LIVE[2])
        def dropped(options):
            st = core.recorder_stats()
            return [Observation(st["dropped"] + st["export_dropped"])]

        m.create_observable_counter(N.DROPPED[0], [dropped],
                                    unit=N.DROPPED[1], description=N.DROPPED[2])

    def _finding_attrs(self, kind: str) -> Any:
        key = ("finding", kind)
        attrs = self._attr_sets.get(key)
        if attrs is None:
            attrs = self._attr_sets[key] = _Attrs({N.M_FINDING_KIND: kind})
        return attrs

    def _metric_name(self, name: str, kind: str) -> str:
        """Metric attribute for a primitive's name: the first ``max_lock_names`` names as
        they are, every later one as ``other`` (bounded cardinality). Threads (joins, runs)
        share one name, so a program starting many threads cannot use up the lock names."""
        if kind == "Thread":
            return N.THREADS_METRIC_NAME
        got = self._names.get(name)
        if got is None:
            got = name if len(self._names) < self.max_lock_names else N.OTHER
            self._names[name] = got
        return got

    # -- records ----------------------------------------------------------------------------
    def handle(self, records: list) -> None:
        # Counters are summed per batch and handed to the SDK once per attribute set (the
        # SDK costs microseconds a call); histograms take every value.
        self._pending = {}
        self._values = {}
        if self.spans != "none":
            self.tracer()   # once per batch: the provider in use (the application's, if set)
            if self._direct is not None:
                self._direct.check()
        for r in records:
            self._one(r)
        for (counter, attrs), n in self._pending.items():
            counter.add(n, attrs)
        self._pending = {}
        for (h, attrs), values in self._values.items():
            if self._mergeable.get(h):
                buckets = [0] * (len(N.DURATION_BUCKETS) + 1)
                for v in values:
                    buckets[_bisect_left(N.DURATION_BUCKETS, v)] += 1
                _sdk_private.merge(h, attrs, buckets, sum(values), min(values), max(values))
            else:
                for v in values:
                    h.record(v, attrs)
        self._values = {}

    def _observe(self, h: Any, attrs: Any, value: float) -> None:
        """A histogram value, added when the batch ends."""
        key = (h, attrs)
        got = self._values.get(key)
        if got is None:
            self._values[key] = [value]
        else:
            got.append(value)

    def _count(self, counter: Any, attrs: Any, n: int = 1) -> None:
        key = (counter, attrs)
        self._pending[key] = self._pending.get(key, 0) + n

    def _one(self, r: Any) -> None:
        op = r.op
        p = r.primitive
        attrs_m = None
        if self.meter is not None and op != core.FINDING:
            key = (p.name, p.kind)
            attrs_m = self._attr_sets.get(key)
            if attrs_m is None:
                attrs_m = self._attr_sets[key] = _Attrs(
                    {N.M_LOCK_NAME: self._metric_name(p.name, p.kind), N.M_LOCK_KIND: p.kind})
        if op == core.SUMMARY:
            if attrs_m is not None:
                self._summary(r.details, attrs_m)
            return
        if op in _LOCK_ACQ:
            if attrs_m is not None:
                if r.ok:
                    self._count(self.c_acq, attrs_m)
                if r.blocked and r.ok:
                    # A contention is an acquisition that had to wait; an attempt that
                    # timed out is a timeout, not an acquisition (contentions <= acquisitions).
                    self._count(self.c_cont, attrs_m)
                    self._observe(self.h_wait, attrs_m, r.duration_ns / 1e9)
                if r.timed_out:
                    self._count(self.c_timeouts, attrs_m)
            if r.blocked:
                holder = r.details.get("holder")
                self._span(_WAIT_SPANS[op], r,
                           extra={N.HOLDER_THREAD: holder} if holder is not None else None)
            elif self.spans == "all":   # named by what happened: an acquire, no wait
                self._span(op, r)
        elif op in _RELEASES:
            if r.held_ns is not None:
                if attrs_m is not None:
                    self._observe(self.h_hold, attrs_m, r.held_ns / 1e9)
                if r.details.get("contended") or self.spans == "all":
                    self._span(N.SPAN_LOCK_HOLD, r, start_ns=r.end_ns - r.held_ns,
                               extra={N.CONTENDED: bool(r.details.get("contended"))})
            elif self.spans == "all":   # an RLock's inner release: it stays held
                self._span(op, r)
        elif op in (core.CONDITION_WAIT, core.EVENT_WAIT, core.BARRIER_WAIT, core.THREAD_JOIN):
            if attrs_m is not None and r.blocked:
                h = self.h_barrier if op == core.BARRIER_WAIT else (
                    self.h_cond if op in (core.CONDITION_WAIT, core.EVENT_WAIT) else None)
                if h is not None:
                    self._observe(h, attrs_m, r.duration_ns / 1e9)
                if r.timed_out:
                    self._count(self.c_timeouts, attrs_m)
            if r.blocked or self.spans == "all":
                extra: dict[str, Any] | None = {}
                if op == core.BARRIER_WAIT:
                    extra = {N.BARRIER_INDEX: r.details.get("index") if r.details.get(
                        "index") is not None else -1,
                        N.BARRIER_PARTIES: r.details.get("parties", 0)}
                self._span(_WAIT_SPANS[op], r, extra=extra)
        elif op in (core.CONDITION_NOTIFY, core.CONDITION_NOTIFY_ALL, core.EVENT_SET):
            woken = r.details.get("woken", 0)
            if attrs_m is not None and woken:
                self._count(self.c_notify, attrs_m, woken)
            if self.spans == "all":
                self._span(op, r, extra={N.NOTIFIED: woken})
        elif op == core.THREAD_RUN_BEGIN:
            self._runs[p.id] = r
            if self.span_events:
                key = (r.thread.ident, r.thread.native_id)
                if key in self._partial:   # the ident of a thread now gone, reused
                    self._partial_run(key)
                self._events[key] = []
            return
        elif op == core.THREAD_RUN_END:
            begin = self._runs.pop(p.id, None)
            key = (r.thread.ident, r.thread.native_id)
            events = self._events.pop(key, None) or []
            dropped = self._events_dropped.pop(key, 0)
            found = self._finding_events.pop(p.id, [])
            if begin is not None and self.spans != "none":
                extra = {N.EVENTS_DROPPED: dropped} if dropped else None
                error = None if r.ok else r.details.get("exception")
                if found and error is None:
                    error = found[0][1]
                self._span(N.SPAN_THREAD_RUN, r, start_ns=begin.start_ns,
                           parent=begin.details.get("context"), error=error, extra=extra,
                           events=events + [(kind, t, {N.FINDING_MESSAGE: msg,
                                                       N.FINDING_KIND: kind})
                                            for kind, msg, t in found])
            return
        elif op == core.FINDING:
            self._finding(r)
            return
        elif self.spans == "all":
            self._span(op, r)
        if self.span_events and not r.blocked and self.spans != "all":
            key = (r.thread.ident, r.thread.native_id)
            run_events = self._events.get(key)
            if run_events is None:   # no traced run: a partial one, from this operation
                if len(self._partial) >= self.MAX_PARTIAL_RUNS:
                    self._partial_run(next(iter(self._partial)))   # the oldest, now
                run_events = self._events[key] = []
                self._partial[key] = [r.thread, r.end_ns, r.end_ns]
            else:
                partial = self._partial.get(key)
                if partial is not None:
                    partial[2] = r.end_ns
            if len(run_events) < self.MAX_EVENTS_PER_RUN:
                run_events.append((op, r.end_ns, {N.LOCK_NAME: p.name, N.LOCK_KIND: p.kind}))
            else:
                self._events_dropped[key] = self._events_dropped.get(key, 0) + 1

    def close(self) -> None:
        """Make the spans still open in the sink: with ``spans="events"``, the partial
        ``thread.run`` span of each thread whose run tracethread did not see begin (the main
        thread, threads started before ``install()`` or by ``_thread``). Call it after
        the last ``tracethread.flush()`` and before the providers shut down (``tracethread
        run`` and the instrumentor do)."""
        if self._partial:
            if self.spans != "none":
                self.tracer()
            for key in list(self._partial):
                self._partial_run(key)

    def _partial_run(self, key: tuple) -> None:
        """The ``thread.run`` span of a thread whose run was not seen to begin: from its
        first operation seen to its last, with their events, marked partial."""
        thread, first, last = self._partial.pop(key)
        events = self._events.pop(key, None) or []
        dropped = self._events_dropped.pop(key, 0)
        if self.spans == "none" or self._tracer is None:
            return
        attrs: dict[str, Any] = {N.THREAD_ID: thread.ident, N.THREAD_NAME: thread.name,
                                 N.OPERATION: N.SPAN_THREAD_RUN, N.RUN_PARTIAL: True}
        if dropped:
            attrs[N.EVENTS_DROPPED] = dropped
        span = self._tracer[1].start_span(N.SPAN_THREAD_RUN, context=otel_context.Context(),
                                          attributes=attrs, start_time=first + self._offset)
        for ev_name, t, ev_attrs in events:
            span.add_event(ev_name, ev_attrs, timestamp=t + self._offset)
        self._end(span, last)

    def _summary(self, d: Any, attrs_m: Any) -> None:
        """Uncontended operations counted in the core: acquisitions, and the holds'
        histogram added in one step (or, if the SDK cannot take that, one value per hold
        at its bucket's mean: bucket counts and sum stay exact)."""
        n = d["acquisitions"] + d["reentries"]
        if n:
            self._count(self.c_acq, attrs_m, n)
        if d.get("woken"):   # (Condition notifies that woke threads)
            self._count(self.c_notify, attrs_m, d["woken"])
        if not d["releases"]:
            return
        if self._merge_holds:
            _sdk_private.merge(self.h_hold, attrs_m, d["hold_buckets"],
                             d["hold_ns_total"] / 1e9, d["hold_ns_min"] / 1e9,
                             d["hold_ns_max"] / 1e9)
            return
        for count, total in zip(d["hold_buckets"], d["hold_bucket_sums_ns"]):
            for _ in range(count):
                self.h_hold.record(total / count / 1e9, attrs_m)

    def _base(self, p: Any) -> dict[str, Any]:
        """A primitive's own span attributes (kept per primitive; a new dict, never a
        changed one, when it is renamed)."""
        base = self._prim_attrs.get(p)
        if base is None or base[N.LOCK_NAME] != p.name or base[N.LOCK_KIND] != p.kind:
            base = {N.LOCK_NAME: p.name, N.LOCK_KIND: p.kind, N.LOCK_ID: p.id}
            if p.site is not None:
                base[N.LOCK_SITE] = f"{p.site.file}:{p.site.line}"
            if len(self._prim_attrs) >= 4096:   # bounded: primitives come and go
                self._prim_attrs.clear()
            self._prim_attrs[p] = base
        return base

    def _span_attrs(self, r: Any, extra: dict | None) -> dict[str, Any]:
        return record_attrs(r, self._base(r.primitive), extra)

    def _attr_bytes(self, r: Any, extra: dict | None) -> tuple | None:
        """(the span attributes of ``_span_attrs(r, extra)`` in wire format, in the same
        order, the primitive's attributes they were made from): kept per (thread,
        primitive, operation, site, contended, timed out), the extra ones added; None
        where the encoder does not cover a value (the dict is then made)."""
        t, p, site = r.thread, r.primitive, r.site
        key = (t.ident, t.name, p, r.op, id(site), r.blocked, r.timed_out)
        got = self._attr_blobs.get(key)
        # (the entry keeps its site alive, so its id is not reused; a renamed primitive
        # gets its attributes anew)
        if got is None or got[1] is not site or got[2] != p.name or got[3] != p.kind:
            base = self._base(p)
            blob = _enc.attribute_bytes(record_attrs(r, base, None))
            if blob is None:
                return None
            if len(self._attr_blobs) >= 4096:   # bounded: primitives come and go
                self._attr_blobs.clear()
            got = self._attr_blobs[key] = (blob, site, p.name, p.kind, base)
        if not extra:
            return got[0], got[4]
        if (r.blocked and N.CONTENDED in extra) or (r.timed_out and N.TIMED_OUT in extra):
            return None   # (a dict's update keeps the key's place: the dict path)
        eb = _enc.attribute_bytes(extra, self._extra_bytes)
        return None if eb is None else (got[0] + eb, got[4])

    def _span(self, name: str, r: Any, start_ns: int | None = None, extra: dict | None = None,
              parent: Any = None, error: str | None = None,
              events: list | None = None) -> None:
        if self.spans == "none":
            return
        start = r.start_ns if start_ns is None else start_ns
        if r.end_ns - start < self.min_ns and name != N.SPAN_THREAD_RUN:
            return
        ctx = parent if parent is not None else r.details.get("context")
        assert self._tracer is not None
        provider, tracer = self._tracer   # looked up by handle(), once per batch
        direct = self._direct
        direct = direct if (direct is not None and direct.live and not events and
                            provider is self._tp) else None
        if direct is not None and direct.encoded:
            got = self._attr_bytes(r, extra)
            if got is not None and direct.emit_encoded(
                    name, ctx, got[0], r, got[1], extra, start + self._offset,
                    r.end_ns + self._offset, error):
                return
        attrs = self._span_attrs(r, extra)
        if direct is not None and direct.fits(attrs):
            direct.emit(name, ctx, attrs, start + self._offset, r.end_ns + self._offset, error)
            return
        span = tracer.start_span(name, context=ctx, attributes=attrs,
                                        start_time=start + self._offset)
        for ev_name, t, ev_attrs in events or ():
            span.add_event(ev_name, ev_attrs, timestamp=t + self._offset)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        self._end(span, r.end_ns)

    def _finding(self, r: Any) -> None:
        f = r.details.get("finding")
        if f is None:
            return
        if self.meter is not None:
            self._count(self.c_findings, self._finding_attrs(f.kind))
        if self.spans == "none":
            return
        # The involved threads' run spans (those still running) get the finding as an
        # event and ERROR status when they end.
        if f.kind != "guarded-cycle":
            names = {t.name for t in f.threads} | {e.thread for e in f.edges}
            for run_id, begin in self._runs.items():
                if begin.thread.name in names:
                    self._finding_events.setdefault(run_id, []).append(
                        (f.kind, f.message, r.end_ns))
        cycle = " -> ".join(lk.name for lk in f.locks)
        assert self._tracer is not None
        span = self._tracer[1].start_span(   # (looked up by handle())
            N.SPAN_FINDING, attributes={N.FINDING_KIND: f.kind,
                                        N.FINDING_FINGERPRINT: f.fingerprint,
                                        N.FINDING_CYCLE: cycle},
            start_time=r.end_ns + self._offset)
        span.add_event(f.kind, {N.FINDING_MESSAGE: f.message,
                                "threads": [t.name for t in f.threads] or [""]})
        if f.kind in ("potential-deadlock", "deadlock", "hang"):
            span.set_status(Status(StatusCode.ERROR, f.message))
        self._end(span, r.end_ns)

    def _end(self, span: Any, end_ns: int) -> None:
        """End an SDK span, counting it if tracethread's full batch queue will drop one."""
        assert self._tracer is not None   # (looked up by handle(), before any span)
        if self._tracer[0] is self._tp and _queued(span):
            count_full(self._queues)
        span.end(end_time=end_ns + self._offset)


def enable_context_capture() -> None:
    """Blocked operations remember the thread's OTel context (their spans' parent) and
    threads inherit their starter's context."""
    core.set_context_hooks((otel_context.get_current, otel_context.attach,
                            otel_context.detach))

