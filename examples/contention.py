"""A steady, bounded workload that lights up every panel of the Grafana dashboards:
contended locks, timed acquires that time out, a producer/consumer Condition, Events, a
Barrier, and one lock-order inversion.

    python -m tracethread run --prometheus-port 9464 examples/contention.py --seconds 120
    python -m tracethread run --otlp http://127.0.0.1:4318 examples/contention.py

Options: ``--seconds S`` (default 30) of activity; ``--hold-until FILE`` keeps the process
(and its /metrics endpoint) alive after the activity until FILE exists, at most 60 s, so a
scraper sees the final values. Prints "active phase done" when the activity ends.
"""

import argparse
import os
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--hold-until", metavar="FILE")
    opts = ap.parse_args()
    stop = time.monotonic() + opts.seconds

    accounts = threading.Lock()          # contended by three workers
    audit = threading.RLock()
    gate = threading.Lock()              # held by main: timed acquires on it time out
    cond = threading.Condition()
    ready: list = []
    barrier = threading.Barrier(2)
    event = threading.Event()

    x, y = threading.Lock(), threading.Lock()
    with x:
        with y:
            pass
    with y:
        with x:                          # the inversion: a potential-deadlock finding
            pass

    def worker() -> None:
        while time.monotonic() < stop:
            with accounts:
                with audit:
                    time.sleep(0.002)
            time.sleep(0.001)

    def timid() -> None:
        while time.monotonic() < stop:
            if gate.acquire(timeout=0.02):
                gate.release()
            time.sleep(0.01)

    def producer() -> None:
        while time.monotonic() < stop:
            time.sleep(0.01)
            with cond:
                ready.append(1)
                cond.notify()
        with cond:
            ready.append(None)
            cond.notify()

    def consumer() -> None:
        while True:
            with cond:
                while not ready:
                    cond.wait(1)
                if ready.pop(0) is None:
                    return

    def party(delay: float) -> None:
        for _ in range(int(opts.seconds / 0.03)):
            time.sleep(delay)
            barrier.wait(10)

    def setter() -> None:
        while time.monotonic() < stop:
            time.sleep(0.02)
            event.set()
            event.clear()

    def waiter() -> None:
        while time.monotonic() < stop:
            event.wait(0.05)

    gate.acquire()
    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(3)] + [
        threading.Thread(target=f, args=a, name=f.__name__) for f, a in (
            (timid, ()), (producer, ()), (consumer, ()), (party, (0.03,)),
            (party, (0.01,)), (setter, ()), (waiter, ()))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.release()
    print("active phase done", flush=True)
    if opts.hold_until:
        deadline = time.monotonic() + 60
        while not os.path.exists(opts.hold_until) and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
