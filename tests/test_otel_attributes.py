"""Every attribute the docs (docs/otel.md) and the dashboards name is one tracethread really
exports: real traced programs, a real OTLP receiver, the attributes of every span, span
event and metric data point received, against the names found in the documents."""

import re
from pathlib import Path

import pytest

from helpers import OTLPReceiver, finish, run_traced
from tracethread.exporters.otel import names as N

ROOT = Path(__file__).parent.parent

# Everything that can carry attributes in a default-mode span: contention on a Lock (a
# lock.wait with its holder, a lock.hold with the releasing line), a Condition wait that
# times out, an Event, a Semaphore, a Barrier, a join, and a lock-order inversion (a
# finding: its span, and an event on the thread's run span).
EVERYTHING = """
    import threading
    from tracethread.testing import wait_until_blocked

    lock, a, b = threading.Lock(), threading.Lock(), threading.Lock()
    cond = threading.Condition()
    event = threading.Event()
    sem = threading.Semaphore(0)
    barrier = threading.Barrier(2)

    def waiter():
        with lock:
            pass
        event.wait()
        sem.acquire()
        barrier.wait()
        with a:
            with b:
                pass

    t = threading.Thread(target=waiter, name="the-waiter")
    with lock:
        t.start()
        wait_until_blocked(lock)
    with cond:
        cond.wait(0.01)                     # times out
        cond.notify()                       # woke nobody (a span in --spans all)
    threading.Timer(0.05, event.set).start()
    threading.Timer(0.1, sem.release).start()
    barrier.wait()
    t.join()
    with b:                                 # b then a: the inversion
        with a:
            pass
    print("done")
"""

# More uncontended operations on one thread's run than the run span keeps as events.
MANY_EVENTS = """
    import threading
    lock = threading.Lock()
    def many():
        for _ in range(200):
            with lock:
                pass
    t = threading.Thread(target=many)
    t.start()
    t.join()
    print("done")
"""


def _attributes(rx):
    keys = set()
    for req in rx.traces():
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    keys |= {kv.key for kv in s.attributes}
                    for ev in s.events:
                        keys |= {kv.key for kv in ev.attributes}
    for req in rx.metrics():
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    data = getattr(m, m.WhichOneof("data"))
                    for dp in data.data_points:
                        keys |= {kv.key for kv in dp.attributes}
    return keys


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keys = set()
    for mode, program in (("all", EVERYTHING), ("blocked", EVERYTHING),
                          ("events", MANY_EVENTS)):
        tmp = tmp_path_factory.mktemp(mode)
        with OTLPReceiver() as rx:
            proc = run_traced(["-q", "--otlp", rx.endpoint, "--spans", mode,
                               "--fail-on", "none"], program, tmp)
            out, err = finish(proc, 120)
            assert proc.returncode == 0 and out == "done\n", err
            keys |= _attributes(rx)
    return keys


def _names_in_docs():
    """Attribute names docs/otel.md lists: its span-attribute table and the metrics'
    "Attributes:" line."""
    text = (ROOT / "docs" / "otel.md").read_text()
    table = text.split("## Span attributes", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    metrics = text.split("## Metrics", 1)[1].split("\n\n", 2)[1]
    names |= set(re.findall(r"`([a-z_.]+)`", metrics.split("Histograms", 1)[0]))
    names.discard("other")       # a value, not a name
    names.discard("(threads)")
    return names


def _names_in_dashboards():
    """Span attribute names the dashboards' queries and texts use (TraceQL ``span.x``,
    and tracethread.* / code.* / thread.* names that are not span or metric names)."""
    not_attributes = {v for k, v in vars(N).items() if k.startswith("SPAN_")}
    not_attributes |= {v[0] for v in vars(N).values() if isinstance(v, tuple) and v
                       and isinstance(v[0], str)}
    found = set()
    for path in (ROOT / "dashboards" / "grafana").glob("*.json"):
        text = path.read_text()
        found |= set(re.findall(r"span\.([a-z_]+(?:\.[a-z_]+)+)", text))
        found |= set(re.findall(r"\b((?:tracethread|code|thread)(?:\.[a-z_]+)+)", text))
    return {n for n in found if n not in not_attributes and not n.startswith("tracethread_")}


def test_the_documents_name_attributes_at_all():
    docs, dashboards = _names_in_docs(), _names_in_dashboards()
    assert {"tracethread.holder.thread.name", "code.file.path", "lock.name"} <= docs
    assert {"tracethread.holder.thread.name", "code.line.number"} <= dashboards


@pytest.mark.parametrize("where", ["docs/otel.md", "dashboards"])
def test_every_attribute_named_is_exported(exported, where):
    named = _names_in_docs() if where == "docs/otel.md" else _names_in_dashboards()
    missing = sorted(named - exported)
    assert not missing, f"named in {where} but never exported: {missing}"


def test_every_attribute_constant_is_exported(exported):
    """names.py's attribute constants, the other way round: none is dead."""
    constants = {v for k, v in vars(N).items() if isinstance(v, str) and k.isupper()
                 and not k.startswith("SPAN_") and k not in ("OTHER", "THREADS_METRIC_NAME")}
    assert not sorted(constants - exported)


HOLD_AND_WAIT = """
    import threading
    from tracethread.testing import wait_until_blocked
    lock = threading.Lock()
    def waiter():
        with lock:
            pass
    t = threading.Thread(target=waiter, name="the-waiter")
    lock.acquire()
    t.start()
    wait_until_blocked(lock)
    lock.release()                          # line 12: the contended hold ends here
    t.join()
    print("done")
"""


@pytest.mark.parametrize("impl", ["c", "pure"])
def test_a_wait_names_its_holder_and_a_hold_where_it_ended(tmp_path, impl):
    with OTLPReceiver() as rx:
        proc = run_traced(["-q", "--otlp", rx.endpoint], HOLD_AND_WAIT, tmp_path,
                          env={"TRACETHREAD_PURE_PYTHON": "1" if impl == "pure" else "0"})
        out, err = finish(proc, 90)
        assert proc.returncode == 0 and out == "done\n", err
        spans = [s for req in rx.traces() for rs in req.resource_spans
                 for ss in rs.scope_spans for s in ss.spans]

    def attrs(s):
        return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in s.attributes}

    (wait,) = [attrs(s) for s in spans if s.name == "lock.wait"]
    (hold,) = [attrs(s) for s in spans if s.name == "lock.hold"]
    assert wait[N.HOLDER_THREAD] == "MainThread"
    assert wait[N.THREAD_NAME] == "the-waiter"
    assert hold[N.THREAD_NAME] == "MainThread"
    assert hold[N.CODE_FILE].endswith("prog.py") and hold[N.CODE_LINE] == 12, hold
    assert hold[N.CODE_FUNCTION] == "<module>"
