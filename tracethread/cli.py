"""The ``tracethread`` command: run a program traced, report, and gate CI on deadlocks.

``HELP`` below is what ``tracethread --help`` prints (plain text, within 80 columns).
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import sys
import traceback
from typing import Any, Callable, NoReturn, Sequence

from tracethread.exporters.report.files import check_output, write_json

USAGE_ERROR = 2
EXIT_GATE = 3

HELP = """\
usage: tracethread COMMAND [options] ...

Run a Python program on a traced threading module: contention, lock-order
inversions (potential deadlocks), deadlocks and hangs, reported as they happen
and at exit.

commands:
  run [options] script.py [args...]    run a program traced (or: run -m module)
  report FILE.json [--wide | --html F] show a saved JSON report again, or as
                                       a self-contained HTML page
  merge REPORT.json... [-o OUT.json]   combine runs' lock-order graphs (test
                                       shards, processes) and report the cycles
                                       that appear only when they are combined

options:
  -h, --help     this help; 'tracethread COMMAND --help' for a command's options
  --version      the version of tracethread

The program runs as 'python script.py' would: a fresh __main__, sys.argv and
sys.path[0] as the interpreter sets them, its exit status and traceback passed
through, atexit handlers and non-daemon threads honoured. The report is written
on stderr at exit.

