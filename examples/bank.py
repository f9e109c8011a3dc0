"""A small bank: tellers move money between accounts, an auditor sums balances, and a
refund desk that locks in the opposite order to the tellers.

Plain threading code, nothing tracethread-specific. This run never deadlocks (the refunds
happen after the tellers are done), but a refund racing a transfer could: tracethread
reports the lock-order inversion the first time both orders are seen.

    python -m tracethread run examples/bank.py
"""

import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor

N_ACCOUNTS = 8
N_TRANSFERS = 400


class Account:
    def __init__(self, number: int, balance: int) -> None:
        self.number = number
        self.balance = balance
        self.lock = threading.Lock()


def transfer(src: Account, dst: Account, amount: int) -> bool:
    # Always lock the lower-numbered account first: no lock-order inversion.
    first, second = sorted((src, dst), key=lambda a: a.number)
    with first.lock:
        with second.lock:
            if src.balance < amount:
                return False
            src.balance -= amount
            dst.balance += amount
            return True


def refund(ledger_lock: threading.RLock, account: Account, amount: int,
           ledger: list) -> None:
    # The inversion: the ledger first, then the account -- tellers take the account first
    # and then the ledger.
    with ledger_lock:
        with account.lock:
            account.balance += amount
            ledger.append((-1, account.number, amount))


def main() -> None:
    accounts = [Account(i, 1_000) for i in range(N_ACCOUNTS)]
    ledger_lock = threading.RLock()
    ledger: list[tuple[int, int, int]] = []
    work: queue.Queue = queue.Queue(maxsize=32)
    done = threading.Event()
    rng = random.Random(7)

    def teller() -> None:
        while (job := work.get()) is not None:
            src, dst, amount = job
            if transfer(accounts[src], accounts[dst], amount):
                with accounts[dst].lock:        # account first, then the ledger
                    with ledger_lock:
                        ledger.append(job)
            work.task_done()
        work.task_done()

    def auditor() -> int:
        audits = 0
        while not done.wait(0.005):
            for a in accounts:
                a.lock.acquire()
            try:
                total = sum(a.balance for a in accounts)
            finally:
                for a in reversed(accounts):
                    a.lock.release()
            assert total == N_ACCOUNTS * 1_000, total
            audits += 1
        return audits

    tellers = [threading.Thread(target=teller, name=f"teller-{i}") for i in range(4)]
    for t in tellers:
        t.start()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditor") as pool:
        audits = pool.submit(auditor)
        for _ in range(N_TRANSFERS):
            src, dst = rng.sample(range(N_ACCOUNTS), 2)
            work.put((src, dst, rng.randint(1, 300)))
        for _ in tellers:
            work.put(None)
        work.join()
        done.set()
        n_audits = audits.result()
    for t in tellers:
        t.join()
    refund(ledger_lock, accounts[0], 10, ledger)
    accounts[0].balance -= 10  # the refund was paid out in cash
    total = sum(a.balance for a in accounts)
    print(f"{len(ledger) - 1} transfers booked, {n_audits} audits, total {total}")


if __name__ == "__main__":
    main()
