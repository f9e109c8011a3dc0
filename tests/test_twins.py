"""The C and the pure-Python paths are twins: the same scripted operations (uncontended,
try-acquire, timeouts, re-entry, contention, Condition over a Lock and over an RLock,
Semaphore, Event; with summaries on and off) give the sinks exactly the same records and
counts. tests/twin_script.py runs the scripts; each implementation runs it in its own
process (the implementation is chosen once, at import)."""

import difflib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run(impl, mode):
    env = dict(os.environ, PYTHONFAULTHANDLER="1",
               TRACETHREAD_PURE_PYTHON="1" if impl == "pure" else "0",
               PYTHONPATH=str(HERE.parent))
    for k in list(env):
        if k.startswith("TRACETHREAD_") and k != "TRACETHREAD_PURE_PYTHON":
            del env[k]
    proc = subprocess.run([sys.executable, str(HERE / "twin_script.py"), mode], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


@pytest.mark.skipif(importlib.util.find_spec("tracethread._speedups") is None,
                    reason="the C extension is not built here: no C twin to compare")
@pytest.mark.parametrize("mode", ["summaries", "records"])
def test_c_and_pure_python_paths_record_the_same(mode):
    c, pure = run("c", mode), run("pure", mode)
    assert len([x for x in c if x.startswith("== ")]) >= 18
    diff = list(difflib.unified_diff(c, pure, "C", "pure Python", lineterm="", n=2))
    assert not diff, "\n".join(diff[:80])
