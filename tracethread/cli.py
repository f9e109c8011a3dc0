"""``python -m tracethread`` — run a program traced and report what it did.

    python -m tracethread run [options] script.py [args...]
    python -m tracethread run [options] -m module [args...]

The program runs as ``python script.py`` would run it: a fresh ``__main__``, ``sys.argv``
and ``sys.path[0]`` as the interpreter sets them, its exit status and traceback passed
through, atexit handlers and non-daemon threads honoured. Tracing is installed before the
program's first import; the report is printed on stderr at exit, after the program's own
atexit handlers and once its non-daemon threads have finished.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import traceback
from typing import Sequence

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(USAGE_ERROR, f"tracethread: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tracethread", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a Python program with tracing installed",
                         description="Run a program with every threading primitive traced; "
                                     "print a contention report on stderr at exit.")
    run.add_argument("-q", "--quiet", action="store_true",
                     default=os.environ.get("TRACETHREAD_QUIET", "") not in ("", "0"),
                     help="no report on stderr (env TRACETHREAD_QUIET=1)")
    run.add_argument("--top", type=int, default=int(os.environ.get("TRACETHREAD_TOP", "20")),
                     help="rows in the contention table (env TRACETHREAD_TOP, default 20)")
    run.add_argument("-m", dest="module", metavar="MODULE",
                     help="run a library module as a script, like python -m")
    run.add_argument("target", nargs=argparse.REMAINDER,
                     help="script.py [args...] (or the module's args with -m)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run":
        _parser().print_help(sys.stderr)
        return USAGE_ERROR
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import runpy

    if args.module is None:
        if not args.target:
            sys.stderr.write("tracethread: error: run needs a script (or -m module)\n")
            return USAGE_ERROR
        script, prog_args = args.target[0], args.target[1:]
        if not os.path.exists(script):
            sys.stderr.write(f"tracethread: error: can't open file {script!r}: "
                             "No such file or directory\n")
            return USAGE_ERROR
    else:
        script, prog_args = None, list(args.target)

    import tracethread
    from tracethread.exporters.stats import StatsSink

    stats = StatsSink()
    tracethread.add_sink(stats)
    tracethread.install()
    if not args.quiet:
        # Registered before the program runs, so it runs after the program's own atexit
        # handlers, and after threading has joined the non-daemon threads.
        atexit.register(_print_report, stats, args.top)

    if script is not None:
        sys.argv = [script, *prog_args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runner = lambda: runpy.run_path(script, run_name="__main__")  # noqa: E731
        own_file = os.path.abspath(script)
    else:
        sys.argv = [args.module, *prog_args]
        sys.path[0] = os.getcwd()
        runner = lambda: runpy.run_module(args.module, run_name="__main__",  # noqa: E731
                                          alter_sys=True)
        own_file = None
    try:
        runner()
    except SystemExit:
        raise
    except ImportError as exc:
        if script is None and exc.name == args.module:
            sys.stderr.write(f"{sys.executable}: No module named {args.module}\n")
            return 1
        _print_program_traceback(exc, own_file)
        return 1
    except BaseException as exc:  # noqa: BLE001 - the program's own uncaught exception
        _print_program_traceback(exc, own_file)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def _print_program_traceback(exc: BaseException, own_file: str | None) -> None:
    """The traceback as ``python script.py`` prints it: our and runpy's frames trimmed."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    import runpy
    runpy_file = os.path.abspath(runpy.__file__)
    while tb is not None:
        f = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not (f.startswith(here) or f == runpy_file or f.startswith("<frozen runpy")):
            break
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))


def _print_report(stats: object, top: int) -> None:
    import tracethread
    from tracethread.exporters.console import ContentionReport, make_console

    tracethread.flush()
    console = make_console(sys.stderr)
    console.print(ContentionReport(stats, tracethread.recorder_stats(), limit=top))


if __name__ == "__main__":
    raise SystemExit(main())
