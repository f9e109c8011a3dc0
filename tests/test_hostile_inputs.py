"""The gate cannot be slipped past and no input crashes it (docs/report.md, "Input
validation" and "Exit status").

Every wrong input to ``run``, ``report``, ``merge`` and ``--baseline`` ends with exit 2
and one line on stderr — never a traceback, and for ``run`` before the program starts.
Names and paths a program chooses are shown literally, whatever rich markup or terminal
escape sequences they hold, and nothing in rendering decides the exit status."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import tt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_one_line_usage_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracethread: error: "), proc.stderr


# --- a valid report to mutate ----------------------------------------------------------

INVERSION = """
    import threading
    a = threading.Lock(name="A"); b = threading.Lock(name="B")
    with a, b: pass
    with b, a: pass
"""


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    (d / "prog.py").write_text(textwrap.dedent(INVERSION))
    proc = tt("run", "-q", "--report", str(d / "r.json"), "--sarif", str(d / "s.sarif"),
              "--write-baseline", str(d / "b.json"), str(d / "prog.py"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((d / "r.json").read_text())
    assert report["findings"] and report["locks"] and report["graph"]["edges"]
    return d, report


def mutate(report, path, value):
    """A deep copy of ``report`` with the value at ``path`` (keys/indexes) replaced, or
    deleted when ``value`` is DELETE."""
    r = json.loads(json.dumps(report))
    obj = r
    for key in path[:-1]:
        obj = obj[key]
    if value is DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return r


DELETE = object()

BAD_REPORTS = {
    # not a report at all
    "a list": "[1, 2]",
    "a string": '"report"',
    "null": "null",
    "a number": "42",
    "an empty object": "{}",
    "truncated JSON": '{"version": 1, "findings": [',
    "an empty file": "",
    "100k-deep lists": "[" * 100_000 + "]" * 100_000,
    "100k-deep objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "NaN literal": None,        # filled from the good report below
    "1e400 (infinite)": None,
    # valid JSON, wrong shape
    "findings as a string": ("findings",), "findings of strings": ("findings", 0),
    "finding missing kind": ("findings", 0, "kind"),
    "finding missing fingerprint": ("findings", 0, "fingerprint"),
    "finding missing locks": ("findings", 0, "locks"),
    "finding of unknown kind": ("findings", 0, "kind"),
    "finding message a number": ("findings", 0, "message"),
    "finding count a string": ("findings", 0, "count"),
    "lock name a number": ("findings", 0, "locks", 0, "name"),
    "edge missing to": ("findings", 0, "edges", 0, "to"),
    "frame missing line": ("findings", 0, "edges", 0, "stack", 0, "line"),
    "frame line a string": ("findings", 0, "edges", 0, "stack", 0, "line"),
    "locks missing": ("locks",),
    "lock row missing operations": ("locks", 0, "operations"),
    "lock row negative wait": ("locks", 0, "wait_seconds_total"),
    "lock row threads a float": ("locks", 0, "threads"),
    "graph missing": ("graph",),
    "graph nodes not a list": ("graph", "nodes"),
    "graph edge missing from": ("graph", "edges", 0, "from"),
    "recorder a list": ("recorder",),
    "version 2": ("version",),
    "version a string": ("version",),
    "version true": ("version",),
    "another tool": ("tool",),
    "command not a list": ("command",),
}
MUTATIONS = {
    "findings as a string": "none", "findings of strings": "x",
    "finding missing kind": DELETE, "finding missing fingerprint": DELETE,
    "finding missing locks": DELETE, "finding of unknown kind": "livelock",
    "finding message a number": 7, "finding count a string": "1",
    "lock name a number": 12, "edge missing to": DELETE, "frame missing line": DELETE,
    "frame line a string": "12", "locks missing": DELETE,
    "lock row missing operations": DELETE, "lock row negative wait": -1.0,
    "lock row threads a float": 1.5, "graph missing": DELETE, "graph nodes not a list": {},
    "graph edge missing from": DELETE, "recorder a list": [], "version 2": 2,
    "version a string": "1", "version true": True, "another tool": "other",
    "command not a list": "prog.py",
}


def bad_report_text(name, report):
    spec = BAD_REPORTS[name]
    if name == "NaN literal":
        return json.dumps(mutate(report, ("locks", 0, "wait_seconds_total"), float("nan")))
    if name == "1e400 (infinite)":
        return json.dumps(report).replace('"wait_seconds_max": ', '"wait_seconds_max": 1e400,'
                                          ' "x": ', 1)
    if isinstance(spec, tuple):
        return json.dumps(mutate(report, spec, MUTATIONS[name]))
    return spec


@pytest.mark.parametrize("name", sorted(BAD_REPORTS))
def test_report_command_rejects(name, good, tmp_path):
    _, report = good
    path = tmp_path / "bad.json"
    path.write_text(bad_report_text(name, report))
    proc = tt("report", str(path))
    assert_one_line_usage_error(proc)
    if name == "version 2":
        assert "schema version 2" in proc.stderr and "reads version 1" in proc.stderr


@pytest.mark.parametrize("name", ["a list", "finding missing kind", "graph edge missing from",
                                  "100k-deep lists", "version 2"])
def test_merge_rejects(name, good, tmp_path):
    d, report = good
    path = tmp_path / "bad.json"
    path.write_text(bad_report_text(name, report))
    assert_one_line_usage_error(tt("merge", str(d / "r.json"), str(path)))


@pytest.mark.parametrize("case", ["sarif", "baseline", "missing", "directory", "not utf-8",
                                  "merge -o missing dir", "merge -o a directory"])
def test_report_and_merge_reject_the_wrong_file(case, good, tmp_path):
    d, _ = good
    if case == "sarif":
        proc = tt("report", str(d / "s.sarif"))
        assert "SARIF" in proc.stderr
    elif case == "baseline":
        proc = tt("merge", str(d / "r.json"), str(d / "b.json"))
        assert "baseline" in proc.stderr
    elif case == "missing":
        proc = tt("report", str(tmp_path / "nope.json"))
    elif case == "directory":
        proc = tt("report", str(tmp_path))
    elif case == "not utf-8":
        (tmp_path / "bin.json").write_bytes(b'{"version": 1, "tool": "\xff\xfe"}')
        proc = tt("report", str(tmp_path / "bin.json"))
    elif case == "merge -o missing dir":
        proc = tt("merge", "-o", str(tmp_path / "no" / "m.json"), str(d / "r.json"))
    else:
        proc = tt("merge", "-o", str(tmp_path), str(d / "r.json"))
    assert_one_line_usage_error(proc)


BAD_BASELINES = {
    "a list": "[]",
    "null": "null",
    "no accepted": '{"version": 1}',
    "accepted a string": '{"version": 1, "accepted": "all"}',
    "item missing fingerprint": '{"version": 1, "accepted": [{"reason": "ok"}]}',
    "fingerprint a number": '{"version": 1, "accepted": [{"fingerprint": 7}]}',
    "version 2": '{"version": 2, "accepted": []}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "not JSON": "fingerprint: abc",
}


@pytest.mark.parametrize("name", sorted(BAD_BASELINES) + ["a report", "a SARIF file",
                                                           "missing", "a directory"])
def test_baseline_is_validated_before_the_program_runs(name, good, tmp_path):
    d, _ = good
    marker = tmp_path / "ran"
    prog = tmp_path / "prog.py"
    prog.write_text(f"open({str(marker)!r}, 'w').close()\n")
    path = tmp_path / "baseline.json"
    if name in BAD_BASELINES:
        path.write_text(BAD_BASELINES[name])
    elif name == "a report":
        path = d / "r.json"
    elif name == "a SARIF file":
        path = d / "s.sarif"
    elif name == "a directory":
        path = tmp_path
    else:
        path = tmp_path / "nope.json"
    proc = tt("run", "--baseline", str(path), "--fail-on", "potential", str(prog))
    assert_one_line_usage_error(proc)
    assert not marker.exists(), "the program ran"


RUN_ERRORS = {
    "--prometheus-port 99999": ["--prometheus-port", "99999"],
    "--prometheus-port 0": ["--prometheus-port", "0"],
    "--prometheus-port abc": ["--prometheus-port", "abc"],
    "--report in a missing directory": ["--report", "{tmp}/no/r.json"],
    "--report is a directory": ["--report", "{tmp}"],
    "--sarif in a missing directory": ["--sarif", "{tmp}/no/s.sarif"],
    "--trace-file in a missing directory": ["--trace-file", "{tmp}/no/t.json"],
    "--write-baseline in a missing directory": ["--write-baseline", "{tmp}/no/b.json"],
    "--write-baseline is a directory": ["--write-baseline", "{tmp}"],
    "--hang-timeout -1": ["--hang-timeout", "-1"],
    "--hang-timeout nan": ["--hang-timeout", "nan"],
    "--deadlock-confirm inf": ["--deadlock-confirm", "inf"],
    "--fail-on bogus": ["--fail-on", "bogus"],
    "--on-deadlock bogus": ["--on-deadlock", "bogus"],
    "--identity bogus": ["--identity", "bogus"],
    "--spans bogus": ["--spans", "bogus"],
    "--top abc": ["--top", "abc"],
    "an unknown option": ["--frobnicate"],
}


@pytest.mark.parametrize("name", sorted(RUN_ERRORS) + ["a directory as the script",
                                                        "a missing script"])
def test_run_refuses_before_the_program_starts(name, tmp_path):
    marker = tmp_path / "ran"
    prog = tmp_path / "prog.py"
    prog.write_text(f"open({str(marker)!r}, 'w').close()\n")
    if name == "a directory as the script":
        args = [str(tmp_path)]
    elif name == "a missing script":
        args = [str(tmp_path / "nope.py")]
    else:
        args = [a.replace("{tmp}", str(tmp_path)) for a in RUN_ERRORS[name]] + [str(prog)]
    assert_one_line_usage_error(tt("run", *args))
    assert not marker.exists(), "the program ran"


def test_an_environment_setting_is_checked_too(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text("print('ran')\n")
    proc = tt("run", str(prog), env={"TRACETHREAD_FAIL_ON": "bogus"})
    assert_one_line_usage_error(proc)
    assert proc.stdout == ""


def test_a_syntax_error_in_the_script_is_pythons_own(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text("x = (\n")
    native = subprocess.run([sys.executable, str(prog)], capture_output=True, text=True,
                            timeout=60)
    proc = tt("run", "-q", str(prog))
    assert proc.returncode == native.returncode == 1
    assert "SyntaxError: '(' was never closed" in proc.stderr
    assert "tracethread" not in proc.stderr


# --- names are data, and rendering never decides the exit status -----------------------

HOSTILE_NAMES = """
    import threading
    path = "/srv/data"
    a = threading.Lock(name=f"worker[{path}]")       # '[/' closes a rich tag
    b = threading.Lock(name="[blink red]alarm")      # rich markup
    c = threading.Lock(name="title\\x1b]0;pwned\\x07\\x1b[2J")  # set title, clear screen
    t = threading.Thread(target=lambda: None, name="[/]\\x1b[31m"); t.start(); t.join()
    with a, b: pass
    with b, c: pass
    with c, a: pass
