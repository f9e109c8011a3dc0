"""Native threading vs tracethread.install(), side by side in one run.

    python benchmarks/bench.py [--quick] [--repeat N] [--markdown] [--mode MODE]

``--mode`` is how tracethread runs, as users get it: ``install`` (``tracethread.install()``
in a program or test, no sink attached), ``run`` (``tracethread run``: the report's
statistics sink attached; the default) or ``otlp`` (``tracethread run --otlp``: spans and
metrics exported to a receiver in another process; ``--otlp`` is the same).

Each workload builds its primitives through the `threading` module and the stdlib
(`queue`, `concurrent.futures`) *inside* the measured function, so the traced rounds use
tracethread's classes and the native rounds the stdlib's. Native and traced rounds are
interleaved and the best (minimum) time of each side is kept: the machines are shared and
noisy, so ratios from one run are what we publish, never absolute times. Targets are
judged on the best-of ratio; the ratio of the medians is printed beside it, because some
workloads (the queue pipeline) run in two scheduling regimes whose best times differ by
a third, native or traced, and a single lucky native round moves the best-of ratio.
Default settings are measured, as ``python -m tracethread run`` has them: recording on,
deadlock detection on, and the report's statistics sink attached (so the drainer runs and
uncontended Lock/RLock operations are summarized in the core, see docs/records.md); a
second traced column turns detection off to show what the lock-order bookkeeping costs.
``--every-op`` adds a sink that takes every operation as a record instead (what
``testing.capture()``, ``--trace-file`` and ``--spans all`` do).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import queue
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tracethread  # noqa: E402
from tracethread._core import _raw  # noqa: E402
from tracethread._core._accel import speedups  # noqa: E402


# --- workloads: each returns the number of operations it performed ----------------------

def run_threads(threads: list) -> None:
    """Start the threads, then wait for every one."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def uncontended_lock(n: int) -> int:
    lock = threading.Lock()
    for _ in range(n):
        with lock:
            pass
    return n


def nested_rlock_lock(n: int) -> int:
    rlock = threading.RLock()
    lock = threading.Lock()
    for _ in range(n):
        with rlock:
            with lock:
                with rlock:  # re-entry
                    pass
    return n


def contended_lock(threads: int):
    """The workload "contended Lock": ``threads`` threads counting under one lock."""
    def fn(n: int) -> int:
        lock = threading.Lock()
        counter = [0]
        per = max(1, n // threads)

        def work() -> None:
            for _ in range(per):
                with lock:
                    counter[0] += 1

        run_threads([threading.Thread(target=work) for _ in range(threads)])
        assert counter[0] == per * threads
        return per * threads
    return fn


def condition_ping_pong(n: int) -> int:
    cond = threading.Condition()
    state = {"turn": 0}
    rounds = n // 2

    def player(me: int) -> None:
        for _ in range(rounds):
            with cond:
                while state["turn"] != me:
                    cond.wait()
                state["turn"] = 1 - me
                cond.notify()

    run_threads([threading.Thread(target=player, args=(i,)) for i in (0, 1)])
    return rounds * 2


def queue_pipeline(n: int) -> int:
    q: queue.Queue = queue.Queue(maxsize=64)
    out: queue.Queue = queue.Queue()

    def producer() -> None:
        for i in range(n):
            q.put(i)
        q.put(None)

    def consumer() -> None:
        total = 0
        while (item := q.get()) is not None:
            total += item
        out.put(total)

    run_threads([threading.Thread(target=producer), threading.Thread(target=consumer)])
    assert out.get() == n * (n - 1) // 2
    return n


def executor_map(n: int) -> int:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(abs, range(n), chunksize=1))
    assert len(results) == n
    return n


def barrier_rounds(n: int) -> int:
    parties = 4
    rounds = n // parties
    barrier = threading.Barrier(parties)

    def work() -> None:
        for _ in range(rounds):
            barrier.wait()

    run_threads([threading.Thread(target=work) for _ in range(parties)])
    return rounds * parties


def event_semaphore(n: int) -> int:
    sem = threading.BoundedSemaphore(2)
    ev = threading.Event()
    for _ in range(n):
        with sem:
            ev.set()
            ev.wait()
            ev.clear()
    return n


# name, function, operations per measurement (full run), target ratio or None (issue 20:
# the same targets in every mode)
WORKLOADS = [
    ("uncontended `with lock:`", uncontended_lock, 200_000, 1.5),
    ("nested RLock/Lock", nested_rlock_lock, 50_000, 1.5),
    ("contended Lock, 4 threads", contended_lock(4), 40_000, None),
    ("Condition ping-pong", condition_ping_pong, 4_000, None),
    ("queue.Queue pipeline", queue_pipeline, 20_000, 1.15),
    ("ThreadPoolExecutor.map", executor_map, 10_000, 1.15),
    ("Barrier rounds, 4 threads", barrier_rounds, 4_000, None),
    ("Event/Semaphore", event_semaphore, 20_000, None),
]
GEOMEAN_TARGET = 1.2


# --- extras (--extras): construction, the lock-order graph's cost per edge, scaling ------

