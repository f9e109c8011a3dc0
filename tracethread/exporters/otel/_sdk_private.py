"""Every place tracethread reads or sets a private attribute of the OpenTelemetry SDK, in
one module: each accessor degrades to "not available" (None, False, an empty list) when the
SDK is not shaped as expected, and its caller then takes the SDK's public, slower way.

- Histograms: a summary's histogram (bucket counts, sum, min, max) added to an SDK
  histogram in one step (``supports``, ``merge``; below).
- Span processors: the bounded queues of batch span processors, to count what they drop
  (``batch_queues``); a provider's span processors and span limits (``span_processors``,
  ``span_limits``), for the direct span pipeline (``direct.py``).
- Spans and exporters: a ReadableSpan's events, links and attributes as stored
  (``span_internals``); the OTLP/HTTP exporter's client, shutdown flag and request-size
  limit (``otlp_http_send``, ``exporter_shut_down``, ``max_request_size``), for the wire
  encoding (``wire.py``).
- Resources: the providers' resource replaced in a forked child (``set_tracer_resource``,
  ``set_meter_resource``), which the SDK fixes at construction.

Histograms. The SDK's API takes one value per ``Histogram.record`` call (~6 µs each on the
machines we measure), and summaries (``records.SUMMARY``) stand for thousands of
uncontended holds a second. So the counts are added where the SDK keeps them: the
explicit-bucket aggregation of the instrument's attribute set, under that aggregation's own
lock, exactly as its ``aggregate()`` would have left them. This is checked once per
instrument (``supports``): anything not as expected (another SDK version, a View that
changed the aggregation or its buckets) makes the caller fall back to one ``record`` per
hold instead, which is exact and slow. tests/test_otel.py checks that the installed SDK
takes the fast way and that the exported histograms equal the holds made.

Versions. tracethread requires OpenTelemetry 1.40 or later (pyproject.toml; .ci/run tests
1.40.0). tests/test_sdk_private.py has one canary per accessor, on the SDK's real objects:
each fails when its accessor degrades where it should engage, so an SDK release that renames
one of these attributes fails a test instead of making tracethread silently slower.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Sequence


def _storages(instrument: Any) -> list:
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return list(storages.values()) if isinstance(storages, dict) else []


def _matches(instrument: Any) -> list:
    out = []
    for storage in _storages(instrument):
        out += storage._get_or_init_view_instrument_match(instrument)
    return out


@functools.lru_cache(maxsize=None)   # the SDK does not change in a process
def _key_function() -> Any:
    """The function the SDK keys an attribute set's aggregation by, in a view instrument
    match (None: not known). ``_hash_attributes`` from SDK 1.45.0; before it (1.30 to
    1.44), ``consume_measurement`` keyed by ``frozenset(attributes.items())``, which is
    taken only when its source says so."""
    import inspect

    from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim_mod
    hashed = getattr(vim_mod, "_hash_attributes", None)
    if hashed is not None:
        return hashed
    source = inspect.getsource(vim_mod._ViewInstrumentMatch.consume_measurement)
    if "aggr_key = frozenset(attributes.items())" in source:
        return _frozen_items
    return None


def _frozen_items(attributes: dict) -> frozenset:
    return frozenset(attributes.items())


def _creates_inline(m: Any) -> bool:
    """Can the aggregation of a new attribute set be made for ``m`` as the SDK's
    ``consume_measurement`` makes it before 1.45.2 (no ``_get_or_create_aggregation``)?
    Not where the match has a cardinality limit or drops its aggregations on collect
    (1.45.2's design): there only the SDK's own ``_get_or_create_aggregation`` is exact."""
    import inspect

    if hasattr(m, "_cardinality_limit") or hasattr(m, "_reset_on_collect"):
        return False

    from opentelemetry.sdk.metrics._internal.aggregation import DefaultAggregation
    view = m._view
    aggregation = view._aggregation
    if not isinstance(aggregation, DefaultAggregation):
        factory = aggregation
    else:
        factory = m._instrument_class_aggregation[m._instrument.__class__]
    params = list(inspect.signature(factory._create_aggregation).parameters)
    return (params == ["instrument", "attributes", "reservoir_factory",
                       "start_time_unix_nano"] and
            hasattr(view, "_exemplar_reservoir_factory") and
            isinstance(m._attributes_aggregation, dict))


def _get_or_create(m: Any, key: Any, attributes: dict) -> Any:
    """``m``'s aggregation of ``attributes`` (made if new, as the SDK makes it). Call with
    ``m._lock`` held."""
    create = getattr(m, "_get_or_create_aggregation", None)
    if create is not None:   # 1.45.2 (and its cardinality limit)
        return create(key, attributes)
    agg = m._attributes_aggregation.get(key)   # 1.30 to 1.45.1: consume_measurement's own
    if agg is None:
        from time import time_ns

        from opentelemetry.sdk.metrics._internal.aggregation import DefaultAggregation
        view = m._view
        factory = view._aggregation
        if isinstance(factory, DefaultAggregation):
            factory = m._instrument_class_aggregation[m._instrument.__class__]
        agg = factory._create_aggregation(m._instrument, attributes,
                                          view._exemplar_reservoir_factory, time_ns())
        m._attributes_aggregation[key] = agg
    return agg


def supports(instrument: Any, bounds: Sequence[float]) -> bool:
    """Can summaries with these bucket bounds be merged into ``instrument`` exactly?

    Verified on SDK 1.40.0 to 1.45.2 (tests/test_sdk_private.py; the same code of the SDK
    is in 1.30 to 1.44, keyed by frozenset, and 1.45.0/1.45.1, by ``_hash_attributes``;
    1.45.2 adds ``_get_or_create_aggregation``). False on any other shape."""
    try:
        from opentelemetry.sdk.metrics._internal.aggregation import (
            _ExplicitBucketHistogramAggregation as Explicit,
        )
        matches = _matches(instrument)
        if not matches or _key_function() is None:
            return False
        for m in matches:
            agg = m._aggregation
            if type(agg) is not Explicit or tuple(agg._boundaries) != tuple(bounds):
                return False
            for name in ("_lock", "_view", "_attributes_aggregation"):
                if not hasattr(m, name):
                    return False
            if not hasattr(m, "_get_or_create_aggregation") and not _creates_inline(m):
                return False
            for name in ("_lock", "_value", "_sum", "_min", "_max", "_record_min_max",
                         "_get_empty_bucket_counts"):
                if not hasattr(agg, name):
                    return False
        return True
    except Exception:  # noqa: BLE001 - any surprise means: not supported
        return False


def merge(instrument: Any, attributes: dict, buckets: Sequence[int], total: float,
          low: float, high: float) -> None:
    """Add ``sum(buckets)`` values (``total`` their sum, ``low``/``high`` their extremes)
    to ``instrument``'s aggregation of ``attributes`` in every reader. Call only when
    ``supports`` said yes for this instrument. Verified on SDK 1.40.0 to 1.45.2."""
    key_of = _key_function()
    for m in _matches(instrument):
        attrs = dict(attributes)
        keys = m._view._attribute_keys
        if keys is not None:
            attrs = {k: v for k, v in attrs.items() if k in keys}
        key = key_of(attrs)
        with m._lock:  # as consume_measurement: a collect may not drop it meanwhile
            agg = _get_or_create(m, key, attrs)
            with agg._lock:
                if agg._value is None:
                    agg._value = agg._get_empty_bucket_counts()
                value = agg._value
                for i, n in enumerate(buckets):
                    if n:
                        value[i] += n
                agg._sum += total
                if agg._record_min_max:
                    agg._min = min(agg._min, low)
                    agg._max = max(agg._max, high)


def batch_queues(processors: Any) -> list:
    """The bounded queues of the SDK's batch span processors among ``processors``, to count
    what they drop when full (the SDK only logs it). A processor whose queue is not found
    is not counted. Engages from SDK 1.34 (the shared ``_batch_processor``; verified on
    1.34.1 to 1.45.2, tests/test_sdk_private.py); before 1.34 the queue was
    ``BatchSpanProcessor.queue`` and nothing is counted."""
    out = []
    for p in processors or ():
        q = getattr(getattr(p, "_batch_processor", None), "_queue", None)
        if isinstance(q, collections.deque) and q.maxlen:
            out.append(q)
    return out


def span_processors(provider: Any) -> tuple | None:
    """The span processors of an SDK ``TracerProvider`` now (None: not readable).
    Verified on SDK 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    active = getattr(provider, "_active_span_processor", None)
    current = getattr(active, "_span_processors", None)
    return current if isinstance(current, tuple) else None


def span_limits(provider: Any) -> Any:
    """An SDK ``TracerProvider``'s span limits (None: not found). Verified on SDK 1.30.0
    to 1.45.2 (tests/test_sdk_private.py)."""
    return getattr(provider, "_span_limits", None)


def span_internals(span: Any) -> tuple:
    """A ReadableSpan's (events, links, attributes) as it keeps them (the public
    properties copy them). Verified on SDK 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    return span._events, span._links, span._attributes


def otlp_http_send(exporter: Any) -> Any:
    """``export(bytes)`` of the HTTP client of the SDK's OTLP/HTTP span exporter (None:
    not found). Engages from exporter-otlp-proto-http 1.45.0 (its ``_client``; verified on
    1.45.2, tests/test_sdk_private.py); before it the exporter posts with ``requests``
    itself: None, and the SDK's own export is used (tested on 1.40.0)."""
    return getattr(getattr(exporter, "_client", None), "export", None)


