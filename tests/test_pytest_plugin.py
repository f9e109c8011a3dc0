"""The pytest plugin, in real pytest sessions (pytester, in a subprocess)."""

import json

INVERTED = """
    import threading
    accounts = threading.Lock()
    audit = threading.Lock()

    def test_transfer():
        with accounts:
            with audit:
                pass

    def test_audit():
        with audit:
            with accounts:
                pass
"""

CLEAN = """
    import threading, queue
    from concurrent.futures import ThreadPoolExecutor
    a, b = threading.Lock(), threading.Lock()

    def test_ordered():
        for _ in range(3):
            with a, b:
                pass

    def test_stdlib():
        q = queue.Queue()
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(q.put, range(20)))
        assert q.qsize() == 20
"""


def test_an_inversion_across_two_tests_fails_the_session(pytester):
    pytester.makepyfile(test_bank=INVERTED)
    result = pytester.runpytest_subprocess("--tracethread", "-p", "no:cacheprovider",
                                           timeout=120)
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    out = result.stdout.str()
    assert "potential-deadlock: lock-order inversion" in out
    assert "in test_bank.py::test_transfer" in out and "in test_bank.py::test_audit" in out
    assert "1 finding(s) fail the session" in out


def test_off_unless_asked_for(pytester):
    pytester.makepyfile(test_bank=INVERTED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    out = result.stdout.str()
    assert "potential-deadlock" not in out and "= tracethread =" not in out


def test_ini_option_and_fail_on_none(pytester):
    pytester.makepyfile(test_bank=INVERTED)
    pytester.makeini("[pytest]\ntracethread = true\ntracethread_fail_on = none\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == 0
    assert "potential-deadlock" in result.stdout.str()


def test_a_clean_session_passes_and_writes_reports(pytester):
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest_subprocess(
        "--tracethread", "--tracethread-report", "r.json", "--tracethread-sarif", "r.sarif",
        "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert "no lock-order cycles, deadlocks or hangs" in result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["findings"] == [] and report["locks"]
    edges = report["graph"]["edges"]
    # Each edge is attributed to the test that first took it.
    by_test = {e["from"]: e["context"] for e in edges}
    # a and b are made on one line (one name): told apart by their instance numbers.
    assert by_test["Lock test_clean.py:3 #1"] == "test_clean.py::test_ordered"
    assert {ctx for src, ctx in by_test.items() if "concurrent/futures/" in src} == {
        "test_clean.py::test_stdlib"}
    assert json.loads((pytester.path / "r.sarif").read_text())["runs"][0]["results"] == []


def test_a_real_deadlock_in_a_test_fails_that_test_instead_of_hanging(pytester):
    pytester.makepyfile(test_dead="""
        import threading
        def test_philosophers():
            a, b = threading.Lock(), threading.Lock()
            both = threading.Barrier(2)
            errors = []
            def one(x, y):
                with x:
                    both.wait()
                    try:
                        with y:
                            pass
                    except RuntimeError as e:
                        errors.append(type(e).__name__)
            ts = [threading.Thread(target=one, args=(a, b)),
                  threading.Thread(target=one, args=(b, a))]
            for t in ts: t.start()
            for t in ts: t.join(30)
            assert errors == []
    """)
    result = pytester.runpytest_subprocess("--tracethread", "-p", "no:cacheprovider",
                                           timeout=120)
    result.assert_outcomes(failed=1)
    assert "DeadlockError" in result.stdout.str()
