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


def run(impl, mode, **extra_env):
    env = dict(os.environ, PYTHONFAULTHANDLER="1",
               TRACETHREAD_PURE_PYTHON="1" if impl == "pure" else "0",
               PYTHONPATH=str(HERE.parent))
    for k in list(env):
        if k.startswith("TRACETHREAD_") and k != "TRACETHREAD_PURE_PYTHON":
            del env[k]
    env.update(extra_env)
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


@pytest.mark.skipif(importlib.util.find_spec("tracethread._speedups") is None,
                    reason="the C extension is not built here")
def test_raw_locks_taken_directly_or_through_their_methods_record_the_same():
    """Where a `_thread.lock`'s layout is the one the C paths know (checked at import:
    RAW_DIRECT), they take and release raw locks directly, keeping its `locked` in step;
    TRACETHREAD_RAW_LOCK_METHODS=1 makes them call its methods. Both give the same
    records and counts, and the raw lock says locked() while a traced Lock is held."""
    direct = run("c", "summaries")
    methods = run("c", "summaries", TRACETHREAD_RAW_LOCK_METHODS="1")
    diff = list(difflib.unified_diff(direct, methods, "direct", "methods", lineterm="", n=2))
    assert not diff, "\n".join(diff[:80])
    probe = ("import tracethread\n"
             "from tracethread._core._accel import speedups\n"
             "lk = tracethread.Lock()\n"
             "print(speedups.RAW_DIRECT, lk._lock.locked(), lk.acquire(), lk._lock.locked(),"
             " lk.acquire(False))\n"
             "lk._lock.release()   # (the raw lock, behind the traced Lock's back)\n"
             "try:\n"
             "    lk._lock.release()\n"
             "except RuntimeError as e:\n"
             "    print(e)\n")
    outs = []
    for env in ({}, {"TRACETHREAD_RAW_LOCK_METHODS": "1"}):
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, PYTHONPATH=str(HERE.parent),
                                                   TRACETHREAD_PURE_PYTHON="0", **env))
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.splitlines())
    assert outs[1][0] == "0 False True True False"
    assert outs[0][0] in ("1 False True True False", "0 False True True False")
    assert outs[0][1:] == outs[1][1:] == ["release unlocked lock"]
