"""`python -m tracethread run/report`, each in a subprocess with a timeout."""

import json
import os
import textwrap
import time

import pytest
from helpers import tt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture
def script(tmp_path):
    def make(code, name="prog.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(code))
        return str(path)
    return make


INVERSION = os.path.join(EXAMPLES, "inversion.py")


def test_runs_a_script_as_python_would(script, tmp_path):
    path = script("""
        import atexit, sys, threading
        print(sys.argv, sys.path[0] == __import__("os").path.dirname(__file__), __name__)
        atexit.register(lambda: print("atexit ran"))
        def late():
            import time; time.sleep(0.05); print("non-daemon thread finished")
        threading.Thread(target=late).start()
        sys.exit(7)
    """)
    proc = tt("run", "-q", path, "a", "--fail-on", "x")
    assert proc.returncode == 7, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"[{path!r}, 'a', '--fail-on', 'x'] True __main__"
    assert lines[1:] == ["non-daemon thread finished", "atexit ran"]


def test_uncaught_exception_traceback_and_status_pass_through(script):
    path = script("""
        def boom():
            raise ValueError("kaboom")
        boom()
    """)
    proc = tt("run", "-q", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert "tracethread" not in proc.stderr.split("ValueError")[0].replace(path, "")
    assert "ValueError: kaboom" in proc.stderr and "in boom" in proc.stderr
    assert "runpy" not in proc.stderr  # trimmed like `python script.py` shows it


def test_module_mode(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys, threading\nprint('module', sys.argv[1:], "
                                     "threading.Lock.__module__)\n")
    proc = tt("run", "-q", "-m", "mypkg", "x", "-q", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "module ['x', '-q'] tracethread"


def test_runs_pytest_under_tracing(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import threading\ndef test_lock():\n    with threading.Lock(): pass\n")
    proc = tt("run", "-q", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
              cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_report_json_and_sarif(tmp_path):
    rep, sar = tmp_path / "r.json", tmp_path / "r.sarif"
    proc = tt("run", "--report", str(rep), "--sarif", str(sar), INVERSION)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(rep.read_text())
    assert report["version"] == 1 and report["exit_status"] == 0
    assert report["command"] == [INVERSION]
    (f,) = report["findings"]
    assert f["kind"] == "potential-deadlock" and len(f["fingerprint"]) == 16
    assert {lk["site"]["line"] for lk in f["locks"]} == {9, 10}
    assert all(lk["site"]["file"] == "examples/inversion.py" for lk in f["locks"])
    assert {e["thread"] for e in f["edges"]} == {"transfer", "audit"}
    assert all(e["stack"][-1]["file"] == "examples/inversion.py" for e in f["edges"])
    lock_rows = [r for r in report["locks"] if r["kind"] == "Lock"]
    assert {r["acquisitions"] for r in lock_rows} == {2}
    for key in ("contentions", "wait_seconds_total", "wait_seconds_max", "hold_seconds_max"):
        assert key in lock_rows[0]
    assert len(report["graph"]["edges"]) == 2 and len(report["graph"]["nodes"]) == 2
    # SARIF 2.1.0: the structure its schema requires.
    sarif = json.loads(sar.read_text())
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    assert run["tool"]["driver"]["name"] == "tracethread"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    (res,) = run["results"]
    assert res["ruleId"] in rule_ids and res["level"] == "error" and res["message"]["text"]
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "examples/inversion.py"
    assert loc["region"]["startLine"] in (15, 21)
    assert res["partialFingerprints"]["tracethread/v1"] == f["fingerprint"]
    # And as a third party's SARIF 2.1.0 object model reads it (types, enums, required
    # properties of sarifLog/run/tool/result/location).
    sarif_model = pytest.importorskip("sarif_pydantic", reason="test extra missing")
    parsed = sarif_model.Sarif.model_validate(sarif)
    assert parsed.runs[0].results[0].rule_id == res["ruleId"]
    # The saved report renders the same way.
    shown = tt("report", str(rep))
    assert shown.returncode == 0 and "potential-deadlock: lock-order inversion" in shown.stdout


@pytest.mark.parametrize("fail_on,status", [("none", 0), ("potential", 3), ("any", 3),
                                            ("deadlock", 0), ("hang", 0),
                                            ("deadlock,potential", 3)])
def test_fail_on_kinds(fail_on, status):
    proc = tt("run", "-q", "--fail-on", fail_on, INVERSION)
    assert proc.returncode == status, proc.stderr
    assert ("gate failed" in proc.stderr) == (status == 3)


def test_fail_on_from_the_environment():
    proc = tt("run", "-q", INVERSION, env={"TRACETHREAD_FAIL_ON": "potential"})
    assert proc.returncode == 3


def test_a_real_deadlock_ends_the_run_promptly(script, tmp_path):
    path = script("""
        import threading
        a, b = threading.Lock(), threading.Lock()
        both = threading.Barrier(2)
        def one(x, y):
            with x:
                both.wait()
                with y:
                    pass
        ts = [threading.Thread(target=one, args=(a, b)), threading.Thread(target=one, args=(b, a))]
        for t in ts: t.start()
        for t in ts: t.join()
    """)
    rep = tmp_path / "d.json"
    t0 = time.monotonic()
    proc = tt("run", "--fail-on", "deadlock", "--report", str(rep), path, timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert time.monotonic() - t0 < 30
    report = json.loads(rep.read_text())
    assert report["ended_by_tracethread"] and report["findings"][0]["kind"] == "deadlock"
    assert "deadlock between 2 threads" in proc.stderr


def test_a_hang_ends_the_run_under_fail_on_hang(script):
    path = script("""
        import threading, time
        e = threading.Event()
        threading.Thread(target=e.wait, name="waits", daemon=True).start()
        time.sleep(30)    # awake (not all threads are asleep), and nobody sets `e`
    """)
    t0 = time.monotonic()
    proc = tt("run", "--fail-on", "hang", "--hang-timeout", "1", path, timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert time.monotonic() - t0 < 30
    assert "has been waiting on Event" in proc.stderr


def test_baseline_suppresses_accepted_findings(tmp_path):
    base = tmp_path / "baseline.json"
    first = tt("run", "-q", "--write-baseline", str(base), INVERSION)
    assert first.returncode == 0
    accepted = json.loads(base.read_text())["accepted"]
    assert len(accepted) == 1 and accepted[0]["reason"]
    proc = tt("run", "--fail-on", "potential", "--baseline", str(base), INVERSION)
    assert proc.returncode == 0, proc.stderr
    assert "[in baseline]" in " ".join(proc.stderr.split())


@pytest.mark.parametrize("args,needle", [
    (["run", "missing.py"], "can't open file 'missing.py'"),
    (["run", "--fail-on", "sometimes", "x.py"], "unknown --fail-on kind"),
    (["run", "--hang-timeout", "-1", "x.py"], "must be a finite number >= 0"),
    (["run", "--span-min-duration", "inf", "x.py"], "must be a finite number >= 0"),
    (["run", "--bogus", "x.py"], "unrecognized arguments"),
    (["run"], "run needs a script"),
    (["frobnicate"], "unknown command"),
    ([], "a command is needed"),
])
def test_usage_errors_exit_2_with_one_line(args, needle):
    proc = tt(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr


@pytest.mark.parametrize("var,value", [("TRACETHREAD_HANG_TIMEOUT", "soon"),
                                       ("TRACETHREAD_SPAN_MIN_DURATION", "-2")])
def test_a_bad_environment_value_is_blamed_on_the_variable(var, value, script):
    proc = tt("run", "-q", script("print('never runs')"), env={var: value})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"tracethread: error: {var}: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_the_environment_variables():
    proc = tt("run", "--help")
    assert proc.returncode == 0
    for var in ("TRACETHREAD_REPORT", "TRACETHREAD_FAIL_ON", "TRACETHREAD_HANG_TIMEOUT",
                "TRACETHREAD_ON_DEADLOCK", "TRACETHREAD_BASELINE",
                "TRACETHREAD_SPAN_MIN_DURATION"):
        assert var in proc.stdout


def test_merge_finds_a_cycle_that_only_the_combination_has(script, tmp_path):
    path = script("""
        import sys, threading
        accounts = threading.Lock()   # line 3
        audit = threading.Lock()      # line 4
        if sys.argv[1] == "transfer":
            with accounts, audit:
                pass
        else:
            with audit, accounts:
                pass
    """)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for half, out in (("transfer", a), ("audit", b)):
        proc = tt("run", "-q", "--fail-on", "potential", "--report", str(out), path, half)
        assert proc.returncode == 0, proc.stderr  # each half alone is clean
        assert json.loads(out.read_text())["findings"] == []
    merged = tmp_path / "m.json"
    proc = tt("merge", str(a), str(b), "-o", str(merged), "--fail-on", "potential")
    assert proc.returncode == 3, proc.stderr
    (f,) = json.loads(merged.read_text())["findings"]
    assert f["only_when_combined"] and f["kind"] == "potential-deadlock"
    assert {lk["site"]["line"] for lk in f["locks"]} == {3, 4}
    assert "seen only when the runs are combined" in " ".join(proc.stderr.split())


def test_subprocesses_are_traced_and_gate_the_run(script, tmp_path):
    child = script(open(INVERSION).read(), name="child.py")
    parent = script(f"""
        import subprocess, sys
        proc = subprocess.run([sys.executable, {child!r}], capture_output=True, text=True)
        print("child said:", proc.stdout.strip(), proc.returncode)
    """, name="parent.py")
    rep = tmp_path / "r.json"
    plain = tt("run", "-q", "--fail-on", "potential", parent)
    assert plain.returncode == 0  # the child is not traced by default
    proc = tt("run", "-q", "--subprocesses", "--fail-on", "potential", "--report", str(rep),
              parent)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "child said: done (no deadlock this time) 0" in proc.stdout
    report = json.loads(rep.read_text())
    (f,) = report["findings"]
    assert f["kind"] == "potential-deadlock" and f["process"]["command"] == [child]
    assert report["subprocesses"][0]["findings"] == 1


@pytest.mark.parametrize("example,status,needle", [
    ("bank.py", 0, "potential-deadlock: lock-order inversion"),
    ("philosophers.py", 3, "deadlock between 5 threads"),
    ("server.py", 0, "No deadlock findings"),
])
def test_examples_run_under_tracethread(example, status, needle):
    proc = tt("run", os.path.join("examples", example), timeout=120)
    assert proc.returncode == status, proc.stderr[-3000:]
    assert needle in " ".join(proc.stderr.split())
    if example == "server.py":
        assert "served 60 requests" in proc.stdout


def test_runs_without_opentelemetry_unless_export_is_asked_for(script, tmp_path):
    """A broken or missing OpenTelemetry install costs nothing when nothing is exported,
    and is one clear line (exit 2) when export was asked for."""
    broken = tmp_path / "broken"
    (broken / "opentelemetry").mkdir(parents=True)
    (broken / "opentelemetry" / "__init__.py").write_text(
        "raise ImportError('simulated broken opentelemetry')\n")
    path = script("print('ran')")
    env = {"PYTHONPATH": f"{broken}{os.pathsep}{ROOT}"}
    for k in [k for k in os.environ if k.startswith("OTEL_")]:
        env[k] = ""
    proc = tt("run", "-q", path, env=env)
    assert proc.returncode == 0 and proc.stdout == "ran\n", proc.stderr[-2000:]
    proc = tt("run", "-q", "--otlp", "http://127.0.0.1:9", path, env=env)
    assert proc.returncode == 2 and "ran" not in proc.stdout
    assert proc.stderr.splitlines() == [
        "tracethread: error: OpenTelemetry export unavailable: "
        "simulated broken opentelemetry"]


def test_help_lists_every_command_in_plain_text_within_80_columns():
    for args in (["--help"], ["run", "--help"], ["report", "--help"], ["merge", "--help"]):
        proc = tt(*args, env={"COLUMNS": "80"})
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines and max(len(line) for line in lines) <= 80, (args, proc.stdout)
        assert "``" not in proc.stdout and ":func:" not in proc.stdout, args
    top = tt("--help").stdout
    for command in ("run [options] script.py", "report FILE.json", "merge REPORT.json"):
        assert command in top


def test_version():
    import tracethread
    proc = tt("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith(f"tracethread {tracethread.__version__} (Python ")


# Locks made at one long line of a deeply nested path, contended: the table's worst case.
WIDE_NAMES = """
    import threading, time
    class AccountLedgerWithAVeryLongName:
        def __init__(self):
            self.balance_lock_for_the_ledger_with_a_long_name = threading.Lock()
    ledgers = [AccountLedgerWithAVeryLongName() for _ in range(2)]
    def worker(lock):
        for _ in range(3):
            with lock:
                time.sleep(0.01)
    ts = [threading.Thread(target=worker, args=(lg.balance_lock_for_the_ledger_with_a_long_name,))
          for lg in ledgers for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
"""


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_the_contention_table_fits_the_terminal(script, tmp_path, columns):
    # At 80 and 100 columns the name column used to be zero characters wide, and at 120
    # the last two columns were cut off without a word.
    deep = tmp_path / "a_rather_deep" / "package_directory" / "with_modules"
    deep.mkdir(parents=True)
    path = deep / "ledger_module_with_a_long_name.py"
    path.write_text(textwrap.dedent(WIDE_NAMES))
    proc = tt("run", str(path), env={"COLUMNS": str(columns)}, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert max(len(line) for line in lines) <= columns, proc.stderr
    header = next(line for line in lines if line.startswith("primitive"))
    assert header.split() == ["primitive", "kind", "acquired", "contended", "waited",
                              "wait", "max", "hold", "max"]
    rows = [line for line in lines if " Lock " in line]
    assert len(rows) == 1, proc.stderr   # two instances of one line: one row
    code_name = "AccountLedgerWithAVeryLongName.balance_lock_for_the_ledger_with_a_long_name"
    for row in rows:   # the name the code gives it, cut in the middle: both ends kept
        name = row.split(" Lock ")[0].strip()
        assert name.startswith("AccountL") and name.endswith("_name") or \
            name.startswith(code_name), row
        assert "…" in name or name.startswith(code_name + " "), row


def test_wide_shows_every_primitive_and_column(script):
    path = script("""
        import threading
        quiet = threading.Lock()
        with quiet:
            pass
    """)
    narrow = tt("run", path, env={"COLUMNS": "80"}).stderr
    assert "made a thread wait" in narrow and "--wide shows every primitive" in narrow
    wide = tt("run", "--wide", path, env={"COLUMNS": "160"}).stderr
    header = next(line for line in wide.splitlines() if line.startswith("primitive"))
    for column in ("ops", "waits", "timeouts", "threads"):
        assert column in header.split()
    assert any(line.startswith("quiet ") and " Lock " in line for line in wide.splitlines())


def test_a_programs_traceback_hides_tracethreads_own_frames(script):
    # An exception raised inside a traced primitive (BrokenBarrierError from our Barrier)
    # reads as under plain Python: the program's frames and the error, none of ours.
    path = script("""
        import threading
        def meet():
            threading.Barrier(2, timeout=0.05).wait()    # nobody else comes
        meet()
    """)
    proc = tt("run", "-q", path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "threading.BrokenBarrierError"
    assert "tracethread" not in proc.stderr
    assert any("in meet" in line for line in lines)
