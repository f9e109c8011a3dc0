"""The direct span pipeline: finished spans of tracethread's own ``TracerProvider`` handed
straight to its span processors (``DirectSpans.emit``), or written in wire format as they
are made (``DirectSpans.emit_encoded``, for a pipeline that sends ``wire.py``'s encoding),
without the SDK's ``Tracer.start_span``. The OTel sink (``sink.py``) decides, span by span,
whether this pipeline or the SDK's Tracer makes a span.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ... import __version__
from ..._core import api as core
from . import _sdk_private
from . import names as N
from . import wire as _enc


def count_full(queues: list) -> None:
    """Count an export drop for each full queue (``_sdk_private.batch_queues``) about to
    take a span."""
    # The SDK's own test, just before the span is handed over: a batch the worker takes out
    # in between can make the count one high (as the SDK's own drop log and metric).
    for q in queues:
        if len(q) >= q.maxlen:   # the SDK drops its oldest span to take this one
            core.count_export_dropped()


_INTERNAL = trace.SpanKind.INTERNAL
_SAMPLED = int(trace.TraceFlags.SAMPLED)
_DEFAULT = int(trace.TraceFlags.DEFAULT)
_getrandbits = random.getrandbits   # what the SDK's RandomIdGenerator draws from
_UNSET_BYTES = _enc.status_bytes(StatusCode.UNSET.value, None)


class DirectSpans:
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
        # The provider's sampler and id generator, as it has them (None: it has none; then
        # ``ok`` is False and ``emit`` is never called).
        self.sampler: Any = getattr(provider, "sampler", None)
        self.ids: Any = getattr(provider, "id_generator", None)
        self.ok = (self.ok and bool(self.processors) and self.sampler is not None and
                   self.ids is not None and hasattr(self.ids, "generate_span_id"))
        # The provider's limits (the SDK's own attribute; the environment's otherwise).
        limits = _sdk_private.span_limits(provider) or SpanLimits()
        self.max_attrs = limits.max_span_attributes
        self.max_len = limits.max_span_attribute_length
        self.provider = provider
        self.resource = provider.resource
        self.scope = InstrumentationScope("tracethread", __version__)
        self.ReadableSpan = ReadableSpan
        self.random_flag = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        self.id_random = getattr(self.ids, "is_trace_id_random", None)
        self.unset = Status(StatusCode.UNSET)
        self.queues = queues   # the processors' (_sdk_private.batch_queues), drops counted
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

        from .delivery import unwrap
        from .wire import FastOTLPSpanExporter
        self.parent_based = self.sampler is sampling.DEFAULT_ON
        for p in self.processors:
            exporter = getattr(p, "span_exporter", None) if type(p) is BatchSpanProcessor \
                else None
            exporter = unwrap(exporter)   # (the wrapper counting what it delivers)
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
        current = _sdk_private.span_processors(self.provider)
        self.live = current is not None and current == self.processors

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
            count_full(self.queues)
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
        count_full(self.queues)
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
            attributes=MappingProxyType(record_attrs(r, base, extra)), kind=_INTERNAL,
            status=Status(StatusCode.ERROR, error) if error else self.unset,
            start_time=start, end_time=end, instrumentation_scope=self.scope)


def record_attrs(r: Any, base: dict, extra: dict | None) -> dict[str, Any]:
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