"""


def test_markup_and_escape_sequences_in_names_are_shown_literally(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(HOSTILE_NAMES))
    report = tmp_path / "r.json"
    proc = tt("run", "--fail-on", "potential", "--report", str(report), str(prog))
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for shown in (proc.stderr, tt("report", str(report)).stdout):
        assert "worker[/srv/data]" in shown
        assert "[blink red]alarm" in shown
        assert "title\\x1b]0;pwned\\x07\\x1b[2J" in shown
        assert "\x1b" not in shown and "\x07" not in shown
    again = tt("report", str(report))
    assert again.returncode == 0 and again.stderr == ""


def test_a_report_that_cannot_be_rendered_still_fails_the_gate(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(INVERSION) + textwrap.dedent("""
        from tracethread.exporters.report import console
        def broken(self, console, options):
            raise RuntimeError("renderer broke")
        console.ReportView.__rich_console__ = broken
    """))
    proc = tt("run", "--fail-on", "potential", str(prog))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "tracethread: could not render the report: RuntimeError('renderer broke')" \
        in proc.stderr
    assert "gate failed" in proc.stderr


def test_a_report_that_cannot_be_written_still_fails_the_gate(tmp_path):
    # The directory disappears while the program runs: one line, the verdict stands.
    out = tmp_path / "out"
    out.mkdir()
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(INVERSION) + f"import shutil; shutil.rmtree({str(out)!r})\n")
    proc = tt("run", "-q", "--fail-on", "potential", "--report", str(out / "r.json"),
              "--write-baseline", str(out / "b.json"), str(prog))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sum("could not write" in line for line in proc.stderr.splitlines()) == 2


def test_reports_are_not_written_through_a_planted_symlink(tmp_path):
    # Another user of a shared directory plants a symlink where a predictable temporary
    # name would be (the writer runs in the program's own process: its pid is ours).
    victim = tmp_path / "victim"
    victim.write_text("keep")
    report = tmp_path / "r.json"
    prog = tmp_path / "prog.py"
    prog.write_text(f"import os\nos.symlink({str(victim)!r}, "
                    f"{str(report)!r} + '.tmp' + str(os.getpid()))\n")
    proc = tt("run", "-q", "--report", str(report), str(prog))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep"
    assert json.loads(report.read_text())["tool"] == "tracethread"
    assert not report.is_symlink()


OTHER_PYTHON = next(iter(sorted(
    p for v in ("3.10", "3.13", "3.12")
    for p in glob.glob(f"/root/.pyenv/versions/{v}.*/bin/python")
    if os.path.realpath(p) != os.path.realpath(sys.executable))), None)


@pytest.mark.skipif(OTHER_PYTHON is None, reason="no second Python version on this machine")
def test_subprocesses_inject_only_the_bootstrap_and_only_into_the_same_python(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os, sys\n"
                     "boot = os.environ['PYTHONPATH'].split(os.pathsep)[0]\n"
                     "print(sys.version_info[:2], 'tracethread' in sys.modules, "
                     "sorted(os.listdir(boot)), os.environ['PYTHONPATH'])\n")
    prog = tmp_path / "prog.py"
    prog.write_text(f"""