def exporter_shut_down(exporter: Any) -> bool:
    """Has the SDK's OTLP exporter been shut down (True when it cannot be told)?
    Verified on SDK 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    return getattr(exporter, "_shutdown", True)


def max_request_size(exporter: Any) -> int:
    """The SDK's OTLP exporter's request size limit in bytes (0: none known). Engages from
    exporter-otlp-proto-http 1.45.0 (verified on 1.45.2, tests/test_sdk_private.py); 0
    before it, where the exporter has no limit."""
    return getattr(exporter, "_max_request_size", 0) or 0


def set_tracer_resource(provider: Any, resource: Any) -> bool:
    """Replace an SDK ``TracerProvider``'s resource (tracers made before keep the old
    one). False, and nothing done, when it has no such attribute. Verified on SDK 1.30.0
    to 1.45.2 (tests/test_sdk_private.py)."""
    if not hasattr(provider, "_resource"):
        return False
    provider._resource = resource
    return True


def set_meter_resource(provider: Any, resource: Any) -> None:
    """Replace an SDK ``MeterProvider``'s resource, where its configuration is found.
    Verified on SDK 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    config = getattr(provider, "_sdk_config", None)
    if config is not None and hasattr(config, "resource"):
        config.resource = resource


def metric_exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """An SDK ``MetricExporter``'s (preferred temporality, preferred aggregation), as its
    constructor took them (None, None where not found: the SDK's defaults). Verified on
    SDK 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    return (getattr(exporter, "_preferred_temporality", None),
            getattr(exporter, "_preferred_aggregation", None))


def global_meter_provider_set() -> bool:
    """Has a global MeterProvider been set (the metrics API's private record of it; True
    when it cannot be told, so an application's provider is never overridden)? Verified on
    API 1.30.0 to 1.45.2 (tests/test_sdk_private.py)."""
    try:
        from opentelemetry.metrics import _internal
    except ImportError:
        return True
    return getattr(_internal, "_METER_PROVIDER", True) is not None
