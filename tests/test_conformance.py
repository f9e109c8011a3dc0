"""CPython's lock_tests against tracethread, plain and under install(), each in a
subprocess with a timeout and faulthandler (a broken primitive can hang a test)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TIMEOUT_S = 600

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("test") is None
    or importlib.util.find_spec("test.lock_tests") is None,
    reason="this interpreter ships without CPython's test package (test.lock_tests)")


@pytest.mark.parametrize("impl", ["c", "pure-python"])
@pytest.mark.parametrize("mode", ["plain", "installed"])
def test_cpython_lock_tests_pass(mode, impl):
    if impl == "c":
        from tracethread._core._accel import speedups
        if speedups is None:
            pytest.skip("the C fast paths are not built here (pure-Python run covers it)")
    env = dict(os.environ, TRACETHREAD_CONFORMANCE=mode, PYTHONFAULTHANDLER="1",
               TRACETHREAD_PURE_PYTHON="1" if impl == "pure-python" else "0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "lock_conformance.py"), "-q",
         "-p", "no:cacheprovider", "-o", "faulthandler_timeout=60"],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    passed = re.search(r"(\d+) passed", out)
    skipped = re.search(r"(\d+) skipped", out)
    # The suite's size depends on the interpreter (97 tests on 3.10, 103 on 3.11, 104 on
    # 3.13); only Condition's _recursion_count is skipped, as CPython's own
    # test_threading skips it. Every other test of the running interpreter's suite runs.
    assert passed and int(passed.group(1)) >= 90, out[-3000:]
    assert skipped is None or int(skipped.group(1)) <= 1, out[-3000:]
    assert "failed" not in out.splitlines()[-1]


def test_suite_passes_on_the_pure_python_fast_paths():
    """Everything but the lock_tests (covered above) again, with the C fast paths off."""
    tests = [str(p) for p in sorted(HERE.glob("test_*.py"))
             if p.name not in ("test_conformance.py",)]
    env = dict(os.environ, TRACETHREAD_PURE_PYTHON="1", PYTHONFAULTHANDLER="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
         "-o", "faulthandler_timeout=60"],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    assert re.search(r"\d+ passed", out), out[-3000:]
