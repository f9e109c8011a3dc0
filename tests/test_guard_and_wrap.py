"""The tracer never traces itself; wrap() traces locks that already exist."""

import _thread
import logging
import threading

import pytest

import tracethread
from tracethread import testing


class OTelSink:
    """A sink doing what the OpenTelemetry exporter will: spans through the real SDK,
    whose span processors and exporters take threading locks."""

    def __init__(self):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        with tracethread.guarded():
            self.exporter = InMemorySpanExporter()
            self.provider = TracerProvider()
            self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")
        self.batches = 0

    def handle(self, records):
        self.batches += 1
        for r in records:
            with self.tracer.start_as_current_span(r.op):
                threading.Lock()  # a lock made inside a sink: must be a raw one
                with threading.Lock():
                    pass


def test_sink_using_the_otel_sdk_under_install_is_not_recorded():
    with tracethread.installed():
        sink = OTelSink()
        with testing.capture() as cap:
            tracethread.add_sink(sink)
            try:
                lock = threading.Lock()
                for _ in range(20):
                    with lock:
                        pass
                tracethread.flush()
                tracethread.flush()  # a second drain finds nothing the sink made
            finally:
                tracethread.remove_sink(sink)
        records = cap.records
    assert len(records) == 40
    assert {r.primitive.name for r in records} == {lock.name}
    spans = sink.exporter.get_finished_spans()
    assert len(spans) == 40
    assert sink.batches >= 1


def test_constructors_under_guard_return_stdlib_objects():
    with tracethread.guarded():
        assert type(tracethread.Lock()) is _thread.LockType
        assert type(tracethread.RLock()) is type(threading.RLock())
        assert type(tracethread.Event()) is threading.Event
        assert type(tracethread.Condition()) is threading.Condition
        assert type(tracethread.Semaphore(2)) is threading.Semaphore
        assert type(tracethread.BoundedSemaphore(2)) is threading.BoundedSemaphore
        assert type(tracethread.Barrier(2)) is threading.Barrier
        t = tracethread.Thread(target=lambda: None)
        assert type(t) is threading.Thread
    assert type(tracethread.Lock()) is tracethread.Lock


def test_guard_is_per_thread_and_reentrant():
    lock = tracethread.Lock()
    seen = []

    def other():
        with lock:
            pass
        seen.append(True)

    t = tracethread.Thread(target=other)  # made by the program: its thread is traced
    with testing.capture() as cap:
        with tracethread.guarded():
            with tracethread.guarded():
                with lock:
                    pass
            with lock:  # still guarded: the outer block is open
                pass
            t.start()
            t.join(10)
    assert seen == [True]
    # The other thread's operations are recorded, none of main's guarded ones.
    assert {r.thread.name for r in cap.records if r.primitive is lock._info} == {t.name}


def test_threads_the_tracer_itself_creates_are_never_traced():
    lock = tracethread.Lock()
    with tracethread.guarded():
        t = tracethread.Thread(target=lambda: lock.acquire() and lock.release())
    assert type(t) is threading.Thread
    with testing.capture() as cap:
        t.start()
        t.join(10)
    assert [r for r in cap.records if r.primitive is lock._info] == []


def test_wrap_traces_an_existing_rlock_in_place():
    original = logging._lock
    proxy = tracethread.wrap(original, name="logging._lock")
    assert isinstance(proxy, type(original))
    with testing.capture() as cap:
        logging._lock = proxy
        try:
            logging.getLogger("tracethread.test.wrap").setLevel(logging.INFO)
        finally:
            logging._lock = original
    ops = [(r.op, r.primitive.name) for r in cap.records]
    assert ("rlock.acquire", "logging._lock") in ops
    assert ("rlock.release", "logging._lock") in ops
    assert not original._is_owned()


def test_wrap_shares_state_with_the_original_lock():
    raw = threading.Lock()
    proxy = tracethread.wrap(raw)
    with testing.capture() as cap:
        with proxy:
            assert raw.locked()
            assert proxy.acquire(False) is False
        assert not raw.locked()
        with pytest.raises(ValueError):
            proxy.acquire(False, 1)
    ops = [(r.op, r.ok) for r in cap.records]
    assert ops == [("lock.acquire", True), ("lock.acquire", False), ("lock.release", True)]
    assert cap.records[-1].held_ns >= 0


def test_wrap_reentrant_rlock_frees_only_at_the_outermost_release():
    proxy = tracethread.wrap(threading.RLock(), name="r")
    with testing.capture() as cap:
        with proxy:
            with proxy:
                pass
    acquires = [r for r in cap.records if r.op == "rlock.acquire"]
    releases = [r for r in cap.records if r.op == "rlock.release"]
    assert [bool(r.details.get("reentrant")) for r in acquires] == [False, True]
    assert [r.held_ns is not None for r in releases] == [False, True]


def test_wrap_rejects_what_it_cannot_trace_with_a_suggestion():
    with pytest.raises(TypeError, match="construct a tracethread.Event instead"):
        tracethread.wrap(threading.Event())


def test_thread_statistics_show_what_it_waits_for():
    gate = tracethread.Event(name="gate")
    t = tracethread.Thread(target=gate.wait, name="waiter")
    t.start()
    try:
        testing.wait_until_blocked(gate, 1)
        stats = t.statistics()
        assert stats.alive and stats.name == "waiter" and stats.waiting_on == "gate"
    finally:
        gate.set()
        t.join(10)
    assert not t.statistics().alive
