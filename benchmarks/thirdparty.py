"""Run real third-party threaded test suites natively and under tracethread, and compare.

    python3 benchmarks/thirdparty.py --markdown                    # all suites, all modes
    python3 benchmarks/thirdparty.py --suite readerwriterlock --markdown
    python3 benchmarks/thirdparty.py --suite pykka --modes native,run

For each suite (the table SUITES below; versions are pinned so runs are reproducible) this
downloads the sdist from PyPI (``pip download --no-binary :all: --no-deps``, cached under
the work dir), extracts it, makes a venv with the suite, its test dependencies and *this*
tracethread checkout (editable), and runs the suite's own tests three ways:

* ``native``: ``python -m pytest ARGS``
* ``run``:    ``python -m tracethread run --report R.json -m pytest ARGS`` (the CLI's
  defaults otherwise: ``--on-deadlock exit``, hang timeout 30 s, ``--fail-on none``)
* ``plugin``: ``python -m pytest --tracethread --tracethread-report R.json ARGS``

Every run writes ``--junitxml`` and, through a small pytest plugin this script writes into
the work dir (``tt_outcomes``), one JSON line per test phase as it happens, so outcomes
are known even for a run that tracethread (or the overall timeout) ended part-way; the
test that was running then is recorded. Outcomes are compared per test id against the
native run(s): a test whose native outcome is not "passed" in some native run, or differs
between native runs, is not counted as a tracethread difference. When the first native
run has failures or errors, native is run a second time (``--native-runs`` sets the
minimum) to tell flaky tests from steady ones.

Results: a markdown table on stdout (``--markdown``) or a plain summary, and every detail
(commands, exit statuses, wall times, counts, differing tests, findings, tracethread
tracebacks) in ``WORKDIR/results.json`` (merged with earlier results of other suites).
Networking in these suites is loopback only (127.0.0.1).
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

TRACETHREAD_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = "/tmp/tracethread-corpus"
MODES = ("native", "run", "plugin")

# Arguments every run gets (before the suite's own).  A per-test timeout keeps one hung
# test from eating the whole run; -p no:cacheprovider keeps the extracted sources clean.
COMMON_ARGS = ["-p", "no:cacheprovider", "--timeout", "120", "-rfE"]

# name -> how to get, install and run it.  "pip": the exact sdist; "extras": the suite's
# own extras installed with it; "deps": extra test dependencies (not pinned: resolved at
# venv creation, recorded in results.json via pip freeze); "args": pytest arguments after
# COMMON_ARGS (run in the extracted source dir); "native_runs": minimum native runs;
# "constraints": a pip constraints file inside the sdist; "test_timeout": per-test
# timeout instead of COMMON_ARGS's.
SUITES: dict[str, dict] = {
    "readerwriterlock": {
        "pip": "readerwriterlock==1.0.9",
        "deps": ["pytest", "pytest-timeout"],
        # tests/test_rwlock.py: reader/writer locks built on threading.Lock, hammered by
        # many threads.  Its test_multi_thread runs 30 s per lock type, 6 types: 180 s,
        # so the per-test timeout is raised.  tests/test_rwlock_async.py (the asyncio
        # variant: no threads, another 30 s per type) is left out.
        "args": ["tests/test_rwlock.py"],
        "test_timeout": 400,
    },
    "waitress": {
        "pip": "waitress==3.0.2",
        "deps": ["pytest", "pytest-timeout"],
        # setup.cfg's addopts is "--cov -W always": coverage is dropped (it installs its
        # own trace function and would dominate the timings); "-W always" is kept.
        # tests/test_functional.py starts real servers on 127.0.0.1 in fork()ed children.
        "args": ["-o", "addopts=-W always", "tests"],
    },
    "cheroot": {
        "pip": "cheroot==11.1.2",
        "deps": ["pytest", "pytest-timeout", "pytest-mock", "pytest-rerunfailures",
                 "requests", "requests-unixsocket", "requests_toolbelt", "jaraco.context",
                 "jaraco.text", "portend", "pyopenssl", "pypytools", "trustme"],
        # pytest.ini's addopts: --numprocesses=auto (xdist: tests would run in worker
        # subprocesses, which `tracethread run` does not trace without --subprocesses),
        # --cov, --doctest-modules (collects every module, incl. optional-dependency
        # ones), --showlocals.  Replaced by the in-tree plugin it pre-loads and
        # --strict-markers; pytest.ini's filterwarnings=error and xfail_strict stay.
        # Test dependencies at the versions of cheroot's own CI lock file for this
        # Python (the newest pyOpenSSL deprecates Context.set_passwd_cb, which
        # filterwarnings=error turns into failures of every pyopenssl TLS test).
        "constraints": "dependencies/tox-py311-cp311-linux-x86_64.txt",
        "args": ["-o", "addopts=-p cheroot.test._pytest_plugin --strict-markers",
                 "cheroot/test"],
    },
    "pykka": {
        "pip": "pykka==4.5.0",
        "deps": ["pytest", "pytest-timeout", "pytest-mock"],
        # pyproject's addopts adds coverage; dropped.  Actor threads, futures, registry.
        "args": ["-o", "addopts=", "tests"],
    },
    "fasteners": {
        "pip": "fasteners==0.20",
        "deps": ["pytest", "pytest-timeout", "diskcache", "eventlet", "more_itertools"],
        # The whole suite: thread locks, reader/writer lock, inter-process locks
        # (multiprocessing), and test_eventlet.py (eventlet in a spawned child).
        "args": ["tests"],
    },
    "pebble": {
        "pip": "pebble==5.2.3",
        "deps": ["pytest", "pytest-timeout"],
        # The full suite covers thread pools plus process pools under fork, forkserver
        # and spawn (the latter two take most of the time: every spawned worker imports
        # from scratch).  The thread-based files and the fork-based process files are
        # run: those exercise tracethread's primitives in the pytest process itself
        # (pool managers are threads; fork() children inherit the traced locks).
        # spawn/forkserver children are fresh interpreters that `run` does not trace
        # without --subprocesses, and they roughly triple the native time.
        # --timeout-method thread: pytest-timeout's default (signal) takes SIGALRM, which
        # test_pebble.py's TestSigHandler tests install and raise themselves.
        "args": ["--timeout-method", "thread",
                 "test/test_pebble.py", "test/test_thread_pool.py",
                 "test/test_concurrent_thread.py", "test/test_asynchronous_thread.py",
                 "test/test_process_pool_fork.py", "test/test_concurrent_process_fork.py",
                 "test/test_asynchronous_process_fork.py"],
    },
    "apscheduler": {
        "pip": "apscheduler==3.11.3",
        # pytz pinned: 2026.x dropped _FixedOffset._offset, which apscheduler.util
        # reads (8 trigger tests fail with AttributeError otherwise).
        "deps": ["pytest", "pytest-timeout", "pytz==2025.2", "sqlalchemy", "tornado",
                 "anyio"],
        # The whole suite except the job stores that need external services (MongoDB,
        # Redis, RethinkDB, ZooKeeper, etcd): their client libraries are not installed,
        # and since pytest 9 importorskip's ImportError (raised by apscheduler's job
        # store modules) is an error, not a skip, so they are deselected by id;
        # SQLAlchemy and the memory store run (in-memory SQLite).  gevent, twisted and
        # PySide6 (scheduler flavours, not threads) are not installed: those tests skip.
        "args": ["-k", "not mongodb and not redis and not rethinkdb and not zookeeper "
                       "and not etcd", "tests"],
    },
    "watchdog": {
        "pip": "watchdog==7.1.1",
        "deps": ["pytest", "pytest-timeout", "flaky", "PyYAML"],
        # The whole suite (inotify observers, emitter threads, delayed queues); pyproject
        # addopts "--showlocals -vvv" kept.
        "args": ["tests"],
    },
}

# Written to WORKDIR/_plugin/tt_outcomes.py and loaded with -p tt_outcomes: one JSON line
# per phase report, flushed at once, so a run ended part-way still tells what happened.
OUTCOMES_PLUGIN = r'''
import json, os, time

_path = os.environ.get("TT_OUTCOMES_FILE")
_fh = open(_path, "a", buffering=1) if _path else None


def _write(obj):
    if _fh is not None:
        _fh.write(json.dumps(obj) + "\n")
        _fh.flush()


def pytest_runtest_logstart(nodeid, location):
    _write({"nodeid": nodeid, "event": "start", "t": time.time()})


def pytest_runtest_logreport(report):
    _write({"nodeid": report.nodeid, "event": "report", "when": report.when,
            "outcome": report.outcome, "xfail": hasattr(report, "wasxfail"),
            "duration": report.duration,
            "longrepr": (str(report.longrepr)[-4000:] if report.failed else None)})


def pytest_unconfigure(config):
    if _fh is not None and not _fh.closed:
        _fh.close()


def pytest_collectreport(report):
    if report.failed:
        _write({"nodeid": report.nodeid or "<collection>", "event": "collect-error",
                "longrepr": str(report.longrepr)[-4000:]})
'''


# --------------------------------------------------------------------------- setup

def sh(cmd, log: Path | None = None, **kw):
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    if log is None:
        return subprocess.run(cmd, check=True, **kw)
    with open(log, "ab") as fh:
        r = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, **kw)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}; see {log}")
    return r


def tracethread_state() -> dict:
    """Which tracethread the venvs import: the checkout's commit and whether it's dirty."""
    def git(*a):
        try:
            return subprocess.run(["git", "-C", str(TRACETHREAD_ROOT), *a], text=True,
                                  capture_output=True).stdout.strip()
        except OSError:
            return ""
    import hashlib
    diff = git("diff", "HEAD", "--", "tracethread")
    return {"path": str(TRACETHREAD_ROOT), "commit": git("rev-parse", "HEAD"),
            "dirty_files": git("status", "--short", "--", "tracethread").splitlines(),
            "diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else None}


def prepare(name: str, spec: dict, workdir: Path, log) -> tuple[Path, Path]:
    """Download, extract, make the venv. Returns (source dir, venv python)."""
    sdists = workdir / "_sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    pkg, version = spec["pip"].split("==")
    sdist_re = rf"(?i){re.escape(pkg).replace('-', '[-_]')}-{re.escape(version)}\.(tar\.gz|zip)$"
    found = [p for p in glob.glob(str(sdists / "*")) if re.match(sdist_re, os.path.basename(p))]
    if not found:
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
            "--no-deps", spec["pip"], "-d", str(sdists)])
        found = [p for p in glob.glob(str(sdists / "*"))
                 if os.path.basename(p).lower().startswith(f"{pkg.lower()}-{version}")]
    sdist = Path(found[0])
    suite_dir = workdir / name
    src_parent = suite_dir / "src"
    marker = src_parent / ".extracted"
    if not marker.exists():
        shutil.rmtree(src_parent, ignore_errors=True)
        src_parent.mkdir(parents=True)
        with tarfile.open(sdist) as tf:
            tf.extractall(src_parent, filter="data")
        marker.write_text(sdist.name)
    src = next(p for p in src_parent.iterdir() if p.is_dir())

    venv = suite_dir / "venv"
    py = venv / "bin" / "python"
    vmarker = venv / ".tt-ready"
    want = json.dumps({"pip": spec["pip"], "deps": spec.get("deps", []),
                       "extras": spec.get("extras", ""),
                       "constraints": spec.get("constraints")})
    if not vmarker.exists() or vmarker.read_text() != want:
        shutil.rmtree(venv, ignore_errors=True)
        log = suite_dir / "install.log"
        sh([sys.executable, "-m", "venv", str(venv)], log)
        sh([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
        extras = spec.get("extras", "")
        cons = ["-c", str(src / spec["constraints"])] if spec.get("constraints") else []
        sh([str(py), "-m", "pip", "install", "-q", *cons, f"{src}{extras}",
            *spec.get("deps", [])], log)
        # The checkout this script lives in, editable.  CC=false: the optional C
        # extension is not compiled here, since an editable build copies the .so into the
        # source tree (tracethread/), which another process may have loaded; the
        # checkout's already-built _speedups is imported from the source tree anyway.
        sh([str(py), "-m", "pip", "install", "-q", "-e", str(TRACETHREAD_ROOT)], log,
           env={**os.environ, "CC": "false", "CXX": "false"})
        vmarker.write_text(want)
    return src, py


# --------------------------------------------------------------------------- one run

def build_cmd(mode: str, py: Path, spec: dict, out: Path) -> list[str]:
    common = [a if prev != "--timeout" else str(spec.get("test_timeout", a))
              for prev, a in zip([None, *COMMON_ARGS], COMMON_ARGS)]
    args = [*common, "-p", "tt_outcomes", f"--junitxml={out / 'junit.xml'}",
            *spec["args"]]
    if mode == "native":
        return [str(py), "-m", "pytest", *args]
    if mode == "run":
        return [str(py), "-m", "tracethread", "run", "--report", str(out / "report.json"),
                "-m", "pytest", *args]
    if mode == "plugin":
        return [str(py), "-m", "pytest", "--tracethread", "--tracethread-report",
                str(out / "report.json"), *args]
    raise ValueError(mode)


def run_once(mode: str, py: Path, src: Path, spec: dict, out: Path, workdir: Path,
             timeout: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = build_cmd(mode, py, spec, out)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", "TT_OUTCOMES_FILE": str(out / "outcomes.jsonl"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "_plugin"),
                                                        os.environ.get("PYTHONPATH", "")])),
           "PYTHONDONTWRITEBYTECODE": "1"}
    for k in ("TRACETHREAD_REPORT", "TRACETHREAD_FAIL_ON", "TRACETHREAD_ON_DEADLOCK"):
        env.pop(k, None)
    state_before = tracethread_state()
    print(f"+ (cd {src}) {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    timed_out = False
    with open(out / "stdout.txt", "wb") as so, open(out / "stderr.txt", "wb") as se:
        proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=so, stderr=se,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                rc = proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = proc.wait()
    wall = time.monotonic() - t0
    # Leftover children of the session (servers, pool workers) would skew the next run.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    res = {"mode": mode, "command": cmd, "cwd": str(src), "exit_status": rc,
           "tracethread_diff_sha1": state_before.get("diff_sha1"),
           "timed_out": timed_out, "wall_seconds": round(wall, 2), "out_dir": str(out)}
    res.update(parse_outcomes(out / "outcomes.jsonl"))
    res["junit_counts"] = parse_junit(out / "junit.xml")
    stdout = (out / "stdout.txt").read_text(errors="replace")
    stderr = (out / "stderr.txt").read_text(errors="replace")
    res["summary_line"] = summary_line(stdout)
    res["tracethread_tracebacks"] = tracethread_tracebacks(stderr, "stderr") + \
        tracethread_tracebacks(stdout, "stdout")
    # pytest's own failure reports show frames as "path:line: in func", not as a
    # Python traceback: list the failing tests whose report passes through tracethread.
    res["failures_through_tracethread"] = sorted(
        nid for nid, text in res["failure_text"].items()
        if re.search(r"[/\\]tracethread[/\\]\w", text or ""))
    res["internal_errors"] = [line for line in (stdout + stderr).splitlines()
                              if line.startswith("INTERNALERROR")][:40]
    res["fatal_python_error"] = "Fatal Python error" in stderr
    if mode != "native":
        res["report"] = load_report(out / "report.json")
    return res


def parse_outcomes(path: Path) -> dict:
    tests: dict[str, str] = {}
    started: list[str] = []
    finished: set[str] = set()
    failures: dict[str, str] = {}
    collect_errors = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            nid = ev["nodeid"]
            if ev["event"] == "start":
                started.append(nid)
            elif ev["event"] == "collect-error":
                collect_errors.append({"nodeid": nid, "longrepr": ev["longrepr"]})
            elif ev["event"] == "report":
                when, outcome = ev["when"], ev["outcome"]
                cur = tests.get(nid)
                if ev["xfail"]:
                    new = "xfailed" if outcome == "skipped" else "xpassed"
                elif outcome == "failed":
                    new = "failed" if when == "call" else "error"
                elif outcome == "skipped":
                    new = "skipped"
                else:
                    new = "passed"
                # The worst outcome of the phases wins (an error in teardown after a
                # passing call is an error).
                rank = {"passed": 0, "xpassed": 0, "skipped": 1, "xfailed": 1,
                        "failed": 3, "error": 2}
                if cur is None or rank[new] > rank[cur] or (cur == "error" and new == "failed"):
                    tests[nid] = new
                if outcome == "failed" and ev.get("longrepr"):
                    failures.setdefault(nid, ev["longrepr"])
                if when == "teardown":
                    finished.add(nid)
    unfinished = [n for n in started if n not in finished]
    counts: dict[str, int] = {}
    for o in tests.values():
        counts[o] = counts.get(o, 0) + 1
    return {"outcomes": tests, "counts": counts, "unfinished": unfinished,
            "failure_text": failures, "collect_errors": collect_errors}


def parse_junit(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {"parse_error": True}
    c = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for ts in root.iter("testsuite"):
        for k in c:
            c[k] += int(ts.get(k, 0))
    return c


def summary_line(stdout: str) -> str:
    for line in reversed(stdout.splitlines()):
        if re.match(r"^=+ .*(passed|failed|error|skipped|no tests ran).* =+$", line):
            return line.strip("= ")
    return ""


TB_RE = re.compile(r"^(?:.*?)Traceback \(most recent call last\):\n(?:(?:  .*|\s*)\n)+?[^\s].*$",
                   re.M)


def tracethread_tracebacks(text: str, stream: str) -> list[dict]:
    """Python-format tracebacks that pass through tracethread's own files."""
    found = []
    for m in TB_RE.finditer(text):
        block = m.group(0)
        if re.search(r'File "[^"]*[/\\]tracethread[/\\]', block):
            # A few lines before it say which thread / hook it came from.
            pre = text[max(0, m.start() - 300):m.start()].splitlines()[-3:]
            found.append({"stream": stream, "context": pre, "text": block[-6000:]})
    return found[:30]


