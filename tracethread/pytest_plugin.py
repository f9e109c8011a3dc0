"""The CI deadlock gate inside pytest: ``pytest --tracethread``.

Off unless asked for (``--tracethread`` or ``tracethread = true`` in the ini file). Then
tracing is installed before collection, each new lock-order edge is attributed to the
test that first took it, findings are listed in the terminal summary with the tests
involved, JSON/SARIF reports are written on request, and the session fails when a
finding of a ``--tracethread-fail-on`` kind exists (default: potential, deadlock, hang).
"""

from __future__ import annotations

from typing import Any

import pytest

_KIND_WORDS = {"potential": {"potential-deadlock"}, "deadlock": {"deadlock"},
               "hang": {"hang"}, "any": {"potential-deadlock", "deadlock", "hang"},
               "none": set()}


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("tracethread", "deadlock detection (tracethread)")
    group.addoption("--tracethread", action="store_true", default=None,
                    help="trace every threading primitive and fail on lock-order "
                         "inversions, deadlocks and hangs")
    group.addoption("--tracethread-fail-on", default=None, metavar="LIST",
                    help="kinds that fail the session: potential, deadlock, hang, any, none "
                         "(default: any)")
    group.addoption("--tracethread-report", default=None, metavar="FILE",
                    help="write tracethread's JSON report")
    group.addoption("--tracethread-sarif", default=None, metavar="FILE",
                    help="write tracethread's findings as SARIF 2.1.0")
    group.addoption("--tracethread-hang-timeout", default=None, type=float,
                    metavar="SECONDS", help="report threads blocked longer than this")
    parser.addini("tracethread", type="bool", default=False,
                  help="enable tracethread's deadlock gate (as --tracethread)")
    parser.addini("tracethread_fail_on", default="any",
                  help="kinds that fail the session (as --tracethread-fail-on)")


def _enabled(config: Any) -> bool:
    opt = config.getoption("--tracethread")
    return bool(opt) if opt is not None else bool(config.getini("tracethread"))


def _kinds(value: str) -> set[str]:
    kinds: set[str] = set()
    for part in (p.strip() for p in value.split(",") if p.strip()):
        if part not in _KIND_WORDS:
            raise pytest.UsageError(f"--tracethread-fail-on: unknown kind {part!r} "
                                    f"(choose from {', '.join(_KIND_WORDS)})")
        kinds |= _KIND_WORDS[part]
    return kinds


class _Gate:
    def __init__(self, config: Any) -> None:
        import tracethread
        from tracethread.exporters.stats import StatsSink

        self.config = config
        self.kinds = _kinds(config.getoption("--tracethread-fail-on")
                            or config.getini("tracethread_fail_on"))
        from tracethread.exporters.report.files import check_output
        for opt in ("--tracethread-report", "--tracethread-sarif"):
            path = config.getoption(opt)
            problem = path is not None and check_output(path, opt)
            if problem:   # before the session runs, not after an hour of tests
                raise pytest.UsageError(problem)
        self.stats = StatsSink()
        tracethread.add_sink(self.stats)
        hang = config.getoption("--tracethread-hang-timeout")
        # A deadlock inside a test raises DeadlockError there: the test fails, the session
        # goes on, nothing hangs.
        tracethread.install(on_deadlock="raise", hang_timeout=hang or None)
        self.failing: list = []
        from tracethread._core import api as core
        core.set_live_writer(self._say_live)

    def _say_live(self, text: str) -> None:
        """A hang or deadlock, the moment it is found: on the terminal, past pytest's
        output capture (as pytest-timeout shows a timeout's stacks), while the test is
        still running."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        tw = self.config.get_terminal_writer()
        if capman is None:
            tw.write(text)
            return
        with capman.global_and_fixture_disabled():
            tw.line()
            tw.write(text)
            tw.flush()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        from tracethread._core import api as core
        core.set_test_context(item.nodeid)
        try:
            yield
        finally:
            core.set_test_context("")

    def report(self, exitstatus: int) -> dict:
        import tracethread
        from tracethread._core import api as core
        from tracethread.exporters.report import json_report
        tracethread.flush(core.exit_timeout())
        core.hangs_over()
        return json_report.build(self.stats, ["pytest", *self.config.invocation_params.args],
                                 exitstatus, tracethread.recorder_stats())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        from tracethread.exporters.report import json_report, sarif
        report = self.report(int(exitstatus))
        # The verdict first: a report that cannot be written must not change it.
        self.findings = report["findings"]
        self.failing = [f for f in report["findings"] if f["kind"] in self.kinds]
        if self.failing and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.write_errors = []
        for opt, writer in (("--tracethread-report", json_report.write),
                            ("--tracethread-sarif", sarif.write)):
            path = self.config.getoption(opt)
            if path:
                try:
                    writer(path, report)
                except OSError as exc:
                    self.write_errors.append(f"could not write {opt} {path!r}: "
                                             f"{exc.strerror or exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from tracethread._core import api as core
        literal = core.literal
        found = getattr(self, "findings", [])
        tr = terminalreporter
        tr.section("tracethread")
        for problem in getattr(self, "write_errors", []):
            tr.write_line(f"tracethread: {literal(problem)}", red=True)
        if not found:
            tr.write_line("no lock-order cycles, deadlocks or hangs")
            return
        for f in found:
            failing = f in self.failing
            tr.write_line(literal(f"{f['kind']}: {f['message']}"), red=failing, bold=failing)
            for e in f.get("edges", []):
                where = e["stack"][-1] if e.get("stack") else None
                at = f" at {where['file']}:{where['line']}" if where else ""
                test = f" in {e['context']}" if e.get("context") else ""
                tr.write_line(literal(f"    {e['thread']}: holds {e['from']}, takes "
                                      f"{e['to']}{at}{test}"))
        if self.failing:
            tr.write_line(f"tracethread: {len(self.failing)} finding(s) fail the session "
                          f"(--tracethread-fail-on)", red=True, bold=True)


def pytest_configure(config: Any) -> None:
    if _enabled(config) and not hasattr(config, "_tracethread_gate"):
        config._tracethread_gate = _Gate(config)
        config.pluginmanager.register(config._tracethread_gate, "tracethread-gate")


def pytest_unconfigure(config: Any) -> None:
    gate = getattr(config, "_tracethread_gate", None)
    if gate is not None:
        import tracethread
        if tracethread.is_installed():
            tracethread.uninstall()
        from tracethread._core import api as core
        core.set_live_writer(None)
