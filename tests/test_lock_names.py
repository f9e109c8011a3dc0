"""Locks are named as the code names them (issue 19): ``self.lock = Lock()`` in
``Account.__init__`` reads ``Lock Account.lock (file.py:N)``, the creation site kept beside
it, instances of one line told apart by ``#n``; a line that does not say keeps the site."""

import json
import queue
import re

import tracethread
from tracethread._core import detect

from helpers import run_traced, finish


class Account:
    def __init__(self):
        self.lock = tracethread.Lock()


def _line_of(text):
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def test_an_attribute_of_self_is_named_by_its_class():
    acct = Account()
    line = _line_of("self.lock = tracethread.Lock()")
    assert detect.describe_info(acct.lock._info, instance=False) == \
        f"Lock Account.lock (tests/test_lock_names.py:{line})"


def test_a_plain_assignment_is_named_by_its_variable():
    ledger_lock = tracethread.RLock()
    line = _line_of("ledger_lock = tracethread.RLock()")
    assert detect.describe_info(ledger_lock._info, instance=False) == \
        f"RLock ledger_lock (tests/test_lock_names.py:{line})"


def test_the_stdlibs_queue_reads_as_its_source_does():
    tracethread.install(warn=False)
    try:
        q = queue.Queue()
    finally:
        tracethread.uninstall()
    text = detect.describe_info(q.not_empty._info, instance=False)
    assert text.startswith("Condition Queue.not_empty (") and "queue.py:" in text


def test_a_line_that_does_not_say_keeps_the_site_and_a_given_name_stays():
    a, b = tracethread.Lock(), tracethread.Lock()   # which is which: the line cannot say
    line = _line_of("a, b = tracethread.Lock(), tracethread.Lock()")
    for lock in (a, b):
        assert detect.describe_info(lock._info, instance=False) == \
            f"Lock tests/test_lock_names.py:{line}"
    named = tracethread.Lock(name="db")
    assert detect.describe_info(named._info, instance=False) == "Lock db"
    made = [tracethread.Lock() for _ in range(2)]   # in an expression: no name to read
    assert detect.describe_info(made[0]._info, instance=False).startswith("Lock tests/")


TWO_ACCOUNTS = """
    import threading
    class Account:
        def __init__(self):
            self.lock = threading.Lock()
    a, b = Account(), Account()
    def transfer(src, dst):
        with src.lock:
            with dst.lock:
                pass
    transfer(a, b)
    transfer(b, a)
"""


def test_a_report_names_same_line_instances_as_the_code_does_and_apart(tmp_path):
    # Both locks are made by one line: the inversion used to read
    # "Lock prog.py:5 -> Lock prog.py:5".
    report = tmp_path / "r.json"
    proc = run_traced(["--report", str(report)], TWO_ACCOUNTS, tmp_path)
    out, err = finish(proc, 60)
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    (f,) = data["findings"]
    shown = re.findall(r"Lock Account\.lock \([^)]*prog\.py:5\) #(\d)", f["message"])
    assert len(shown) == 3 and set(shown) == {"1", "2"}, f["message"]   # a -> b -> a
    assert [lk.get("label") for lk in f["locks"]] == ["Account.lock", "Account.lock"]
    assert {lk["instance"] for lk in f["locks"]} == {1, 2}
    assert {n.get("label") for n in data["graph"]["nodes"]} == {"Account.lock"}
    assert re.search(r"Lock Account\.lock \([^)]*prog\.py:5\) #1", err)
    assert re.search(r"Lock Account\.lock \([^)]*prog\.py:5\) #2", err)


def test_a_subclass_names_itself_through_super_init():
    # (with the C extension, Lock() is made in C: a subclass's super().__init__(name=...)
    # still names it, and its own arguments are its own)
    class Named(tracethread.Lock):
        def __init__(self, n):
            super().__init__(name=f"named-{n}")

    lock = Named(7)
    assert lock._info.name == "named-7" and lock._info.kind == "Lock"
    with lock:
        assert lock.locked()
    assert not lock.locked()
    plain = tracethread.Lock(name="given")
    assert plain._info.name == "given"