Exit status: the program's own, except 2 for a usage error (before the program
starts) and 3 when the gate fails (--fail-on) or a deadlock or hang ends the
run (docs/cli.md).
"""
FAIL_KINDS = {
    "potential": {"potential-deadlock"},
    "deadlock": {"deadlock"},
    "hang": {"hang"},
    "any": {"potential-deadlock", "deadlock", "hang"},
    "none": set(),
}


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"TRACETHREAD_{name}", default)


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line, exit 2
        self.exit(USAGE_ERROR, f"tracethread: error: {message}\n")


def _fail_on(value: str) -> set[str]:
    kinds: set[str] = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if part not in FAIL_KINDS:
            raise argparse.ArgumentTypeError(
                f"unknown --fail-on kind {part!r} (choose from {', '.join(FAIL_KINDS)})")
        kinds |= FAIL_KINDS[part]
    return kinds


def _seconds(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 of seconds: {value!r}")
    return v


def _max_edges(value: str) -> int | None:
    if value.strip().lower() == "none":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of edges: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (or 'none': no cap), not {n}")
    return n


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, not {port}")
    return port


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tracethread run", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="tracethread run [options] (script.py | -m module) [args...]",
        description="Run a program with every threading primitive traced; report\n"
                    "contention and deadlock findings on stderr at exit.",
        epilog="Every option can also be set by its environment variable; a command-line\n"
               "option wins.\nExit status: the program's own; 2 usage error; 3 gate "
               "failed or a\ndeadlock/hang ended the run.")
    p.add_argument("--report", metavar="FILE", default=_env("REPORT"),
                   help="write the JSON report (env TRACETHREAD_REPORT)")
    p.add_argument("--sarif", metavar="FILE", default=_env("SARIF"),
                   help="write SARIF 2.1.0 for code scanning (env TRACETHREAD_SARIF)")
    p.add_argument("--html", metavar="FILE", default=_env("HTML"),
                   help="write the report as one self-contained HTML page: findings with "
                        "their cycles drawn, the contention table, a timeline of each "
                        "thread's waits and holds (env TRACETHREAD_HTML)")
    p.add_argument("--fail-on", metavar="LIST", type=_fail_on,
                   default=_env("FAIL_ON", "none"),
                   help="comma-separated: potential, deadlock, hang, any, none (default "
                        "none); exit 3 when a finding of a listed kind exists "
                        "(env TRACETHREAD_FAIL_ON)")
    p.add_argument("--hang-timeout", metavar="SECONDS", type=_seconds,
                   default=None,  # TRACETHREAD_HANG_TIMEOUT or 30, checked after parsing
                   help="report threads blocked longer than this; 0 turns the watchdog off "
                        "(default 30; env TRACETHREAD_HANG_TIMEOUT)")
    p.add_argument("--on-deadlock", choices=("exit", "raise", "report"),
                   default=_env("ON_DEADLOCK", "exit"),
                   help="on an actual deadlock: exit (status 3, default), raise "
                        "DeadlockError in the thread closing the cycle, or report and keep "
                        "waiting (env TRACETHREAD_ON_DEADLOCK)")
    p.add_argument("--deadlock-confirm", metavar="SECONDS", type=_seconds,
                   default=_env("DEADLOCK_CONFIRM", "0.5"),
                   help="a wait-for cycle through a Lock that a thread outside it could "
                        "still release is a deadlock only once it stayed closed this long "
                        "(default 0.5; 0: at once; env TRACETHREAD_DEADLOCK_CONFIRM)")
    p.add_argument("--max-edges", metavar="N", type=_max_edges,
                   default=_env("MAX_EDGES", "200000"),
                   help="keep at most N lock-order edges (about 300 bytes each); the report "
                        "says when the graph was truncated (default 200000; 'none': no "
                        "cap; env TRACETHREAD_MAX_EDGES)")
    p.add_argument("--baseline", metavar="FILE", default=_env("BASELINE"),
                   help="accepted findings (by fingerprint, with a reason): only new ones "
                        "fail the gate (env TRACETHREAD_BASELINE)")
    p.add_argument("--write-baseline", metavar="FILE",
                   help="write this run's potential-deadlock findings as a baseline")
    p.add_argument("--identity", choices=("instance", "site"),
                   default=_env("IDENTITY", "instance"),
                   help="lock identity: each instance (default) or each creation site "
                        "(env TRACETHREAD_IDENTITY)")
    p.add_argument("--no-single-thread-cycles", action="store_true",
                   default=_env("SINGLE_THREAD_CYCLES", "1") in ("0", "false", "no"),
                   help="ignore cycles seen within one thread only "
                        "(env TRACETHREAD_SINGLE_THREAD_CYCLES=0)")
    p.add_argument("-q", "--quiet", action="store_true",
                   default=_env("QUIET", "") not in ("", "0"),
                   help="no report on stderr (env TRACETHREAD_QUIET=1)")
    p.add_argument("--subprocesses", action="store_true",
                   default=_env("SUBPROCESSES", "") not in ("", "0"),
                   help="trace Python subprocesses too (started with a new interpreter: "
                        "subprocess, multiprocessing spawn); their findings join this "
                        "report and gate (env TRACETHREAD_SUBPROCESSES=1)")
    p.add_argument("--trace-file", metavar="FILE", default=_env("TRACE_FILE"),
                   help="write a Chrome/Perfetto trace (open in ui.perfetto.dev) "
                        "(env TRACETHREAD_TRACE_FILE)")
    p.add_argument("--otlp", metavar="ENDPOINT", default=_env("OTLP"),
                   help="export spans and metrics over OTLP to ENDPOINT (sets "
                        "OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_* variables are honoured too)")
    p.add_argument("--export-timeout", metavar="SECONDS", type=_seconds, default=None,
                   help="at the program's end, wait at most this long for the OpenTelemetry "
                        "export to finish (default 5; env TRACETHREAD_EXPORT_TIMEOUT, else "
                        "OTEL_EXPORTER_OTLP_TIMEOUT)")
    p.add_argument("--prometheus-port", metavar="PORT", type=_port,
                   default=_env("PROMETHEUS_PORT"),
                   help="serve metrics for Prometheus on 127.0.0.1:PORT "
                        "(env TRACETHREAD_PROMETHEUS_PORT)")
    p.add_argument("--spans", choices=("blocked", "events", "all"),
                   default=_env("SPANS", "blocked"),
                   help="spans for operations that blocked (default); 'events' also attaches "
                        "uncontended operations as events on each thread's run span; 'all' "
                        "makes a span of every operation (env TRACETHREAD_SPANS)")
    p.add_argument("--span-min-duration", metavar="SECONDS", type=_seconds,
                   default=None,  # TRACETHREAD_SPAN_MIN_DURATION or 0, checked after parsing
                   help="leave out wait and hold spans shorter than this (default 0: every "
                        "operation that blocked; metrics still count them all; env "
                        "TRACETHREAD_SPAN_MIN_DURATION)")
    p.add_argument("--top", type=int, default=int(_env("TOP", "20") or 20),
                   help="rows in the contention table (default 20; env TRACETHREAD_TOP)")
    p.add_argument("--wide", action="store_true",
                   help="every primitive and every column in the contention table "
                        "(default: those somebody waited on, in 80 columns)")
    return p


def _split_run_args(argv: list[str], parser: argparse.ArgumentParser
                    ) -> tuple[list[str], str | None, str | None, list[str]]:
    """(our options, script, module, program args): everything after the script or
    ``-m module`` belongs to the program, even if it looks like one of our options."""
    # Options of `run` that take a value, from the parser itself (so a new option can
    # never be taken for the script's name).
    valued = {opt for action in parser._actions if action.nargs != 0
              for opt in action.option_strings}
    ours: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            if i + 1 >= len(argv):
                raise UsageError("-m needs a module name")
            return ours, None, argv[i + 1], argv[i + 2:]
        if a.startswith("-m") and len(a) > 2 and not a.startswith("--"):
            return ours, None, a[2:], argv[i + 1:]
        if a == "--":
            if i + 1 >= len(argv):
                break
            return ours, argv[i + 1], None, argv[i + 2:]
        if not a.startswith("-") or a == "-":
            return ours, a, None, argv[i + 1:]
        ours.append(a)
        if a in valued:
            if i + 1 >= len(argv):
                raise UsageError(f"{a} needs a value")
            ours.append(argv[i + 1])
            i += 1
        i += 1
    return ours, None, None, []


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write("tracethread: error: a command is needed: run or report "
                         "(see tracethread --help)\n")
        return USAGE_ERROR
    if args[0] in ("-h", "--help"):
        sys.stdout.write(HELP)
        return 0
    if args[0] in ("-V", "--version"):
        from tracethread import __version__
        sys.stdout.write(f"tracethread {__version__} (Python "
                         f"{'.'.join(map(str, sys.version_info[:3]))})\n")
        return 0
    command, rest = args[0], args[1:]
    if command == "run":
        if rest[:1] in (["-h"], ["--help"]):
            _run_parser().print_help()
            return 0
        parser = _run_parser()
        try:
            ours, script, module, prog_args = _split_run_args(rest, parser)
        except UsageError as exc:
            sys.stderr.write(f"tracethread: error: {exc}\n")
            return USAGE_ERROR
        opts = parser.parse_args(ours)
        if isinstance(opts.fail_on, str):  # the default, from the environment
            try:
                opts.fail_on = _fail_on(opts.fail_on)
            except argparse.ArgumentTypeError as exc:
                sys.stderr.write(f"tracethread: error: TRACETHREAD_FAIL_ON: {exc}\n")
                return USAGE_ERROR
        for attr, var, default in (("hang_timeout", "HANG_TIMEOUT", "30"),
                                   ("span_min_duration", "SPAN_MIN_DURATION", "0")):
            if getattr(opts, attr) is None:  # not on the command line: the environment's
                try:
                    setattr(opts, attr, _seconds(_env(var, default) or default))
                except argparse.ArgumentTypeError as exc:
                    sys.stderr.write(f"tracethread: error: TRACETHREAD_{var}: {exc}\n")
                    return USAGE_ERROR
        if script is None and module is None:
            sys.stderr.write("tracethread: error: run needs a script (or -m module)\n")
            return USAGE_ERROR
        return _run(opts, script, module, prog_args)
    if command == "report":
        return _report_command(rest)
    if command == "merge":
        return _merge_command(rest)
    sys.stderr.write(f"tracethread: error: unknown command {command!r} "
                     "(run, report, merge)\n")
    return USAGE_ERROR


def _report_command(rest: list[str]) -> int:
    p = _Parser(prog="tracethread report", description="Render a saved JSON report.")
    p.add_argument("file")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--wide", action="store_true",
                   help="every primitive and every column in the contention table")
    p.add_argument("--html", metavar="OUT.html",
                   help="write it as an HTML page instead of printing it")
    opts = p.parse_args(rest)
    if opts.html:
        problem = check_output(opts.html, "--html")
        if problem:
            sys.stderr.write(f"tracethread: error: {problem}\n")
            return USAGE_ERROR
    from tracethread.exporters.report.inputs import InputError, load_report
    try:
        report = load_report(opts.file)
    except InputError as exc:
        sys.stderr.write(f"tracethread: error: {exc}\n")
        return USAGE_ERROR
    if opts.html:
        from tracethread.exporters.report import html
        try:
            html.write(opts.html, report)   # no timeline: a saved report has none
        except OSError as exc:
            sys.stderr.write(f"tracethread: error: cannot write {opts.html!r}: "
                             f"{exc.strerror or exc}\n")
            return USAGE_ERROR
        return 0
    from tracethread.exporters.report.console import ReportView, make_console
    make_console(sys.stdout).print(ReportView(report, limit=opts.top, wide=opts.wide))
    return 0


def _merge_command(rest: list[str]) -> int:
    p = _Parser(prog="tracethread merge",
                description="Combine the lock-order graphs of several runs (test shards, "
                            "processes) by lock name (creation site by default) and report "
                            "the cycles that appear only when they are combined.")
    p.add_argument("reports", nargs="+", metavar="REPORT.json")
    p.add_argument("-o", "--output", metavar="OUT.json", help="write the merged report")
    p.add_argument("--fail-on", metavar="LIST", type=_fail_on, default=set(),
                   help="exit 3 when the merge finds a cycle (potential or any)")
    p.add_argument("-q", "--quiet", action="store_true")
    opts = p.parse_args(rest)
    if opts.output:
        problem = check_output(opts.output, "-o")
        if problem:
            sys.stderr.write(f"tracethread: error: {problem}\n")
            return USAGE_ERROR
    from tracethread.exporters.report.inputs import InputError, load_report
    reports = []
    for path in opts.reports:
        try:
            reports.append(load_report(path))
        except InputError as exc:
            sys.stderr.write(f"tracethread: error: {exc}\n")
            return USAGE_ERROR
    from tracethread.exporters.report.merge import merge
    merged = merge(reports, [os.path.basename(p) for p in opts.reports])
    if opts.output:
        from tracethread.exporters.report import json_report
        try:
            json_report.write(opts.output, merged)
        except OSError as exc:
            sys.stderr.write(f"tracethread: error: cannot write {opts.output!r}: "
                             f"{exc.strerror or exc}\n")
            return USAGE_ERROR
    if not opts.quiet:
        from tracethread.exporters.report.console import ReportView, make_console
        make_console(sys.stderr).print(ReportView(merged, title="tracethread: merged runs"))
    new = [f for f in merged["findings"] if f.get("only_when_combined")]
    if new and "potential-deadlock" in opts.fail_on:
        sys.stderr.write(f"tracethread: gate failed: {len(new)} cycle(s) appear only when "
                         f"the runs are combined; exit {EXIT_GATE}\n")
        return EXIT_GATE
    return 0


class _Session:
    """What the run needs at its end, whichever way it ends."""

    def __init__(self, opts: argparse.Namespace, command: list[str], stats: Any,
                 baseline: dict[str, str], children: str | None = None) -> None:
        self.children = children
        self.trace_sink: Any = None
        self.timeline: Any = None
        self.exporting: Any = None
        self.opts = opts
        self.command = command
        self.stats = stats
        self.baseline = baseline
        self.exit_status: int | None = None
        self.done = False
        self.pid = os.getpid()

    def finish(self, ended_by: int | None = None) -> int | None:
        """Write reports, print, evaluate the gate. Returns the status to exit with
        instead of the program's own, or None. The gate is decided before anything is
        written or shown, and every step after it is contained: a report that cannot be
        written or rendered is one line on stderr, never a changed verdict."""
        if self.done:
            return None
        self.done = True
        import tracethread
        from tracethread._core import api as core
        _contained("flush the records", tracethread.flush, core.exit_timeout())
        if self.exporting is not None:
            # (a forked child's too: it exports as its own service.instance.id)
            _contained("shut the OpenTelemetry export down", self.exporting.shutdown)
        if os.getpid() != self.pid:
            # A forked child (os.fork, multiprocessing 'fork') inherits this session: it
            # must not write the parent's outputs, print a second report or change its own
            # exit status. Its findings are not reported (docs/report.md).
            return None
        _contained("look at the hangs", core.hangs_over)
        report = _contained("build the report", self._build, ended_by)
        if report is None:
            report = _fallback_report(self.command, ended_by)
        opts = self.opts
        failing = [f for f in report["findings"]
                   if f["kind"] in opts.fail_on and f["fingerprint"] not in self.baseline]
        self._write_outputs(report)
        if not opts.quiet:
            _contained("render the report", self._render, report)
        if failing:
            kinds = sorted({f["kind"] for f in failing})
            sys.stderr.write(f"tracethread: gate failed: {len(failing)} finding(s) "
                             f"({', '.join(kinds)}) not in the baseline; exit {EXIT_GATE}\n")
            return EXIT_GATE
        return None

    def _build(self, ended_by: int | None) -> dict:
        import tracethread
        from tracethread.exporters.report import json_report
        report = json_report.build(self.stats, self.command,
                                   self.exit_status if ended_by is None else ended_by,
                                   tracethread.recorder_stats())
        report["ended_by_tracethread"] = ended_by is not None
        if self.exporting is not None:
            report["export"] = self.exporting.delivery.summary()
        if self.children:
            _contained("collect the subprocesses' reports", self._add_children, report)
        return report

    def _write_outputs(self, report: dict) -> None:
        from tracethread.exporters.report import json_report, sarif
        opts = self.opts
        # (path (None: not asked for), writer(path, data), data)
        outputs: list[tuple[str | None, Callable[[str, Any], object], Any]] = [
            (opts.report, json_report.write, report), (opts.sarif, sarif.write, report)]
        if self.trace_sink is not None and opts.trace_file:
            outputs.append((opts.trace_file, lambda path, _: self.trace_sink.write(path), None))
        if opts.html:
            outputs.append((opts.html, self._write_html, report))
        if opts.write_baseline:
            accepted = [{"fingerprint": f["fingerprint"], "kind": f["kind"],
                         "message": f["message"],
                         "reason": "accepted when the baseline was written: review"}
                        for f in report["findings"] if f["kind"] == "potential-deadlock"]
            outputs.append((opts.write_baseline, write_json,
                            {"version": 1, "accepted": accepted}))
        for path, writer, data in outputs:
            if path:
                _contained(f"write {path!r}", writer, path, data)

    def _write_html(self, path: str, report: dict) -> None:
        from tracethread.exporters.report import html
        html.write(path, report, None if self.timeline is None else self.timeline.data(),
                   baselined=set(self.baseline))

    def _render(self, report: dict) -> None:
        from tracethread.exporters.report.console import ReportView, make_console
        make_console(sys.stderr).print(
            ReportView(report, limit=self.opts.top, baselined=set(self.baseline),
                       wide=self.opts.wide))

    @staticmethod
    def _with_process(f: dict, child: dict) -> dict:
        return dict(f, process={"pid": child.get("pid"), "command": child.get("command")})

    def _add_children(self, report: dict) -> None:
        """Findings of traced subprocesses join the report; graphs are merged so a cycle
        split across processes is found too."""
        from tracethread._child import cleanup, collect
        from tracethread.exporters.report.merge import merge
        assert self.children is not None   # (_build calls this only then)
        children = collect(self.children)
        cleanup(self.children)
        report["subprocesses"] = [{"pid": c.get("pid"), "command": c.get("command"),
                                   "exit_status": c.get("exit_status"),
                                   "findings": len(c.get("findings", []))}
                                  for c in children]
        if not children:
            return
        for child in children:
            report["findings"] += [self._with_process(f, child)
                                   for f in child.get("findings", [])]
        combined = merge([report, *children],
                         ["main"] + [f"pid {c.get('pid')}" for c in children])
        report["findings"] += [f for f in combined["findings"] if f["only_when_combined"]]


def _contained(what: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None with one line on stderr if it fails: at the end of a run,
    a failure of ours must not hide the verdict or change the program's status."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one line, then go on
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        try:
            sys.stderr.write(f"tracethread: could not {what}: {detail}\n")
        except Exception:  # noqa: BLE001 - stderr may be gone
            pass
        return None


def _fallback_report(command: list[str], ended_by: int | None) -> dict:
    """When the report cannot be built: the findings alone, so the gate still holds."""
    from tracethread._core import api as core
    from tracethread.exporters.report import json_report
    found = []
    for f in core.findings():
        d = _contained("describe a finding", json_report.finding_dict, f)
        found.append(d if d is not None else {"kind": f.kind, "message": f.message,
                                              "fingerprint": f.fingerprint, "locks": []})
    return {"version": json_report.SCHEMA_VERSION, "tool": "tracethread",
            "command": list(command), "exit_status": ended_by, "findings": found,
            "locks": [], "graph": {"nodes": [], "edges": []}, "recorder": {}}


def _before_the_program(opts: argparse.Namespace, script: str | None) -> str | None:
    """What makes the run impossible, found before the program starts (so a CI job does
    not run a whole suite to fail on a typo at the end), or None."""
    if script is not None:
        if not os.path.exists(script):
            return f"can't open file {script!r}: No such file or directory"
        if os.path.isdir(script) and not os.path.isfile(os.path.join(script,
                                                                     "__main__.py")):
            return f"can't find '__main__' module in {script!r} (a directory)"
    from tracethread.exporters.otel.environment import endpoint_problems
    problems = endpoint_problems(os.environ, opts.otlp, opts.prometheus_port)
    if problems:
        return problems[0]
    for option, path in (("--report", opts.report), ("--sarif", opts.sarif),
                         ("--trace-file", opts.trace_file), ("--html", opts.html),
                         ("--write-baseline", opts.write_baseline)):
        if path is not None:
            problem = check_output(path, option)
            if problem:
                return problem
    return None


def _run(opts: argparse.Namespace, script: str | None, module: str | None,
         prog_args: list[str]) -> int:
    import runpy

    problem = _before_the_program(opts, script)
    if problem:
        sys.stderr.write(f"tracethread: error: {problem}\n")
        return USAGE_ERROR
    baseline: dict[str, str] = {}
    if opts.baseline:
        from tracethread.exporters.report.inputs import InputError, load_baseline
        try:
            baseline = load_baseline(opts.baseline)
        except InputError as exc:
            sys.stderr.write(f"tracethread: error: --baseline: {exc}\n")
            return USAGE_ERROR

    import tracethread
    from tracethread._core import api as core
    from tracethread.exporters.stats import StatsSink

    # Registered first, so it runs last, after every other exit handler (ours included):
    # a program ended by Ctrl-C dies by SIGINT, as under ``python``.
    atexit.register(_die_by_sigint_if_interrupted)
    stats = StatsSink()
    tracethread.add_sink(stats)
    on_deadlock = "exit" if "deadlock" in opts.fail_on else opts.on_deadlock
    tracethread.install(
        on_deadlock=on_deadlock, hang_timeout=opts.hang_timeout or None,
        on_hang="exit" if "hang" in opts.fail_on else "report",
        identity=opts.identity, single_thread_cycles=not opts.no_single_thread_cycles,
        deadlock_confirm=opts.deadlock_confirm, max_edges=opts.max_edges,
        warn=False)  # the report at exit shows every finding
    if script:
        command = [script, *prog_args]
    else:
        assert module is not None   # (main() gives a script or -m module)
        command = ["-m", module, *prog_args]
    children = None
    if opts.subprocesses:
        from tracethread._child import prepare
        children = prepare({
            "on_deadlock": on_deadlock, "hang_timeout": opts.hang_timeout or None,
            "on_hang": "exit" if "hang" in opts.fail_on else "report",
            "identity": opts.identity, "deadlock_confirm": opts.deadlock_confirm,
            "max_edges": opts.max_edges,
            "single_thread_cycles": not opts.no_single_thread_cycles})
    session = _Session(opts, command, stats, baseline, children)
    if opts.trace_file:
        from tracethread.exporters.chrome_trace import ChromeTraceSink
        session.trace_sink = ChromeTraceSink()
        tracethread.add_sink(session.trace_sink)
    if opts.html:
        from tracethread.exporters.timeline import TimelineSink
        session.timeline = TimelineSink()
        tracethread.add_sink(session.timeline)
    from tracethread.exporters.otel.environment import wanted_exporters
    if any(wanted_exporters(os.environ, opts.otlp, opts.prometheus_port)):
        error = None
        try:
            from tracethread.exporters import otel
        except ImportError as exc:  # opentelemetry-sdk is a dependency, but may be broken
            error = f"OpenTelemetry export unavailable: {exc}"
        else:
            try:
                session.exporting = otel.setup(otlp_endpoint=opts.otlp,
                                               prometheus_port=opts.prometheus_port,
                                               spans=opts.spans,
                                               min_duration_s=opts.span_min_duration,
                                               export_timeout_s=opts.export_timeout,
                                               set_global=True)
            except ImportError as exc:
                error = f"OpenTelemetry export unavailable: {exc}"
            except (otel.MissingExtra, ValueError, OSError) as exc:
                error = str(exc)
        if error is not None:
            sys.stderr.write(f"tracethread: error: {error}\n")
            tracethread.uninstall()
            return USAGE_ERROR

    def at_exit() -> None:
        status = session.finish()
        if status is not None:
            core.flush_stdio()
            os._exit(status)

    # Registered before the program runs, so it runs after the program's own atexit
    # handlers, and after threading has joined the non-daemon threads.
    atexit.register(at_exit)
    core.on_fatal(lambda status: session.finish(ended_by=status))

    if script is not None:
        sys.argv = [script, *prog_args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        own_file = os.path.abspath(script)
    else:
        assert module is not None
        sys.argv = [module, *prog_args]
        sys.path[0] = os.getcwd()
        own_file = None
    try:
        if script is not None:
            runpy.run_path(script, run_name="__main__")
        else:
            assert module is not None
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        session.exit_status = 0 if code is None else code if isinstance(code, int) else 1
        raise
    except ImportError as exc:
        if script is None and exc.name == module:
            sys.stderr.write(f"{sys.executable}: No module named {module}\n")
            session.exit_status = 1
            return 1
        _print_program_traceback(exc, own_file)
        session.exit_status = 1
        return 1
    except BaseException as exc:  # noqa: BLE001 - the program's own uncaught exception
        _print_program_traceback(exc, own_file)
        session.exit_status = 130 if isinstance(exc, KeyboardInterrupt) else 1
        _interrupted[0] = isinstance(exc, KeyboardInterrupt)
        return session.exit_status
    session.exit_status = 0
    return 0


_interrupted = [False]


def _die_by_sigint_if_interrupted() -> None:
    """``python`` ends a program killed by an uncaught KeyboardInterrupt by re-raising
    SIGINT with the default handler, so its parent sees "killed by SIGINT" (status -2 in
    Python, 130 in a shell) and stops too; do the same once everything is written."""
    if not _interrupted[0]:
        return
    import signal

    from tracethread._core import api as core
    core.flush_stdio()
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except (OSError, ValueError, AttributeError):   # no such signal here: the status
        pass                                         # (130) stands


def _print_program_traceback(exc: BaseException, own_file: str | None) -> None:
    """The traceback as ``python script.py`` prints it: runpy's frames and tracethread's
    own (its primitives between the program and the stdlib) left out, chained
    exceptions included."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    import runpy
    runpy_file = os.path.abspath(runpy.__file__)

    def ours(frame: traceback.FrameSummary) -> bool:
        raw = frame.filename
        f = os.path.abspath(raw)
        return f.startswith(here) or f == runpy_file or raw.startswith("<frozen runpy")

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    seen: set[int] = set()
    todo = [te]
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        t.stack = traceback.StackSummary.from_list([fr for fr in t.stack if not ours(fr)])
        todo += [c for c in (t.__cause__, t.__context__) if c is not None]
        todo += list(getattr(t, "exceptions", None) or ())   # an ExceptionGroup's
    sys.stderr.write("".join(te.format()))


if __name__ == "__main__":
    raise SystemExit(main())
