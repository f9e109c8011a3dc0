"""How many records a tight loop loses: run it under tracethread.

    python3 -m tracethread run -q benchmarks/drops.py
    python3 -m tracethread run -q --prometheus-port 19464 benchmarks/drops.py

A 300k-iteration ``with lock:`` loop and a 100k-item queue pipeline produce records faster
than the drainer (Python, sharing the GIL) can turn them into Records for the sinks; the
excess is dropped and counted, the program never waits. Prints the elapsed time and the
recorder's counters.
"""

import queue
import threading
import time

import tracethread

N_LOCK, N_QUEUE = 300_000, 100_000

lock = threading.Lock()
q: queue.Queue = queue.Queue()
t0 = time.perf_counter()
for _ in range(N_LOCK):
    with lock:
        pass


def produce() -> None:
    for i in range(N_QUEUE):
        q.put(i)
    q.put(None)


producer = threading.Thread(target=produce)
producer.start()
while q.get() is not None:
    pass
producer.join()
elapsed = time.perf_counter() - t0
tracethread.flush()
stats = tracethread.recorder_stats()
total = stats["records"] + stats["dropped"]
print(f"elapsed {elapsed:.2f} s; {stats['records']:,} records delivered, "
      f"{stats['dropped']:,} dropped ({stats['dropped'] / max(total, 1):.0%})")
