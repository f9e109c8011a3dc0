"""Memory the tracer keeps, per workload: RSS growth of a traced run against the same
workload natively, each in a fresh process (as ``tracethread run`` sets it up: install(),
the report's statistics sink, detection on). Not a test: it prints a table.

    python3 benchmarks/memory.py [--scale 1.0] [--markdown]

Workloads: 200k short-lived locks (made, taken once, dropped), 200k short-lived
queue.Queues, 20k short-lived threads, and a lock-order graph of 300k edges (a thread
holding one of 600 locks takes another of them, every pair once) — past the graph's
default cap of 200,000 edges, so the last row shows the cap holding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = {
    "short-lived locks": ("locks", 200_000),
    "short-lived queue.Queues": ("queues", 200_000),
    "short-lived threads": ("threads", 20_000),
    "lock-order graph edges": ("edges", 300_000),
}

CHILD = """
import gc, json, sys, threading, queue
def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
traced = sys.argv[1] == "traced"
what, n = sys.argv[2], int(sys.argv[3])
if traced:
    import tracethread
    from tracethread.exporters.stats import StatsSink
    tracethread.add_sink(StatsSink())
    tracethread.install(warn=False)
    import threading, queue   # the names install() swapped
gc.collect()
before = rss()
if what == "locks":
    for _ in range(n):
        lock = threading.Lock()
        with lock:
            pass
elif what == "queues":
    for _ in range(n):
        q = queue.Queue()
        q.put(1)
        q.get()
elif what == "threads":
    for _ in range(n):
        t = threading.Thread(target=int)
        t.start()
        t.join()
elif what == "edges":
    k = 1
    while k * (k - 1) < n:
        k += 1
    locks = [threading.Lock() for _ in range(k)]
    made = 0
    for a in locks:
        for b in locks:
            if a is not b and made < n:
                with a:
                    with b:
                        pass
                made += 1
if traced:
    tracethread.flush()
gc.collect()
out = {"growth": rss() - before}
if traced and what == "edges":
    from tracethread._core import detect
    out["graph"] = detect.graph.stats()
print(json.dumps(out))
"""


def measure(mode: str, what: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), mode, what, str(n)],
                         env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{what} ({mode}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--only", action="append", default=[], help="a workload key (repeat)")
    opts = p.parse_args()
    rows = []
    for label, (what, n) in WORKLOADS.items():
        if opts.only and what not in opts.only:
            continue
        n = max(1, int(n * opts.scale))
        native = measure("native", what, n)["growth"]
        got = measure("traced", what, n)
        traced = got["growth"]
        name = f"{n:,} {label}"
        if "graph" in got:
            g = got["graph"]
            name += f" ({g['edges']:,} kept, {g['not_kept']:,} not: the cap)" \
                if g["not_kept"] else f" ({g['edges']:,} kept)"
        rows.append((name, native, traced, (traced - native) / n))
    mib = 1024 * 1024
    if opts.markdown:
        print("| workload | native RSS growth | traced RSS growth | kept per item |")
        print("|---|---:|---:|---:|")
        for name, native, traced, per in rows:
            print(f"| {name} | {native / mib:.1f} MiB | {traced / mib:.1f} MiB | "
                  f"{per:.0f} B |")
    else:
        for name, native, traced, per in rows:
            print(f"{name:40} native {native / mib:7.1f} MiB   traced {traced / mib:7.1f} MiB"
                  f"   {per:6.0f} B per item")


if __name__ == "__main__":
    main()
