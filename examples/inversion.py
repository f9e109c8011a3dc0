"""Two code paths that take the same two locks in opposite orders. This run never
deadlocks (the paths run one after the other), but tracethread reports the inversion:

    python -m tracethread run examples/inversion.py
"""

import threading

accounts_lock = threading.Lock()
audit_lock = threading.Lock()


def transfer() -> None:
    with accounts_lock:
        with audit_lock:
            pass


def audit() -> None:
    with audit_lock:
        with accounts_lock:
            pass


if __name__ == "__main__":
    for target in (transfer, audit):
        t = threading.Thread(target=target, name=target.__name__)
        t.start()
        t.join()
    print("done (no deadlock this time)")
