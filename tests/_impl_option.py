"""``--impl=c|pure``: which implementation of tracethread the whole test session runs on.

Registered by tests/conftest.py (``pytest_plugins``). See the conftest's docstring for how
the choice takes effect; in short:

* tracethread picks its fast paths once, at import (``tracethread._core._accel``: the C
  extension ``tracethread._speedups`` unless ``TRACETHREAD_PURE_PYTHON=1``), and pytest
  imports tracethread before any conftest runs (the installed ``pytest11`` entry point
  ``tracethread.pytest_plugin`` lives in the package). So no in-process hook is early
  enough: when the implementation loaded is not the one asked for, the session re-executes
  itself (``os.execve``, same interpreter, same ``sys.orig_argv``) with
  ``TRACETHREAD_PURE_PYTHON`` set, before anything was configured or collected. If pytest
  was not started from the command line (``pytest.main()`` from other code) that is not
  possible, and the session stops with a usage error saying which variable to set.
* the default is ``c``, unless ``TRACETHREAD_PURE_PYTHON=1`` is already in the environment
  (subprocesses started by the tests with that variable stay pure).
* ``--impl=c`` where the C extension is not built does not pass as "c": the header and the
  summary say so, and tests that only mean something on the C paths skip
  (``request.config.stash[IMPL]``, ``C_MISSING``).

Also here: ``--lock-tests-results=FILE``, a streaming JSON-lines reporter used by
tests/test_conformance.py for the CPython lock_tests subprocess (one line per finished test,
flushed as it finishes, so a run that hangs or crashes still says what it finished).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

ENV = "TRACETHREAD_PURE_PYTHON"
_REEXEC_MARK = "_TRACETHREAD_TESTS_IMPL_REEXEC"

IMPL = pytest.StashKey[str]()          # "c" or "pure": what this session runs on
C_MISSING = pytest.StashKey[str]()     # why --impl=c runs without the C paths ("" if it doesn't)


def _env_pure() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def pytest_addoption(parser):
    group = parser.getgroup("tracethread-tests", "tracethread's own test suite")
    group.addoption(
        "--impl", choices=("c", "pure"), default=None,
        help="implementation the session tests: c (the C fast paths, default) or pure (the "
             "pure-Python paths, TRACETHREAD_PURE_PYTHON=1; the default when that variable "
             "is set). The session re-executes itself if tracethread was already imported "
             "the other way.")
    group.addoption("--lock-tests-results", default=None, metavar="FILE",
                    help="(used by test_conformance.py) write one JSON line per finished test")


def _reexec(config, pure: bool) -> None:
    value = "1" if pure else "0"
    want = "pure" if pure else "c"
    how = f"set {ENV}={value} in the environment of the pytest process"
    if os.environ.get(_REEXEC_MARK):
        raise pytest.UsageError(
            f"--impl={want}: tracethread still loaded the other implementation after "
            f"re-executing with {ENV}={value}")
    orig = getattr(sys, "orig_argv", None)
    if not orig or tuple(sys.argv[1:]) != tuple(config.invocation_params.args) \
            or os.name != "posix":
        raise pytest.UsageError(
            f"--impl={want}: tracethread was imported before the option could take effect "
            f"and this pytest was not started from the command line, so it cannot restart "
            f"itself: {how}")
    env = dict(os.environ)
    env[ENV] = value
    env[_REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *orig[1:]], env)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Before configure/collection: make the loaded implementation the requested one."""
    from tracethread._core._accel import speedups

    impl = config.getoption("impl") or ("pure" if _env_pure() else "c")
    if impl == "pure":
        if speedups is not None:
            _reexec(config, pure=True)
        os.environ[ENV] = "1"    # what subprocesses and env-reading tests see
        missing = ""
    else:
        if _env_pure():
            _reexec(config, pure=False)
        missing = ""
        if speedups is None:
            try:
                import tracethread._speedups  # noqa: F401
                missing = "tracethread._speedups imports now but did not at startup"
            except ImportError as e:
                missing = f"the C extension is not built here ({e})"
    os.environ.pop(_REEXEC_MARK, None)
    config.stash[IMPL] = impl
    config.stash[C_MISSING] = missing
    if config.getoption("lock_tests_results"):
        config.pluginmanager.register(
            _ResultsWriter(config.getoption("lock_tests_results")), "lock-tests-results")


def _describe(config) -> str:
    impl = config.stash.get(IMPL, None)
    if impl is None:
        return ""
    if impl == "pure":
        return "tracethread --impl=pure: the pure-Python paths (TRACETHREAD_PURE_PYTHON=1)"
    if config.stash[C_MISSING]:
        return (f"tracethread --impl=c: NOT the C paths: {config.stash[C_MISSING]}; "
                f"C-only tests skip, the rest run on the pure-Python paths")
    from tracethread._core._accel import speedups
    return f"tracethread --impl=c: the C fast paths ({os.path.basename(speedups.__file__)})"


def pytest_report_header(config):
    return _describe(config) or None


def pytest_terminal_summary(terminalreporter, config):
    line = _describe(config)
    if line:
        terminalreporter.write_line(line, yellow=bool(config.stash.get(C_MISSING, "")),
                                    bold=bool(config.stash.get(C_MISSING, "")))


class _ResultsWriter:
    """One JSON object per line: {"collected": [...]}, then per test {"start": id} and
    {"id", "outcome", "text"}, and {"exitstatus"} at the end. Flushed line by line."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "w", encoding="utf-8")
        self._reports: dict[str, list] = {}

    def _write(self, obj) -> None:
        self._f.write(json.dumps(obj) + "\n")
        self._f.flush()

    def pytest_collection_finish(self, session):
        self._write({"collected": [item.nodeid for item in session.items]})

    def pytest_runtest_logstart(self, nodeid, location):
        self._write({"start": nodeid})

    def pytest_runtest_logreport(self, report):
        self._reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid, location):
        outcome, texts = "passed", []
        for rep in self._reports.pop(nodeid, []):
            if rep.failed:
                outcome = "failed" if rep.when == "call" else "error"
                texts.append(rep.longreprtext if rep.when == "call"
                             else f"[{rep.when}] {rep.longreprtext}")
            elif rep.skipped and outcome == "passed":
                outcome = "skipped"
                longrepr = rep.longrepr
                texts.append(longrepr[2] if isinstance(longrepr, tuple) else str(longrepr))
        self._write({"id": nodeid, "outcome": outcome, "text": "\n".join(texts)})

    def pytest_sessionfinish(self, session, exitstatus):
        self._write({"exitstatus": int(exitstatus)})
        self._f.close()
