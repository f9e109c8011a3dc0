"""Shared fixtures, and the session's implementation: ``--impl=c|pure`` (tests/_impl_option.py).

tracethread chooses its fast paths once, when it is first imported: the C extension
(``tracethread._speedups``) unless ``TRACETHREAD_PURE_PYTHON=1``. The same tests check both:

    python3 -m pytest                 # --impl=c, the default
    python3 -m pytest --impl=pure     # the pure-Python paths

pytest imports tracethread before any conftest runs (the installed ``pytest11`` entry point
is ``tracethread.pytest_plugin``, inside the package; this file imports it too), so the
option cannot act "before the import" in this process. Instead, in ``pytest_cmdline_main``
(after the options are parsed, before anything is configured or collected) the plugin
compares the implementation tracethread loaded with the one asked for and, if they differ,
re-executes the same command line (``sys.orig_argv``, same interpreter) with
``TRACETHREAD_PURE_PYTHON`` set accordingly: the new process has the variable in effect
before its first import of tracethread. ``--impl`` defaults to ``pure`` when
``TRACETHREAD_PURE_PYTHON=1`` is already set, so subprocesses the tests start that way are
not flipped back. Under ``pytest.main()`` from other code (no command line to re-execute)
a mismatch is a usage error naming the variable to set. With ``--impl=c`` where the C
extension is not built, the report header and the final summary say so, and C-only tests
skip (``config.stash[_impl_option.IMPL]`` / ``C_MISSING``).
"""

import pytest

import tracethread
from tracethread._core import detect

pytest_plugins = ["pytester", "_impl_option"]


@pytest.fixture(autouse=True)
def _fresh_detection():
    """Each test starts with an empty lock-order graph, no findings, default settings."""
    detect.reset()
    tracethread.clear_findings()
    before = tracethread.config()
    yield
    tracethread.configure(**{f: getattr(before, f) for f in before.__dataclass_fields__})
    detect.reset()
    tracethread.clear_findings()
