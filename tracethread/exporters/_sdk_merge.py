"""Adding a summary's histogram (bucket counts, sum, min, max) to an OpenTelemetry SDK
histogram in one step.

The SDK's API takes one value per ``Histogram.record`` call (~6 µs each on the machines we
measure), and summaries (``records.SUMMARY``) stand for thousands of uncontended holds a
second. So the counts are added where the SDK keeps them: the explicit-bucket aggregation of
the instrument's attribute set, under that aggregation's own lock, exactly as its
``aggregate()`` would have left them. This touches private SDK structures, so it is checked
once per instrument (``supports``): anything not as expected (another SDK version, a View
that changed the aggregation or its buckets) makes the caller fall back to one ``record``
per hold instead, which is exact and slow. tests/test_otel.py checks that the installed SDK
takes the fast way and that the exported histograms equal the holds made.
"""

from __future__ import annotations

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


def supports(instrument: Any, bounds: Sequence[float]) -> bool:
    """Can summaries with these bucket bounds be merged into ``instrument`` exactly?"""
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim_mod
        from opentelemetry.sdk.metrics._internal.aggregation import (
            _ExplicitBucketHistogramAggregation as Explicit,
        )
        matches = _matches(instrument)
        if not matches or not hasattr(vim_mod, "_hash_attributes"):
            return False
        for m in matches:
            agg = m._aggregation
            if type(agg) is not Explicit or tuple(agg._boundaries) != tuple(bounds):
                return False
            for name in ("_lock", "_view", "_attributes_aggregation",
                         "_get_or_create_aggregation", "_reset_on_collect"):
                if not hasattr(m, name):
                    return False
            for name in ("_lock", "_value", "_sum", "_min", "_max", "_record_min_max"):
                if not hasattr(agg, name):
                    return False
        return True
    except Exception:  # noqa: BLE001 - any surprise means: not supported
        return False


def merge(instrument: Any, attributes: dict, buckets: Sequence[int], total: float,
          low: float, high: float) -> None:
    """Add ``sum(buckets)`` values (``total`` their sum, ``low``/``high`` their extremes)
    to ``instrument``'s aggregation of ``attributes`` in every reader. Call only when
    ``supports`` said yes for this instrument."""
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    for m in _matches(instrument):
        attrs = dict(attributes)
        keys = m._view._attribute_keys
        if keys is not None:
            attrs = {k: v for k, v in attrs.items() if k in keys}
        key = _hash_attributes(attrs)
        with m._lock:  # as consume_measurement: a collect may not drop it meanwhile
            agg = m._get_or_create_aggregation(key, attrs)
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
