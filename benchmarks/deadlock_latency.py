"""How long a deadlock takes to be reported: from the acquire that closes an AB/BA cycle to
the DeadlockError it raises (policy "raise"), for cycles that are certain at once and for
cycles that must be confirmed first (docs/detection.md, "Certainty").

    python3 benchmarks/deadlock_latency.py [--runs N]
"""

import argparse
import statistics
import threading
import time

import tracethread

CASES = [  # (label, lock type, a third thread keeps running, deadlock_confirm)
    ("AB/BA on two Locks, the other threads blocked", "Lock", False, 0.5),
    ("AB/BA on two RLocks, a third thread running", "RLock", True, 0.5),
    ("AB/BA on two Locks, a third thread running", "Lock", True, 0.5),
    ("the same, deadlock_confirm=0.2", "Lock", True, 0.2),
]


def ab_ba(kind: str, busy: bool, confirm: float) -> float:
    """Seconds from the closing acquire to its DeadlockError."""
    tracethread.configure(deadlock_confirm=confirm)
    a, b = getattr(tracethread, kind)(), getattr(tracethread, kind)()
    both = threading.Barrier(2)
    latency = []

    def one(mine: object, other: object, closer: bool) -> None:
        with mine:
            both.wait()
            if closer:   # close the cycle only once the other thread waits on `mine`
                while not mine.statistics().waiting:
                    time.sleep(0.0005)
            t0 = time.perf_counter()
            try:
                with other:
                    pass
            except tracethread.DeadlockError:
                latency.append(time.perf_counter() - t0)

    stop = threading.Event()
    ticker = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.wait(0.005),
                                                                 True)])
    if busy:
        ticker.start()
    ts = [threading.Thread(target=one, args=(a, b, False)),
          threading.Thread(target=one, args=(b, a, True))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    if busy:
        ticker.join()
    (seconds,) = latency
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    tracethread.install(on_deadlock="raise", warn=False)
    for label, kind, busy, confirm in CASES:
        xs = [ab_ba(kind, busy, confirm) for _ in range(runs)]
        print(f"{label}: median {statistics.median(xs) * 1000:.2f} ms, "
              f"max {max(xs) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
