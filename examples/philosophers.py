"""Dining philosophers that really deadlock: each takes the left fork, waits until all
have one, then reaches for the right fork, held by the neighbour.

Run it under tracethread: the deadlock is reported the moment the last philosopher
blocks, with every thread, what it holds and waits for, and the run ends (status 3):

    python -m tracethread run examples/philosophers.py

(Plain `python examples/philosophers.py` hangs forever: Ctrl-C.)
"""

import threading

N = 5
forks = [threading.Lock() for _ in range(N)]
everyone_has_a_fork = threading.Barrier(N)


def philosopher(i: int) -> None:
    left, right = forks[i], forks[(i + 1) % N]
    with left:
        everyone_has_a_fork.wait()
        with right:
            print(f"philosopher {i} eats")


if __name__ == "__main__":
    threads = [threading.Thread(target=philosopher, args=(i,), name=f"philosopher-{i}")
               for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
