"""What the drain costs per record of a Condition ping-pong, with the statistics sink alone
(``stats``, as ``tracethread run``) or with OTLP export too (``otlp``, to a receiver in a
process of its own, as ``bench.py --mode otlp``).

    python3 benchmarks/drain_cost.py stats|otlp [rounds]

The drain is held off while the two threads play (their records wait in the buffer),
then one drain is timed: its time per record, and per round. With ``otlp`` the SDK's
export thread runs during that drain, so the time is the process's, not the drain's
alone. A measurement, never an assertion (README, "Speed")."""

import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench  # noqa: E402
import tracethread  # noqa: E402
from tracethread._core import stream  # noqa: E402
from tracethread.exporters.stats import StatsSink  # noqa: E402


def ping_pong(rounds: int) -> None:
    cond = threading.Condition()
    state = {"turn": 0}

    def player(me: int) -> None:
        for _ in range(rounds // 2):
            with cond:
                while state["turn"] != me:
                    cond.wait()
                state["turn"] = 1 - me
                cond.notify()

    bench.run_threads([threading.Thread(target=player, args=(i,)) for i in (0, 1)])


def main(argv: list) -> int:
    mode = argv[0] if argv else "stats"
    rounds = int(argv[1]) if len(argv) > 1 else 10_000
    if mode not in ("stats", "otlp") or rounds < 2 or rounds > 60_000:
        print(__doc__, file=sys.stderr)
        return 2
    tracethread.add_sink(StatsSink())
    if mode == "otlp":
        bench._exporting = bench.start_otlp_export()
    tracethread.install()
    with stream._drain_lock:   # (the records wait: the buffer holds 65,536)
        ping_pong(rounds)
        n = len(stream.buffer)
        t0 = time.perf_counter()
        stream._drain_locked()
        elapsed = time.perf_counter() - t0
    print(f"{mode}: {n:,} records drained, {elapsed / n * 1e6:.2f} us per record, "
          f"{elapsed / rounds * 1e6:.2f} us per round")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
