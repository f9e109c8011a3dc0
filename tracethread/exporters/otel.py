"""OpenTelemetry export: spans and metrics built from records, off the hot path.

The sink runs in the record drainer's thread (guarded: nothing the SDK does is recorded),
so the application never waits for it; the SDK's batch processor and periodic reader do
the network I/O on their own threads. When the program outruns the drainer, the record
buffer overflows and the loss is counted (``tracethread.records.dropped``).

Default mode: a span for every operation that blocked (``lock.wait``, ``condition.wait``,
``event.wait``, ``semaphore.wait``, ``barrier.wait``, ``thread.join``), for contended
holds (``lock.hold``) and each thread's run (``thread.run``); every operation counts in
the metrics. ``spans="all"`` makes a span of every operation.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from bisect import bisect_left as _bisect_left
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .. import __version__
from .._core import detect, recorder, watchdog
from .._core import records as R
from . import _sdk_merge
from . import otel_names as N
from . import otlp_spans as _enc

_LOCK_ACQ = {R.LOCK_ACQUIRE, R.RLOCK_ACQUIRE, R.SEMAPHORE_ACQUIRE}
_RELEASES = {R.LOCK_RELEASE, R.RLOCK_RELEASE}
_WAIT_SPANS = {
    R.LOCK_ACQUIRE: N.SPAN_LOCK_WAIT, R.RLOCK_ACQUIRE: N.SPAN_LOCK_WAIT,
    R.SEMAPHORE_ACQUIRE: N.SPAN_SEMAPHORE_WAIT, R.CONDITION_WAIT: N.SPAN_CONDITION_WAIT,
    R.EVENT_WAIT: N.SPAN_EVENT_WAIT, R.BARRIER_WAIT: N.SPAN_BARRIER_WAIT,
    R.THREAD_JOIN: N.SPAN_THREAD_JOIN,
}


class _Attrs(dict):
    """A metric attribute set, hashable so per-batch sums can be keyed by it (never
    mutated after creation)."""

    __hash__ = object.__hash__   # type: ignore[assignment]  # by identity, in C


def _batch_queues(processors: Any) -> list:
    """The bounded queues of the SDK's batch span processors among ``processors``, to count
    what they drop when full (the SDK only logs it). Private SDK structures: a processor
    whose queue is not found is not counted."""
    import collections
    out = []
    for p in processors or ():
        q = getattr(getattr(p, "_batch_processor", None), "_queue", None)
        if isinstance(q, collections.deque) and q.maxlen:
            out.append(q)
    return out


def _queued(span: Any) -> bool:
    """Will the batch processor queue this span when it ends (recording and sampled)?"""
    return span.is_recording() and span.get_span_context().trace_flags.sampled


def _count_full(queues: list) -> None:
    # The SDK's own test, just before the span is handed over: a batch the worker takes out
    # in between can make the count one high (as the SDK's own drop log and metric).
    for q in queues:
        if len(q) >= q.maxlen:   # the SDK drops its oldest span to take this one
            recorder.count_export_dropped()


_INTERNAL = trace.SpanKind.INTERNAL
_SAMPLED = int(trace.TraceFlags.SAMPLED)
_DEFAULT = int(trace.TraceFlags.DEFAULT)
_getrandbits = random.getrandbits   # what the SDK's RandomIdGenerator draws from
_UNSET_BYTES = _enc.status_bytes(StatusCode.UNSET.value, None)


class _DirectSpans:
    """Finished spans of tracethread's own ``TracerProvider`` handed straight to its span
    processors, as the SDK's ``Tracer.start_span`` + ``Span.end`` would hand them, at a
    fraction of the cost (~27 µs a span through the SDK on the machines we measure, most of
    it re-validating attributes that are tracethread's own strings, ints and bools).

    Everything the SDK decides is still asked of the SDK: the parent from the context, the
    provider's sampler (its decision, attributes and trace state), its id generator, the
    random-trace-id flag, the span limits. Used only for spans without events, with a
    provider tracethread made (``setup``) and processors it knows to end spans the plain
    way (the SDK's Batch/Simple span processors, whose ``on_start`` does nothing); anything
    else goes through the SDK. tests/test_otel.py runs the OpenTelemetry tests both ways."""

    def __init__(self, provider: Any, processors: Any, queues: list) -> None:
        from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        self.processors = tuple(processors)
        self.ok = all(type(p) in (BatchSpanProcessor, SimpleSpanProcessor)
                      for p in self.processors)
        self.sampler = getattr(provider, "sampler", None)
        self.ids = getattr(provider, "id_generator", None)
        self.ok = (self.ok and bool(self.processors) and self.sampler is not None and
                   self.ids is not None and hasattr(self.ids, "generate_span_id"))
        # The provider's limits (the SDK's own attribute; the environment's otherwise).
        limits = getattr(provider, "_span_limits", None) or SpanLimits()
        self.max_attrs = limits.max_span_attributes
        self.max_len = limits.max_span_attribute_length
        self.provider = provider
        self.resource = provider.resource
        self.scope = InstrumentationScope("tracethread", __version__)
        self.ReadableSpan = ReadableSpan
        self.random_flag = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        self.id_random = getattr(self.ids, "is_trace_id_random", None)
        self.unset = Status(StatusCode.UNSET)
        self.queues = queues   # the processors' (_batch_queues), drops counted
        self.check()
        self._last_ctx: Any = object()   # never a context: the first lookup is made
        self._last_parent: Any = None
        self._flags: dict[int, Any] = {}
        self.encoded = self.ok and self._can_encode(provider)
        self._names: dict[str, bytes] = {}

    def _can_encode(self, provider: Any) -> bool:
        """Can spans be made in wire format (emit_encoded)? When every processor is a
        BatchSpanProcessor whose exporter sends tracethread's encoding, and what the SDK
        would decide is known without asking it: its default sampler (ParentBased over
        ALWAYS_ON) or ALWAYS_ON, its random id generator, and span limits that keep every
        attribute tracethread writes whole."""
        from opentelemetry.sdk.trace import sampling
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        from .otlp_spans import FastOTLPSpanExporter
        self.parent_based = self.sampler is sampling.DEFAULT_ON
        for p in self.processors:
            exporter = getattr(p, "span_exporter", None) if type(p) is BatchSpanProcessor \
                else None
            if not (isinstance(exporter, FastOTLPSpanExporter) and exporter.sends_encoded):
                return False
        return ((self.parent_based or self.sampler is sampling.ALWAYS_ON) and
                type(self.ids) is RandomIdGenerator and self.max_len is None and
                (self.max_attrs is None or self.max_attrs >= 32))

    def _parent(self, ctx: Any) -> Any:
        if ctx is self._last_ctx:   # records of one thread mostly share one context
            return self._last_parent
        parent = trace.get_current_span(ctx).get_span_context()
        self._last_ctx, self._last_parent = ctx, parent
        return parent

    def check(self) -> None:
        """Still the provider's only processors? A processor added later (the provider is
        public, ``Exporting.tracer_provider``) must see every span: then, and whenever
        the SDK's list cannot be read, spans go through the SDK's Tracer."""
        active = getattr(self.provider, "_active_span_processor", None)
        current = getattr(active, "_span_processors", None)
        self.live = isinstance(current, tuple) and current == self.processors

    def fits(self, attrs: dict) -> bool:
        """Within the span limits, so the SDK would have kept every attribute whole."""
        if self.max_attrs is not None and len(attrs) > self.max_attrs:
            return False
        if self.max_len is not None:
            return all(not isinstance(v, str) or len(v) <= self.max_len
                       for v in attrs.values())
        return True

    def emit(self, name: str, ctx: Any, attrs: dict, start: int, end: int,
             error: str | None) -> None:
        parent = self._parent(ctx)
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.ids.generate_trace_id()
        else:
            trace_id = parent.trace_id
        result = self.sampler.should_sample(ctx, trace_id, name, _INTERNAL, attrs, ())
        decision = result.decision
        if not decision.is_recording():
            return
        flags = _SAMPLED if decision.is_sampled() else _DEFAULT
        if parent is None:
            if self.id_random is not None and self.id_random():
                flags |= self.random_flag
        elif getattr(parent.trace_flags, "random_trace_id", False):
            flags |= self.random_flag
        trace_flags = self._flags.get(flags)
        if trace_flags is None:
            trace_flags = self._flags[flags] = trace.TraceFlags(flags)
        context = trace.SpanContext(trace_id, self.ids.generate_span_id(), is_remote=False,
                                    trace_flags=trace_flags, trace_state=result.trace_state)
        span = self.ReadableSpan(   # the sampler's attributes, read-only (nothing changes them)
            name=name, context=context, parent=parent, resource=self.resource,
            attributes=result.attributes or {}, kind=_INTERNAL,
            status=Status(StatusCode.ERROR, error) if error else self.unset,
            start_time=start, end_time=end, instrumentation_scope=self.scope)
        if flags & _SAMPLED:   # the batch processor queues sampled spans only
            _count_full(self.queues)
        for p in self.processors:
            p.on_end(span)

    def emit_encoded(self, name: str, ctx: Any, attr_bytes: bytes, r: Any, base: dict,
                     extra: Any, start: int, end: int, error: str | None) -> bool:
        """``emit`` for a pipeline that takes spans in wire format (``encoded``): the
        sampler's decision and the ids as the SDK's default sampler and RandomIdGenerator
        would make them, the span written once from ready-made attribute bytes (those of
        record ``r``, primitive attributes ``base`` and ``extra``, from which a
        ReadableSpan is made if the SDK's export needs one). False, and nothing done, for
        a name or error text that cannot be encoded (UTF-8): ``emit`` then."""
        try:
            name_b = self._names.get(name)
            if name_b is None:
                if len(self._names) >= 1024:
                    self._names.clear()
                name_b = self._names[name] = _enc.name_bytes(name)
            status = (_enc.status_bytes(StatusCode.ERROR.value, error) if error
                      else _UNSET_BYTES)
        except UnicodeEncodeError:
            return False
        parent = self._parent(ctx)
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = _getrandbits(128)
            while not trace_id:
                trace_id = _getrandbits(128)
            flags = _SAMPLED | self.random_flag   # (RandomIdGenerator: random trace ids)
        else:
            if self.parent_based and not parent.trace_flags.sampled:
                return True   # ParentBased: an unsampled parent's spans are dropped
            trace_id = parent.trace_id
            flags = _SAMPLED | (self.random_flag if getattr(
                parent.trace_flags, "random_trace_id", False) else 0)
        span_id = _getrandbits(64)
        while not span_id:
            span_id = _getrandbits(64)
        try:
            data = _enc.encode_span(trace_id, span_id, parent, name_b, start, end,
                                    attr_bytes, status)
        except UnicodeEncodeError:   # (a parent's trace state)
            return False
        span = _enc.EncodedSpan(data, self.resource, self.scope, self._readable,
                                (name, trace_id, span_id, flags, parent, r, base, extra,
                                 start, end, error))
        _count_full(self.queues)
        for p in self.processors:
            p.on_end(span)
        return True

    def _readable(self, name: str, trace_id: int, span_id: int, flags: int, parent: Any,
                  r: Any, base: dict, extra: Any, start: int, end: int,
                  error: str | None) -> Any:
        """The ReadableSpan of an EncodedSpan (as ``emit`` would have made it), from the
        values it was made of (on the batch processor's thread: no cache is touched)."""
        context = trace.SpanContext(
            trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(flags),
            trace_state=parent.trace_state if parent is not None else None)
        return self.ReadableSpan(
            name=name, context=context, parent=parent, resource=self.resource,
            attributes=MappingProxyType(_record_attrs(r, base, extra)), kind=_INTERNAL,
            status=Status(StatusCode.ERROR, error) if error else self.unset,
            start_time=start, end_time=end, instrumentation_scope=self.scope)


def _record_attrs(r: Any, base: dict, extra: dict | None) -> dict[str, Any]:
    """A span's attributes: the record's thread, the primitive's own (``base``), the
    operation, the code site, contended / timed out, then ``extra``."""
    a = {N.THREAD_ID: r.thread.ident, N.THREAD_NAME: r.thread.name, **base,
         N.OPERATION: r.op}
    if r.site is not None:
        a[N.CODE_FILE] = r.site.file
        a[N.CODE_LINE] = r.site.line
        a[N.CODE_FUNCTION] = r.site.function
    if r.blocked:
        a[N.CONTENDED] = True
    if r.timed_out:
        a[N.TIMED_OUT] = True
    if extra:
        a.update(extra)
    return a


class OTelSink:
    """Turns records into spans and metrics through the given (or global) providers."""

    MAX_EVENTS_PER_RUN = 128

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None,
                 spans: str = "blocked", min_duration_s: float = 0.0,
                 max_lock_names: int = 200, span_events: bool = False,
                 span_processors: Any = None) -> None:
        # span_events: uncontended operations become events on their thread's run span
        # (at most MAX_EVENTS_PER_RUN each; the rest are counted in an attribute).
        self.span_events = span_events
        self._events: dict[tuple, list] = {}     # (ident, native_id) -> [(name, t, attrs)]
        self._events_dropped: dict[tuple, int] = {}
        self._finding_events: dict[int, list] = {}  # running thread's id -> [(kind, msg, t)]
        if spans == "events":  # blocked operations as spans, the rest as run-span events
            spans, self.span_events = "blocked", True
        if spans not in ("blocked", "all", "none"):
            raise ValueError("spans must be 'blocked', 'events', 'all' or 'none'")
        self.spans = spans
        self.min_ns = int(min_duration_s * 1e9)
        self._tp = tracer_provider
        self._tracer = None
        # span_processors: those of tracer_provider, known to the caller (setup made them):
        # spans of that provider are then handed to them directly (_DirectSpans).
        self._direct = None
        self._queues = _batch_queues(span_processors)   # drops counted (spans of _tp)
        if span_processors is not None and tracer_provider is not None:
            direct = _DirectSpans(tracer_provider, span_processors, self._queues)
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
        self._pending = {}
        self.meter = None
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
        # aggregation in one step where it can take that (_sdk_merge), as the same values
        # recorded one by one would leave it (bucket counts, sum, min, max), except for
        # exemplars: asked for explicitly (always_on: the drainer has no span context, so
        # the default trace_based filter keeps none), every value is recorded.
        exemplars = os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip() == "always_on"
        for h in (self.h_wait, self.h_hold, self.h_cond, self.h_barrier):
            supported = _sdk_merge.supports(h, N.DURATION_BUCKETS)
            if h is self.h_hold:
                self._merge_holds = supported   # summaries' holds (they carry no exemplar)
            self._mergeable[h] = not exemplars and supported
        from opentelemetry.metrics import Observation

        waited: set[tuple] = set()  # bounded: names are capped, kinds are few

        def waiters(options):
            counts: dict[tuple, int] = {}
            for st in list(watchdog.states):
                info = st.waiting
                if info is not None:
                    key = (self._metric_name(info.name, info.kind), info.kind)
                    counts[key] = counts.get(key, 0) + 1
            # A primitive once waited on keeps reporting (0 when nobody waits), so its
            # series drops to zero instead of going stale at its last value.
            waited.update(counts)
            return [Observation(counts.get(k, 0), {N.M_LOCK_NAME: k[0], N.M_LOCK_KIND: k[1]})
                    for k in list(waited)] or [Observation(0)]

        def graph(key):
            return lambda options: [Observation(detect.graph.stats()[key])]

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
            st = recorder.stats()
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
        self._pending: dict[tuple, int] = {}
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
                _sdk_merge.merge(h, attrs, buckets, sum(values), min(values), max(values))
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
        if self.meter is not None and op != R.FINDING:
            key = (p.name, p.kind)
            attrs_m = self._attr_sets.get(key)
            if attrs_m is None:
                attrs_m = self._attr_sets[key] = _Attrs(
                    {N.M_LOCK_NAME: self._metric_name(p.name, p.kind), N.M_LOCK_KIND: p.kind})
        if op == R.SUMMARY:
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
            if r.blocked or self.spans == "all":
                self._span(_WAIT_SPANS[op], r)
        elif op in _RELEASES:
            if r.held_ns is not None:
                if attrs_m is not None:
                    self._observe(self.h_hold, attrs_m, r.held_ns / 1e9)
                if r.details.get("contended") or self.spans == "all":
                    self._span(N.SPAN_LOCK_HOLD, r, start_ns=r.end_ns - r.held_ns,
                               extra={N.CONTENDED: bool(r.details.get("contended"))})
        elif op in (R.CONDITION_WAIT, R.EVENT_WAIT, R.BARRIER_WAIT, R.THREAD_JOIN):
            if attrs_m is not None and r.blocked:
                h = self.h_barrier if op == R.BARRIER_WAIT else (
                    self.h_cond if op in (R.CONDITION_WAIT, R.EVENT_WAIT) else None)
                if h is not None:
                    self._observe(h, attrs_m, r.duration_ns / 1e9)
                if r.timed_out:
                    self._count(self.c_timeouts, attrs_m)
            if r.blocked or self.spans == "all":
                extra = {}
                if op == R.BARRIER_WAIT:
                    extra = {N.BARRIER_INDEX: r.details.get("index") if r.details.get(
                        "index") is not None else -1,
                        N.BARRIER_PARTIES: r.details.get("parties", 0)}
                self._span(_WAIT_SPANS[op], r, extra=extra)
        elif op in (R.CONDITION_NOTIFY, R.CONDITION_NOTIFY_ALL, R.EVENT_SET):
            woken = r.details.get("woken", 0)
            if attrs_m is not None and woken:
                self._count(self.c_notify, attrs_m, woken)
            if self.spans == "all":
                self._span(op, r, extra={N.NOTIFIED: woken})
        elif op == R.THREAD_RUN_BEGIN:
            self._runs[p.id] = r
            if self.span_events:
                self._events[(r.thread.ident, r.thread.native_id)] = []
            return
        elif op == R.THREAD_RUN_END:
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
        elif op == R.FINDING:
            self._finding(r)
            return
        elif self.spans == "all":
            self._span(op, r)
        if self.span_events and not r.blocked and self.spans != "all":
            key = (r.thread.ident, r.thread.native_id)
            events = self._events.get(key)
            if events is not None:
                if len(events) < self.MAX_EVENTS_PER_RUN:
                    events.append((op, r.end_ns, {N.LOCK_NAME: p.name, N.LOCK_KIND: p.kind}))
                else:
                    self._events_dropped[key] = self._events_dropped.get(key, 0) + 1

    def _summary(self, d: Any, attrs_m: Any) -> None:
        """Uncontended operations counted in the core: acquisitions, and the holds'
        histogram added in one step (or, if the SDK cannot take that, one value per hold
        at its bucket's mean: bucket counts and sum stay exact)."""
        n = d["acquisitions"] + d["reentries"]
        if n:
            self._count(self.c_acq, attrs_m, n)
        if not d["releases"]:
            return
        if self._merge_holds:
            _sdk_merge.merge(self.h_hold, attrs_m, d["hold_buckets"],
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
        return _record_attrs(r, self._base(r.primitive), extra)

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
            blob = _enc.attribute_bytes(_record_attrs(r, base, None))
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
        if self._tracer[0] is self._tp and _queued(span):
            _count_full(self._queues)
        span.end(end_time=end_ns + self._offset)


def enable_context_capture() -> None:
    """Blocked operations remember the thread's OTel context (their spans' parent) and
    threads inherit their starter's context."""
    recorder.otel_hooks = (otel_context.get_current, otel_context.attach,
                           otel_context.detach)


# ---------------------------------------------------------------------------------------
# Configuration the OpenTelemetry way (OTEL_* environment), plus the CLI's shortcuts.

class MissingExtra(RuntimeError):
    pass


def _need(extra: str, what: str):
    raise MissingExtra(f"{what} needs an optional dependency: pip install 'tracethread[{extra}]'")


def _default_resource_attributes(env: Any) -> dict[str, str]:
    """What the OTEL_* environment leaves unset: service.name defaults to "tracethread";
    service.instance.id to host-pid, so the series of two processes never merge into one
    (a Collector derives Prometheus's `instance` label from it)."""
    import socket
    given = {kv.split("=", 1)[0].strip()
             for kv in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",") if "=" in kv}
    attrs = {}
    if not env.get("OTEL_SERVICE_NAME") and "service.name" not in given:
        attrs["service.name"] = "tracethread"
    if "service.instance.id" not in given:
        attrs["service.instance.id"] = f"{socket.gethostname()}-{os.getpid()}"
    return attrs


def _otlp_protocol(signal: str) -> str:
    """OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' or
    'http/protobuf' (the default); anything else is a configuration error."""
    var = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if not os.environ.get(var):
        var = "OTEL_EXPORTER_OTLP_PROTOCOL"
    proto = os.environ.get(var, "").strip() or "http/protobuf"
    if proto not in ("grpc", "http/protobuf"):
        raise ValueError(f"{var}={proto!r} is not supported (grpc, http/protobuf)")
    return proto


def _span_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r} "
                         "(otlp, console, none)")
    proto = _otlp_protocol("TRACES")
    try:
        if proto == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _need("otlp-grpc" if proto == "grpc" else "otlp", f"OTLP ({proto}) export")
    if proto == "grpc":
        return OTLPSpanExporter()
    from .otlp_spans import FastOTLPSpanExporter   # the SDK's exporter, a faster encoder
    return FastOTLPSpanExporter(OTLPSpanExporter())