def make_locks(n: int) -> int:
    for _ in range(n):
        threading.Lock()
    return n


def make_conditions(n: int) -> int:
    for _ in range(n):
        threading.Condition()
    return n


def make_futures(n: int) -> int:
    for _ in range(n):
        concurrent.futures.Future()
    return n


CONSTRUCTION = [("construct a Lock", make_locks, 100_000, 1.5),
                ("construct a Condition", make_conditions, 50_000, 1.5),
                ("construct a Future", make_futures, 50_000, 1.5)]


SCALING = [(f"contended Lock, {k} threads", contended_lock(k), 40_000, None)
           for k in (1, 4, 16, 64)]


def edge_cost(graph_edges: int, sample: int = 1_000) -> float:
    """Seconds per new lock-order edge once the graph holds about ``graph_edges`` edges:
    pairs of new locks, each taken while holding the other of its pair (one new edge a
    pair), the graph grown first and the last ``sample`` pairs timed. Traced, detection on;
    the locks are kept alive so the graph keeps their edges."""
    tracethread.install()
    try:
        keep = []
        for _ in range(max(0, graph_edges - sample)):
            a, b = threading.Lock(), threading.Lock()
            with a:
                with b:
                    pass
            keep.append((a, b))
        pairs = [(threading.Lock(), threading.Lock()) for _ in range(sample)]
        plain = [(threading.Lock(), threading.Lock()) for _ in range(sample)]
        t0 = time.perf_counter()
        for a, b in pairs:          # a new edge each
            with a:
                with b:
                    pass
        t1 = time.perf_counter()
        for a, _ in plain:          # the same locking, no second lock: no edge
            with a:
                pass
            with _:
                pass
        t2 = time.perf_counter()
        keep.append(pairs)
        return ((t1 - t0) - (t2 - t1)) / sample
    finally:
        tracethread.uninstall()
        settle()


def measure(fn, n: int, side: str) -> float:
    """side: "native", "record" (tracing, detection off) or "detect" (the default)."""
    if side != "native":
        tracethread.install(detection=(side == "detect"))
        assert threading.Lock is tracethread.Lock
    else:
        assert threading.Lock is _raw.StdLock
    try:
        t0 = time.perf_counter()
        ops = fn(n)
        return (time.perf_counter() - t0) / ops
    finally:
        if side != "native":
            tracethread.uninstall()
            tracethread.configure(detection=True)
        settle()


def settle() -> None:
    """Between rounds, outside the timing: drain the recorder and, when exporting, export
    what the SDK holds, so no round pays for the records of the one before (the drainer
    and exporter threads otherwise run on into the next round, often a native one)."""
    tracethread.flush()
    if _exporting is not None:
        _exporting.force_flush()


def run(scale: float, repeat: int, time_budget: float, workloads=None):
    rows = []
    for name, fn, n, target in workloads or WORKLOADS:
        n = max(16, int(n * scale))
        times: dict[str, list[float]] = {"native": [], "record": [], "detect": []}
        deadline = time.monotonic() + time_budget
        sides = list(times)
        for i in range(repeat):
            # Interleave, rotating which side goes first, to cancel drift.
            for side in sides[i % 3:] + sides[:i % 3]:
                times[side].append(measure(fn, n, side))
            if time.monotonic() > deadline and i >= 2:
                break
        nat, rec, det = (min(times[k]) for k in sides)
        med = statistics.median(times["detect"]) / statistics.median(times["native"])
        rows.append((name, nat, det, det / nat, target, rec / nat, med))
    return rows


def fmt_time(s: float) -> str:
    return f"{s * 1e9:,.0f} ns" if s < 1e-5 else f"{s * 1e6:,.1f} µs"