import subprocess, sys
for python in (sys.executable, {OTHER_PYTHON!r}):
    p = subprocess.run([python, {str(probe)!r}], capture_output=True, text=True)
    print(p.stdout.strip()); print("stderr:", repr(p.stderr))
""")
    proc = tt("run", "-q", "--subprocesses", str(prog), env={"PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    same, same_err, other, other_err = proc.stdout.splitlines()
    assert same.startswith(str(sys.version_info[:2])) and " True " in same
    assert other_err == other_err == "stderr: ''" and same_err == "stderr: ''"
    assert " False " in other            # another interpreter: nothing of ours imported
    boot, *rest = other.rsplit(" ", 1)[1].split(os.pathsep)
    assert rest == [ROOT]                # the program's own PYTHONPATH, after the bootstrap
    assert "['sitecustomize.py']" in other     # the bootstrap directory holds nothing else
    assert not os.path.exists(os.path.dirname(boot)), "the bootstrap was left behind"


def test_sarif_uris_stay_inside_the_source_root(tmp_path):
    from tracethread.exporters.report.sarif import artifact, source_root
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "pkg").mkdir()
    assert source_root(str(root / "pkg")) == str(root)
    inside = artifact(str(root / "pkg" / "my app.py"), str(root))
    assert inside == {"uri": "pkg/my%20app.py", "uriBaseId": "%SRCROOT%"}
    outside = artifact(str(tmp_path / "elsewhere" / "lib.py"), str(root))
    assert outside == {"uri": (tmp_path / "elsewhere" / "lib.py").as_uri()}
    assert ".." not in outside["uri"]


def test_findings_announced_on_stderr_are_escaped_too():
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import tracethread
        tracethread.configure(on_deadlock="raise")
        lock = tracethread.Lock(name="x\\x1b[2Jy")
        def twice():
            lock.acquire()
            try:
                lock.acquire()          # a self-deadlock, announced on stderr
            except tracethread.DeadlockError:
                print("raised")
        t = tracethread.Thread(target=twice, name="t\\x1b]0;t\\x07")
        t.start(); t.join()
    """)], env=dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1"),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "raised\n"
    assert "tracethread: deadlock" in proc.stderr and "x\\x1b[2Jy" in proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