def _metric_reader(name: str, prometheus_port: int | None) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "5000"))
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        return PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                             export_interval_millis=interval)
    if name == "prometheus":
        try:
            import prometheus_client
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
        except ImportError:
            _need("prometheus", "Prometheus export")
        port = prometheus_port if prometheus_port is not None else int(
            os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        prometheus_client.start_http_server(port, addr=host)
        return PrometheusMetricReader()
    if name != "otlp":
        raise ValueError(f"OTEL_METRICS_EXPORTER: unsupported exporter {name!r} "
                         "(otlp, prometheus, console, none)")
    proto = _otlp_protocol("METRICS")
    try:
        if proto == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
    except ImportError:
        _need("otlp-grpc" if proto == "grpc" else "otlp", f"OTLP ({proto}) export")
    return PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval)


class Exporting:
    """The providers tracethread made, and the sink feeding them."""

    def __init__(self, sink: OTelSink, tracer_provider: Any, meter_provider: Any) -> None:
        self.sink = sink
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Hand every record so far to the sink, and export what the providers hold."""
        from .._core.recorder import flush, guarded
        flush()
        with guarded():
            for p in (self.tracer_provider, self.meter_provider):
                if p is not None:
                    p.force_flush(timeout_millis)

    def shutdown(self) -> None:
        from .._core.recorder import flush, guarded
        flush()
        with guarded():
            for p in (self.tracer_provider, self.meter_provider):
                if p is not None:
                    try:
                        p.shutdown()
                    except Exception:  # noqa: BLE001 - exit must go on
                        pass


def setup(otlp_endpoint: str | None = None, prometheus_port: int | None = None,
          spans: str = "blocked", min_duration_s: float = 0.0) -> Exporting | None:
    """Start exporting as the OTEL_* environment (and the CLI shortcuts) say; None when
    nothing asks for it (tracethread needs no server) or OTEL_SDK_DISABLED=true."""
    from .._core.recorder import add_sink, guarded
    from .otel_env import wanted_exporters
    env = os.environ
    trace_names, reader_names = wanted_exporters(env, otlp_endpoint, prometheus_port)
    if not trace_names and not reader_names:
        return None
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint  # what the OTLP exporters read
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    with guarded():
        resource = Resource.create(_default_resource_attributes(env))
        tp = None
        if trace_names:
            tp = TracerProvider(resource=resource)
            processors = [BatchSpanProcessor(_span_exporter(n)) for n in trace_names]
            for sp in processors:
                tp.add_span_processor(sp)
        readers = [_metric_reader(n, prometheus_port) for n in reader_names]
        extra: dict[str, Any] = {}
        if not env.get("OTEL_METRICS_EXEMPLAR_FILTER"):
            # Exemplars of lock waits cost ~20 % of every histogram record on the export
            # thread and the spans already link a wait to its trace: off unless asked for.
            try:
                from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
                extra["exemplar_filter"] = AlwaysOffExemplarFilter()
            except ImportError:  # an SDK from before exemplars (< 1.26)
                pass
        mp = MeterProvider(resource=resource, metric_readers=readers,
                           **extra) if readers else None
        enable_context_capture()
        sink = OTelSink(tp, mp, spans=spans if tp is not None else "none",
                        min_duration_s=min_duration_s,
                        span_processors=processors if tp is not None else None)
    add_sink(sink)
    exporting = Exporting(sink, tp, mp)
    if hasattr(os, "register_at_fork") and "service.instance.id" in \
            _default_resource_attributes(env):
        ref = weakref.ref(exporting)
        os.register_at_fork(after_in_child=lambda: _new_instance_in_child(ref))
    return exporting


def _new_instance_in_child(ref: Any) -> None:
    """A forked child is another process: its spans and metrics carry its own
    service.instance.id (host-pid), not its parent's. The SDK's resources are fixed at
    construction, so the providers' are replaced in place (private attributes of the SDK:
    where one is missing, the child keeps its parent's id)."""
    exporting = ref()
    if exporting is None:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        resource = Resource.create(_default_resource_attributes(os.environ))
        tp, mp = exporting.tracer_provider, exporting.meter_provider
        if tp is not None and hasattr(tp, "_resource"):
            tp._resource = resource
            exporting.sink._tracer = None   # tracers hold the resource: get a new one
            direct = getattr(exporting.sink, "_direct", None)
            if direct is not None:
                direct.resource = resource
        config = getattr(mp, "_sdk_config", None)
        if config is not None and hasattr(config, "resource"):
            config.resource = resource
    except Exception as exc:  # noqa: BLE001 - the tracer must not break the child
        from .._core.recorder import internal_error
        internal_error("OpenTelemetry (new instance id in a forked child)", exc)