def load_report(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        return {"error": f"unreadable report: {e}"}
    findings = []
    for f in data.get("findings", []):
        findings.append({
            "kind": f.get("kind"), "message": f.get("message"), "count": f.get("count"),
            "fingerprint": f.get("fingerprint"), "single_thread": f.get("single_thread"),
            "locks": [f"{lk.get('kind')} {lk.get('name')}" for lk in f.get("locks", [])],
            "tests": sorted({e.get("context") for e in f.get("edges", []) if e.get("context")}),
            "threads": [{"name": t.get("name"), "holds": t.get("holds"),
                         "waits_for": t.get("waits_for"),
                         "stack_tail": [f"{s.get('file')}:{s.get('line')} {s.get('function')}"
                                        for s in (t.get("stack") or [])[-6:]]}
                        for t in f.get("threads", [])],
            "edges": [{"from": e.get("from"), "to": e.get("to"), "thread": e.get("thread"),
                       "context": e.get("context"),
                       "stack_tail": [f"{s.get('file')}:{s.get('line')} {s.get('function')}"
                                      for s in (e.get("stack") or [])[-4:]]}
                      for e in f.get("edges", [])],
        })
    # Findings tracethread took back (e.g. a "lock" released by another thread is a
    # signal, not a mutex): {"reason": ..., "finding": {...}}.
    withdrawn = [{"kind": (w.get("finding") or w).get("kind"),
                  "message": (w.get("finding") or w).get("message"),
                  "reason": w.get("reason")}
                 if isinstance(w, dict) else w for w in data.get("withdrawn") or []]
    return {"exit_status": data.get("exit_status"), "withdrawn": withdrawn,
            "ended_by_tracethread": data.get("ended_by_tracethread"),
            "recorder": data.get("recorder"), "findings": findings}


# --------------------------------------------------------------------------- compare

GOOD = {"passed", "xfailed", "skipped", "xpassed"}


def compare(native_runs: list[dict], other: dict) -> dict:
    """Tests whose outcome under tracethread differs from native (flaky ones apart)."""
    nat_outcomes: dict[str, set] = {}
    for r in native_runs:
        for nid, o in r["outcomes"].items():
            nat_outcomes.setdefault(nid, set()).add(o)
    diffs, flaky_ignored = [], []
    other_out = other["outcomes"]
    for nid in sorted(set(nat_outcomes) | set(other_out)):
        n = nat_outcomes.get(nid, set())
        o = other_out.get(nid)
        if o is None:
            o = "unfinished" if nid in other["unfinished"] else "not run"
        if o in n and len(n) == 1:
            continue
        if len(n) > 1 or (n and not n <= GOOD and o not in GOOD):
            # Native was flaky for it, or it fails natively too.
            if o not in n:
                flaky_ignored.append({"test": nid, "native": sorted(n), "traced": o})
            continue
        diffs.append({"test": nid, "native": "/".join(sorted(n)) or "not run", "traced": o,
                      "failure_text": other.get("failure_text", {}).get(nid)})
    return {"differing": diffs, "native_flaky_or_failing": flaky_ignored}


def run_suite(name: str, spec: dict, workdir: Path, modes: list[str], timeout: float,
              native_runs: int) -> dict:
    src, py = prepare(name, spec, workdir, None)
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True,
                            text=True).stdout.splitlines()
    result = {"suite": name, "pip": spec["pip"], "version": spec["pip"].split("==")[1],
              "args": [*COMMON_ARGS, *spec["args"]], "python": sys.version.split()[0],
              "pip_freeze": freeze, "tracethread": tracethread_state(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "modes": {}}
    natives: list[dict] = []
    if "native" in modes:
        n_min = max(native_runs, spec.get("native_runs", 1))
        i = 0
        while True:
            i += 1
            r = run_once("native", py, src, spec, workdir / name / f"native-{i}", workdir,
                         timeout)
            natives.append(r)
            bad = (r["counts"].get("failed", 0) + r["counts"].get("error", 0)
                   or r["timed_out"] or r["unfinished"])
            if i >= n_min and (i >= 2 or not bad):
                break
        result["modes"]["native"] = natives
        result["native_flaky"] = sorted(
            nid for nid in set().union(*(r["outcomes"] for r in natives))
            if len({r["outcomes"].get(nid, "absent") for r in natives}) > 1)
    for mode in modes:
        if mode == "native":
            continue
        r = run_once(mode, py, src, spec, workdir / name / mode, workdir, timeout)
        if natives:
            r.update(compare(natives, r))
        result["modes"][mode] = r
    return result


# --------------------------------------------------------------------------- output

def fmt_result(r: dict | None) -> str:
    if r is None:
        return "—"
    c = r["counts"]
    parts = [f"{c[k]} {k}" for k in ("passed", "failed", "error", "skipped", "xfailed",
                                      "xpassed") if c.get(k)]
    s = f"exit {r['exit_status']}" + (" TIMEOUT" if r["timed_out"] else "")
    s += ": " + (", ".join(parts) or "no tests")
    if r.get("unfinished"):
        s += f", {len(r['unfinished'])} unfinished"
    if r.get("differing"):
        s += f"; **{len(r['differing'])} differ**"
    if r.get("tracethread_tracebacks"):
        s += f"; {len(r['tracethread_tracebacks'])} tt-traceback"
    return s


def findings_by_kind(r: dict | None) -> str:
    if not r or not r.get("report") or not r["report"].get("findings"):
        return "0" if r and r.get("report") else ("no report" if r else "—")
    k: dict[str, int] = {}
    for f in r["report"]["findings"]:
        k[f["kind"]] = k.get(f["kind"], 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(k.items()))


def markdown(results: dict) -> str:
    lines = ["| suite | version | native | run | plugin | run/native | plugin/native "
             "| findings (run) | findings (plugin) |",
             "|---|---|---|---|---|---:|---:|---|---|"]
    for name, res in results.items():
        m = res["modes"]
        nat = m.get("native") or []
        n0 = nat[0] if nat else None
        nat_s = fmt_result(n0)
        if len(nat) > 1:
            nat_s += f" (×{len(nat)}: " + "; ".join(
                f"exit {r['exit_status']}, {r['counts'].get('failed', 0)}F/"
                f"{r['counts'].get('error', 0)}E" for r in nat[1:]) + ")"
        if res.get("native_flaky"):
            nat_s += f", {len(res['native_flaky'])} flaky natively"
        best_native = min((r["wall_seconds"] for r in nat), default=None)

        def ratio(mode):
            r = m.get(mode)
            if not r or not best_native:
                return "—"
            return f"{r['wall_seconds'] / best_native:.2f}× ({r['wall_seconds']:.0f} s)"
        lines.append(f"| {name} | {res['version']} | {nat_s} | {fmt_result(m.get('run'))} | "
                     f"{fmt_result(m.get('plugin'))} | {ratio('run')} | {ratio('plugin')} | "
                     f"{findings_by_kind(m.get('run'))} | {findings_by_kind(m.get('plugin'))} |")
    return "\n".join(lines)


def plain(results: dict) -> str:
    out = []
    for name, res in results.items():
        out.append(f"== {name} {res['version']}")
        for mode, r in res["modes"].items():
            for rr in (r if isinstance(r, list) else [r]):
                out.append(f"  {mode:7} {fmt_result(rr)}  {rr['wall_seconds']} s")
                for d in rr.get("differing", []):
                    out.append(f"      differs: {d['test']}: native {d['native']}, "
                               f"traced {d['traced']}")
                for f in (rr.get("report") or {}).get("findings") or []:
                    out.append(f"      finding {f['kind']}: {f['message']}")
                    if f["tests"]:
                        out.append(f"        tests: {', '.join(f['tests'])}")
                for tb in rr.get("tracethread_tracebacks", []):
                    out.append(f"      tracethread traceback ({tb['stream']}):")
                    out.extend("        " + line for line in tb["text"].splitlines()[-12:])
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", action="append", choices=sorted(SUITES),
                    help="run only this suite (repeatable); default: all")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of native,run,plugin (default: all)")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR)
    ap.add_argument("--timeout", type=float, default=900,
                    help="overall timeout of one pytest run, seconds (default 900)")
    ap.add_argument("--native-runs", type=int, default=1,
                    help="minimum native runs (a second one is made anyway when the "
                         "first has failures)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--setup-only", action="store_true",
                    help="download, extract and make the venvs, run nothing")
    ap.add_argument("--show", action="store_true",
                    help="print the saved results (all suites) and exit")
    ns = ap.parse_args(argv)
    modes = [m.strip() for m in ns.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    workdir = Path(ns.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "_plugin").mkdir(exist_ok=True)
    (workdir / "_plugin" / "tt_outcomes.py").write_text(OUTCOMES_PLUGIN)
    results_path = workdir / "results.json"

    def load_all():
        try:
            return json.loads(results_path.read_text())
        except (OSError, ValueError):
            return {}

    if ns.show:
        allres = load_all()
        print(markdown(allres) if ns.markdown else plain(allres))
        return 0
    names = ns.suite or list(SUITES)
    if ns.setup_only:
        for name in names:
            prepare(name, SUITES[name], workdir, None)
        return 0
    done = {}
    for name in names:
        res = run_suite(name, SUITES[name], workdir, modes, ns.timeout, ns.native_runs)
        (workdir / name / "result.json").write_text(json.dumps(res, indent=1))
        done[name] = res
        # Merge into the shared results file (suites may run in parallel processes:
        # re-read right before writing).
        with open(workdir / ".results.lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            allres = load_all()
            allres[name] = res
            tmp = results_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(allres, indent=1))
            os.replace(tmp, results_path)
        print(plain({name: res}), file=sys.stderr, flush=True)
    print(markdown(done) if ns.markdown else plain(done))
    print(f"\ndetails: {results_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