def report(rows, markdown: bool, geomean: bool = True) -> bool:
    geo = math.exp(sum(math.log(r[3]) for r in rows) / len(rows))
    ok_all = geo <= GEOMEAN_TARGET or not geomean
    lines = []
    if markdown:
        lines.append("| workload | stdlib per op | tracethread per op | ratio | target "
                     "| ratio, detection off | median ratio |")
        lines.append("|---|---:|---:|---:|---|---:|---:|")
    for name, nat, tra, ratio, target, rec_ratio, med in rows:
        met = "" if target is None else ("met" if ratio <= target else "MISSED")
        if target is not None:
            ok_all &= ratio <= target
        tgt = "" if target is None else f"≤ {target:g}× {met}"
        if markdown:
            lines.append(f"| {name} | {fmt_time(nat)} | {fmt_time(tra)} | "
                         f"{ratio:.2f}× | {tgt} | {rec_ratio:.2f}× | {med:.2f}× |")
        else:
            lines.append(f"{name:30s} {fmt_time(nat):>12s} {fmt_time(tra):>12s} "
                         f"{ratio:6.2f}x  (detection off {rec_ratio:5.2f}x, median "
                         f"{med:5.2f}x)  {tgt}")
    if not geomean:
        print("\n".join(lines))
        return ok_all
    gtxt = f"≤ {GEOMEAN_TARGET:g}× {'met' if geo <= GEOMEAN_TARGET else 'MISSED'}"
    geo_rec = math.exp(sum(math.log(r[5]) for r in rows) / len(rows))
    geo_med = math.exp(sum(math.log(r[6]) for r in rows) / len(rows))
    if markdown:
        lines.append(f"| **geometric mean** | | | **{geo:.2f}×** | {gtxt} | {geo_rec:.2f}× "
                     f"| {geo_med:.2f}× |")
    else:
        lines.append(f"{'geometric mean':30s} {'':>12s} {'':>12s} {geo:6.2f}x  {gtxt}")
    print("\n".join(lines))
    return ok_all


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run (about 20 s)")
    p.add_argument("--repeat", type=int, default=None, help="rounds per side (default 7)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--mode", choices=("install", "run", "otlp"), default="run",
                   help="install: install() alone, no sink; run: the statistics sink "
                        "tracethread run attaches (default); otlp: also export over "
                        "OTLP/HTTP to a receiver in another process")
    p.add_argument("--otlp", action="store_true", help="the same as --mode otlp")
    p.add_argument("--extras", action="store_true",
                   help="also: constructing a Lock/Condition/Future, the cost of a new "
                        "lock-order edge at 1k and 100k edges, contended Lock at 1, 4, 16 "
                        "and 64 threads")
    p.add_argument("--every-op", action="store_true",
                   help="also attach a sink that takes every operation as a record "
                        "(no summaries), as --trace-file or testing.capture() do")
    args = p.parse_args(argv)
    mode = "otlp" if args.otlp else args.mode
    from tracethread.exporters.stats import StatsSink
    if mode != "install":
        tracethread.add_sink(StatsSink())  # what `tracethread run` attaches for its report
    if args.every_op:
        tracethread.add_sink(_EveryOp())
    global _exporting
    exporting = None
    if mode == "otlp":
        exporting = _exporting = start_otlp_export()
    scale = 0.1 if args.quick else 1.0
    repeat = args.repeat or (5 if args.quick else 7)
    budget = 3.0 if args.quick else 20.0
    print(f"mode {mode}, python {sys.version.split()[0]}, tracethread "
          f"{tracethread.__version__}, fast paths: "
          f"{'C' if speedups is not None else 'pure Python'}, "
          f"{os.cpu_count()} CPUs, best of {repeat} interleaved rounds")
    t0 = time.monotonic()
    rows = run(scale, repeat, budget)
    ok = report(rows, args.markdown)
    if args.extras:
        print()
        ok &= report(run(scale, repeat, budget, CONSTRUCTION), args.markdown,
                     geomean=False)
        print()
        report(run(scale, repeat, budget, SCALING), args.markdown, geomean=False)
        print()
        for edges in (1_000, 100_000):
            edges = int(edges * scale)   # (--quick: 100 and 10,000)
            cost = edge_cost(edges)
            print(f"a new lock-order edge with {edges:,} edges in the graph: "
                  f"{cost * 1e6:.1f} µs (target ≤ 5 µs "
                  f"{'met' if cost <= 5e-6 else 'MISSED'})")
    stats = tracethread.recorder_stats()
    print(f"\nrecorder: {stats['records']} records drained, {stats['dropped']} dropped "
          "(the drainer could not keep up; counted, never blocking), "
          f"{stats['sink_errors']} sink errors, {stats['export_dropped']} spans dropped by "
          "the export queue; sinks: "
          + (", ".join(type(s).__name__ for s in tracethread.sinks()) or "none"))
    print(f"total {time.monotonic() - t0:.0f} s; targets {'met' if ok else 'NOT all met'}")
    if exporting is not None:
        exporting.shutdown()
        got = received_requests()
        print(f"OTLP receiver (its own process) got {sum(got.values())} requests: {got}")
    return 0


_receiver: list = []   # the --otlp receiver's URL
_exporting = None   # the OTLP export of --otlp


class _EveryOp:
    """A sink that takes every operation as a record and drops it."""

    def handle(self, records) -> None:
        pass


_RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        received[self.path] = received.get(self.path, 0) + 1
        self.send_response(200)
        self.end_headers()

    def do_GET(self):   # the counts so far, for the benchmark's last line
        body = repr(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_otlp_export():
    """An OTLP/HTTP receiver that accepts and discards, in a process of its own as a
    collector would be (in this process its request handling would be charged to the
    traced rounds), and tracethread exporting to it (spans for blocked operations, all
    metrics)."""
    import atexit
    import subprocess

    from tracethread.exporters import otel

    with tracethread.guarded():
        proc = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE,
                                text=True)
    atexit.register(proc.kill)
    port = int(proc.stdout.readline())
    url = f"http://127.0.0.1:{port}"
    _receiver.append(url)
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    return otel.setup(otlp_endpoint=url)


def received_requests() -> dict:
    """What the receiver got, by path."""
    import ast
    import urllib.request
    with tracethread.guarded(), urllib.request.urlopen(_receiver[0], timeout=10) as r:
        return ast.literal_eval(r.read().decode())


if __name__ == "__main__":
    raise SystemExit(main())
