"""Public helpers for tests: capture what tracethread records, wait on observable state.

    from tracethread import testing

    with testing.capture() as cap:
        run_my_code()
    assert cap.ops("lock.acquire")
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Iterator

from ._core import api as _api


class MemorySink:
    """Keeps records in memory, the newest ``maxlen`` of them (bounded)."""

    def __init__(self, maxlen: int | None = 1_000_000) -> None:
        self._records: collections.deque[_api.Record] = collections.deque(maxlen=maxlen)

    def handle(self, records: list[_api.Record]) -> None:
        self._records.extend(records)

    @property
    def records(self) -> list[_api.Record]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()


class Capture:
    """What ``capture()`` yields. Reading ``records`` flushes the buffer first, so it shows
    everything recorded up to that moment."""

    def __init__(self, sink: MemorySink) -> None:
        self._sink = sink

    @property
    def records(self) -> list[_api.Record]:
        _api.flush()
        return self._sink.records

    def of(self, primitive: Any) -> list[_api.Record]:
        """Records of one primitive (tracethread object) in order."""
        info = getattr(primitive, "_info", None) or getattr(primitive, "_tt_info", None)
        return [r for r in self.records if r.primitive is info]

    def ops(self, *ops: str) -> list[_api.Record]:
        """Records of the given operations (``"lock.acquire"`` …), in order."""
        return [r for r in self.records if r.op in ops]

    def clear(self) -> None:
        _api.flush()
        self._sink.clear()

    def __iter__(self) -> Iterator[_api.Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


class capture:
    """Context manager: collect every record made while it is open (in any thread)."""

    def __init__(self, maxlen: int | None = 1_000_000) -> None:
        self._sink = MemorySink(maxlen)
        self._capture = Capture(self._sink)

    def __enter__(self) -> Capture:
        _api.add_sink(self._sink)
        return self._capture

    def __exit__(self, *exc: object) -> None:
        _api.remove_sink(self._sink)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
               message: str = "condition") -> None:
    """Poll ``predicate`` until it is true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def waiters(primitive: Any) -> int:
    """How many threads are blocked on a tracethread primitive right now."""
    stats = primitive.statistics()
    for attr in ("waiters", "n_waiting"):
        value = getattr(stats, attr, None)
        if value is not None:
            return int(value)
    raise TypeError(f"{type(primitive).__name__} has no waiter count")


def wait_until_blocked(primitive: Any, n: int = 1, timeout: float = 10.0) -> None:
    """Wait until at least ``n`` threads are blocked on ``primitive`` (observable state,
    not a sleep)."""
    wait_until(lambda: waiters(primitive) >= n, timeout,
               f"{n} thread(s) blocked on {getattr(primitive, 'name', primitive)!r}")
