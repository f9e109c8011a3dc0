"""Tracing inside a Python subprocess started by a traced program (``run --subprocesses``).

The parent puts a directory holding only a ``sitecustomize.py`` first on the children's
``PYTHONPATH``; that file calls ``start()`` before the child's first import — in children
running the parent's Python version only (another interpreter, e.g. a system ``python3``
started from a venv, is left exactly as it would run: nothing is imported, nothing
printed). The parent's packages are never put on a child's path ahead of its own: if the
child cannot import tracethread itself, the directory holding it is appended at the end.
The child traces with the parent's settings and, at exit (or when a policy ends it),
writes its JSON report into the parent's directory, where the parent merges it into its
own report; the parent removes the directory when it has done so.
"""

from __future__ import annotations

import atexit
import json
import os
import sys

ENV_DIR = "TRACETHREAD_CHILD_REPORT_DIR"
ENV_SETTINGS = "TRACETHREAD_CHILD_SETTINGS"
ENV_PYTHON = "TRACETHREAD_CHILD_PYTHON"      # the interpreter version children must have
ENV_PACKAGE = "TRACETHREAD_CHILD_PACKAGE"    # where tracethread is, for children without it


def interpreter_tag() -> str:
    return f"{sys.implementation.cache_tag}"


def start() -> None:
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return
    import tracethread
    from tracethread._core import api as core
    from tracethread.exporters.stats import StatsSink

    settings = json.loads(os.environ.get(ENV_SETTINGS, "{}"))
    stats = StatsSink()
    tracethread.add_sink(stats)
    tracethread.install(warn=False, **settings)
    done: list[bool] = []

    def write(status: int | None) -> None:
        if done:
            return
        done.append(True)
        from tracethread.exporters.report import json_report
        tracethread.flush(core.exit_timeout())
        report = json_report.build(stats, list(sys.argv), status,
                                   tracethread.recorder_stats())
        report["pid"] = os.getpid()
        try:
            json_report.write(os.path.join(directory, f"{os.getpid()}.json"), report)
        except OSError:
            pass   # the parent has finished (and removed the directory): nobody to tell

    atexit.register(lambda: write(None))
    core.on_fatal(write)


SITECUSTOMIZE = '''\
# Written by tracethread for the subprocesses of a traced program.
import os as _os, sys as _sys
if _sys.implementation.cache_tag == _os.environ.get("TRACETHREAD_CHILD_PYTHON"):
    try:
        try:
            import tracethread as _tt
        except ImportError:   # not installed here: the parent's copy, after our own path
            _sys.path.append(_os.environ.get("TRACETHREAD_CHILD_PACKAGE", ""))
        from tracethread import _child as _tt_child
        _tt_child.start()
    except Exception as _exc:  # never break the program
        _sys.stderr.write(f"tracethread: not tracing subprocess {_os.getpid()}: {_exc!r}\\n")
# Chain to the sitecustomize this one shadows, if there is one.
_here = _os.path.dirname(_os.path.abspath(__file__))
for _entry in list(_sys.path):
    if _entry and _os.path.abspath(_entry) != _here:
        _candidate = _os.path.join(_entry, "sitecustomize.py")
        if _os.path.isfile(_candidate):
            with open(_candidate) as _f:
                exec(compile(_f.read(), _candidate, "exec"), {"__name__": "sitecustomize",
                                                              "__file__": _candidate})
            break
'''


def prepare(settings: dict) -> str:
    """Set up the environment so Python subprocesses trace themselves; returns the
    directory their reports land in."""
    import tempfile
    base = tempfile.mkdtemp(prefix="tracethread-")
    boot = os.path.join(base, "boot")      # on the children's path: the bootstrap alone
    os.mkdir(boot)
    with open(os.path.join(boot, "sitecustomize.py"), "w", encoding="utf-8") as fh:
        fh.write(SITECUSTOMIZE)
    reports = os.path.join(base, "reports")
    os.mkdir(reports)
    path = [boot] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    os.environ[ENV_DIR] = reports
    os.environ[ENV_SETTINGS] = json.dumps(settings)
    os.environ[ENV_PYTHON] = interpreter_tag()
    os.environ[ENV_PACKAGE] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return reports


def cleanup(directory: str) -> None:
    """Remove what ``prepare`` made (``directory`` is the reports directory it returned)
    and take the bootstrap off this process's environment."""
    import shutil
    base = os.path.dirname(directory)
    boot = os.path.join(base, "boot")
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    rest = [p for p in entries if p and p != boot]
    if rest:
        os.environ["PYTHONPATH"] = os.pathsep.join(rest)
    else:
        os.environ.pop("PYTHONPATH", None)
    for var in (ENV_DIR, ENV_SETTINGS, ENV_PYTHON, ENV_PACKAGE):
        os.environ.pop(var, None)
    shutil.rmtree(base, ignore_errors=True)


def collect(directory: str) -> list[dict]:
    out: list[dict] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as fh:
                    out.append(json.load(fh))
            except (OSError, ValueError):
                continue
    return out
