"""OTLP span export at a fraction of the SDK encoder's cost.

The SDK's OTLP exporters build a protobuf message object per span, attribute and value
(``opentelemetry.exporter.otlp.proto.common``: ~40 µs a span with tracethread's eleven
attributes on the machines we measure). That runs in the batch span processor's thread,
and under the GIL a program with many short waits pays for it. tracethread's spans repeat
the same few attribute values (thread, lock, site) over and over, so this encoder writes
the protobuf wire format itself and keeps each attribute's encoded bytes: a span is a few
byte-string joins (~5 µs).

Only the encoding changes. ``FastOTLPSpanExporter`` wraps the SDK's own OTLP/HTTP span
exporter and hands the bytes to that exporter's HTTP client, so endpoint, headers,
compression, timeout, certificates and retries are the SDK's, configured by the same
``OTEL_EXPORTER_OTLP_*`` variables. A batch the encoder does not cover (events, links,
an attribute of another type, dropped counts), an SDK without that client, or a request
over the SDK's size limit goes through the SDK's ``export`` unchanged.
tests/test_otel.py checks that the bytes decode (with opentelemetry-proto) to exactly the
message the SDK's encoder builds.

Spans of the pipeline tracethread sets up itself (its TracerProvider, the SDK's default
sampler and id generator, batch processors feeding this exporter) can be written in wire
format as they are made (``EncodedSpan``, by the OTel sink from per-thread, per-primitive
and per-site attribute bytes), so neither an SDK span object nor a second encoding is
made for them; a batch the SDK's own ``export`` must take gets them as ``ReadableSpan``s
built from the same values (``readable()``).
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from . import _sdk_private

_Q = struct.Struct("<Q").pack
_TIMES = struct.Struct("<BQBQ").pack   # start_time_unix_nano, end_time_unix_nano fields
_D = struct.Struct("<d").pack
_I = struct.Struct("<I").pack

# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, and ..._IS_REMOTE_MASK (as the SDK).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_MAX_CACHED = 8192   # encoded attributes kept (cleared when full: memory stays bounded)


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:   # (a span's length, mostly)
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(v: Any) -> bytes | None:
    """AnyValue of a str, bool, int, float or a list/tuple of them; None otherwise."""
    t = type(v)
    if t is str:
        try:
            return _ld(b"\x0a", v.encode("utf-8"))
        except UnicodeEncodeError:   # (a lone surrogate: not UTF-8; not covered)
            return None
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        if not -(1 << 63) <= v < (1 << 63):
            return None
        return b"\x18" + _varint(v & 0xFFFFFFFFFFFFFFFF)
    if t is float:
        return b"\x21" + _D(v)
    if t is list or t is tuple:   # ArrayValue (resource attributes such as process args)
        values = []
        for x in v:
            value = _any_value(x)
            if value is None:
                return None
            values.append(value)
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", x) for x in values))
    return None


def _key_values(tag: bytes, attrs: Any, cache: dict | None) -> bytes | None:
    """Repeated KeyValue field ``tag`` of a mapping; None if a value is not covered."""
    out = []
    for k, v in attrs.items():
        # Kept only for str, int and bool values, keyed with their type: equal keys are
        # then equal bytes (1 == 1.0 == True and 0.0 == -0.0, (1,) == (True,) are not).
        t = type(v)
        key: tuple | None
        if cache is not None and (t is str or t is int or t is bool):
            key = (k, t, v)
            got = cache.get(key)
        else:
            key = got = None
        if got is None:
            value = _any_value(v)
            if value is None or type(k) is not str:
                return None
            try:
                kb = k.encode("utf-8")
            except UnicodeEncodeError:
                return None
            got = _ld(tag, _ld(b"\x0a", kb) + _ld(b"\x12", value))
            if key is not None:
                assert cache is not None   # (a key is made only with a cache)
                if len(cache) >= _MAX_CACHED:
                    cache.clear()
                cache[key] = got
        out.append(got)
    return b"".join(out)


def _encode_resource(resource: Any) -> bytes | None:
    attrs = _key_values(b"\x0a", resource.attributes, None)
    return None if attrs is None else _ld(b"\x0a", attrs)


def _encode_scope(scope: Any) -> bytes | None:
    body = b""
    if scope.name:
        body += _ld(b"\x0a", scope.name.encode("utf-8"))
    if scope.version:
        body += _ld(b"\x12", scope.version.encode("utf-8"))
    attributes = getattr(scope, "attributes", None)
    if attributes:
        kv = _key_values(b"\x1a", attributes, None)
        if kv is None:
            return None
        body += kv
    return _ld(b"\x0a", body)


class EncodedSpan:
    """A finished, sampled span already in wire format (``data``: one ScopeSpans.spans
    field), handed to the SDK's BatchSpanProcessor as if it were a ReadableSpan; its
    ``context`` is only what the processor reads. ``readable()`` builds the ReadableSpan
    (same ids, times and attributes) for an exporter that needs one."""

    __slots__ = ("data", "resource", "instrumentation_scope", "_make", "_args")
    context = SimpleNamespace(trace_flags=TraceFlags(TraceFlags.SAMPLED))

    def __init__(self, data: bytes, resource: Any, scope: Any, make: Any, args: tuple) -> None:
        self.data = data
        self.resource = resource
        self.instrumentation_scope = scope
        self._make = make   # make(*args) -> the ReadableSpan
        self._args = args

    def readable(self) -> Any:
        return self._make(*self._args)


def readable_spans(spans: Sequence[Any]) -> list:
    """``spans`` with every EncodedSpan as its ReadableSpan (for the SDK's own export)."""
    return [s.readable() if type(s) is EncodedSpan else s for s in spans]


def attribute_bytes(attrs: Any, cache: dict | None = None) -> bytes | None:
    """Span.attributes fields of a mapping (None if a value is not covered)."""
    return _key_values(b"\x4a", attrs, cache)


def encode_span(trace_id: int, span_id: int, parent: Any, name: bytes, start: int, end: int,
                attributes: bytes, status: bytes) -> bytes:
    """One ScopeSpans.spans field: ``name`` from ``name_bytes``, ``attributes`` from
    ``attribute_bytes``, ``status`` from ``status_bytes``; ``parent`` a SpanContext or None
    (as SpanEncoder writes a ReadableSpan of kind INTERNAL). ``name_bytes``,
    ``status_bytes`` and this raise UnicodeEncodeError for text that is not UTF-8."""
    if parent is None:
        parent_fields, flags = b"", _FLAGS_LOCAL
    else:   # trace state, parent span id
        parent_fields = (_trace_state(parent.trace_state) + b"\x22\x08" +
                         parent.span_id.to_bytes(8, "big"))
        flags = _FLAGS_REMOTE if parent.is_remote else _FLAGS_LOCAL
    body = b"".join((b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08",
                     span_id.to_bytes(8, "big"), parent_fields, name,
                     _TIMES(0x39, start, 0x41, end), attributes, status, flags))
    return b"\x12" + _varint(len(body)) + body


def name_bytes(name: str) -> bytes:
    """A span's name and kind (INTERNAL) fields."""
    return _ld(b"\x2a", name.encode("utf-8")) + b"\x30\x01"


def status_bytes(code: int, description: str | None) -> bytes:
    """A span's status field (code: StatusCode's value)."""
    body = b""
    if description:
        body = _ld(b"\x12", description.encode("utf-8"))
    if code:
        body += b"\x18" + _varint(code)
    return _ld(b"\x7a", body)


def _trace_state(state: Any) -> bytes:
    if not state:
        return b""
    return _ld(b"\x1a", ",".join(f"{k}={v}" for k, v in state.items()).encode("utf-8"))


_FLAGS_LOCAL = b"\x85\x01" + _I(_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _I(_HAS_IS_REMOTE | _IS_REMOTE)


class SpanEncoder:
    """ExportTraceServiceRequest bytes of a batch of ReadableSpans, or None when the batch
    has something this encoder does not cover."""

    def __init__(self) -> None:
        self._attrs: dict = {}
        self._names: dict[str, bytes] = {}
        self._groups: dict[int, tuple] = {}   # id(resource or scope) -> (object, bytes)

    def _by_identity(self, obj: Any, build: Any) -> bytes | None:
        """``build(obj)``, kept per object (resources and scopes are few and immutable)."""
        got = self._groups.get(id(obj))
        if got is None or got[0] is not obj:
            encoded = build(obj)
            if encoded is None:
                return None
            got = self._groups[id(obj)] = (obj, encoded)
        return got[1]

    def _resource(self, resource: Any) -> bytes | None:
        return self._by_identity(resource, _encode_resource)

    def _scope(self, scope: Any) -> bytes | None:
        return b"" if scope is None else self._by_identity(scope, _encode_scope)

    def _span(self, s: Any) -> bytes | None:
        events, links, attributes = _sdk_private.span_internals(s)
        if (events or links or s.dropped_attributes or s.dropped_events or
                s.dropped_links):
            return None
        ctx = s.context
        parent = s.parent
        kind = s.kind.value + 1   # SpanKind.INTERNAL (0) is SPAN_KIND_INTERNAL (1)...
        parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"),
                 b"\x12\x08", ctx.span_id.to_bytes(8, "big"), _trace_state(ctx.trace_state)]
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        name = self._names.get(s.name)
        if name is None:
            if len(self._names) >= _MAX_CACHED:
                self._names.clear()
            name = self._names[s.name] = _ld(b"\x2a", s.name.encode("utf-8"))
        parts += (name, b"\x30", _varint(kind))
        if s.start_time:
            parts += (b"\x39", _Q(s.start_time))
        if s.end_time:
            parts += (b"\x41", _Q(s.end_time))
        if attributes:
            attrs = _key_values(b"\x4a", attributes, self._attrs)
            if attrs is None:
                return None
            parts.append(attrs)
        parts.append(status_bytes(s.status.status_code.value, s.status.description))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote
                     else _FLAGS_LOCAL)
        return _ld(b"\x12", b"".join(parts))   # ScopeSpans.spans

    def encode(self, spans: Sequence[Any]) -> bytes | None:
        # Grouped by resource and scope identity (a Resource's hash is a JSON dump).
        groups: dict[tuple, tuple] = {}
        for s in spans:
            encoded = s.data if type(s) is EncodedSpan else self._span(s)
            if encoded is None:
                return None
            resource, scope = s.resource, s.instrumentation_scope
            key = (id(resource), id(scope))
            got = groups.get(key)
            if got is None:
                groups[key] = (resource, scope, [encoded])
            else:
                got[2].append(encoded)
        by_resource: dict[int, tuple] = {}
        for resource, scope, encoded in groups.values():
            scope_bytes = self._scope(scope)
            if scope_bytes is None:
                return None
            body = scope_bytes + b"".join(encoded)
            schema = getattr(scope, "schema_url", None) if scope is not None else None
            if schema:
                body += _ld(b"\x1a", schema.encode("utf-8"))
            by_resource.setdefault(id(resource), (resource, []))[1].append(_ld(b"\x12", body))
        out = []
        for resource, scope_spans in by_resource.values():
            resource_bytes = self._resource(resource)
            if resource_bytes is None:
                return None
            body = resource_bytes + b"".join(scope_spans)
            if resource.schema_url:
                body += _ld(b"\x1a", resource.schema_url.encode("utf-8"))
            out.append(_ld(b"\x0a", body))
        return b"".join(out)


class FastOTLPSpanExporter(SpanExporter):
    """The SDK's OTLP/HTTP span exporter, its batches encoded by ``SpanEncoder`` and sent
    by its own HTTP client (see the module's doc)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._send = _sdk_private.otlp_http_send(inner)
        self._encoder = SpanEncoder()

    @property
    def sends_encoded(self) -> bool:
        """Can spans come to it encoded (EncodedSpan)? When it sends batches itself and
        ``export`` is this class's, or a subclass's that says it accepts them (a class
        attribute ``accepts_encoded_spans = True``)."""
        cls = type(self)
        return self._send is not None and (cls.export is FastOTLPSpanExporter.export or
                                           getattr(cls, "accepts_encoded_spans", False))

    def export(self, spans: Sequence[Any]) -> Any:
        if self._send is None or _sdk_private.exporter_shut_down(self.inner):
            return self.inner.export(readable_spans(spans))
        try:
            data = self._encoder.encode(spans)
        except Exception:  # noqa: BLE001 - anything unexpected: the SDK's own way
            data = None
        limit = _sdk_private.max_request_size(self.inner)
        if data is None or (limit > 0 and len(data) > limit):
            return self.inner.export(readable_spans(spans))
        result = self._send(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)
