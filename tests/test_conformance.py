"""CPython's lock_tests (tests/lock_conformance.py) against tracethread, plain and under
install(), on the session's implementation (``--impl``): one test here per inner test and
mode, e.g. ``test_lock_tests[installed-LockTests.test_acquire_contended]``.

A broken primitive can hang a test, so the inner tests run in a subprocess with a timeout
and PYTHONFAULTHANDLER=1 (plus pytest's 60 s per-test faulthandler dump): one subprocess per
mode per session, started by the first test of that mode, streaming each finished test's
outcome as a JSON line (``--lock-tests-results``, tests/_impl_option.py). Each test here
asserts its own inner outcome and fails with the inner failure text. A subprocess that
times out (it gets SIGABRT first, so faulthandler prints every thread's stack) or crashes
fails every test it did not finish, naming the one it was running, with its output tail.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _impl_option import C_MISSING, IMPL

HERE = Path(__file__).parent
TIMEOUT_S = 600          # per subprocess (one mode: ~100 tests)
PER_TEST_DUMP_S = 60     # faulthandler_timeout inside: stacks of a test stuck this long
MODES = ["plain", "installed"]
# What the interpreter's own lock_tests holds (CPython's concrete suites, plus RLockTests
# again for Condition): the bound list must be exactly that long where we know the number.
KNOWN_SIZES = {(3, 10): 97, (3, 11): 103, (3, 13): 104}

HAVE_LOCK_TESTS = (importlib.util.find_spec("test") is not None
                   and importlib.util.find_spec("test.lock_tests") is not None)
pytestmark = pytest.mark.skipif(
    not HAVE_LOCK_TESTS,
    reason="this interpreter ships without CPython's test package (test.lock_tests)")

if HAVE_LOCK_TESTS:
    import lock_conformance     # a module object: its TestCases are not collected here
    INNER = lock_conformance.inner_test_ids()
else:
    lock_conformance = None
    INNER = ["no-lock_tests"]


def _inner_id(nodeid):
    """tests/lock_conformance.py::LockTests::test_x -> LockTests.test_x"""
    return ".".join(nodeid.split("::")[1:])


def _tail(text, n):
    return text if len(text) <= n else "[...]\n" + text[-n:]


class _Run:
    """One subprocess running tests/lock_conformance.py in one mode."""

    def __init__(self, mode, impl, workdir):
        self.mode, self.impl = mode, impl
        self.results_path = workdir / f"{mode}.jsonl"
        self.output_path = workdir / f"{mode}.out"
        self.results = {}          # inner id -> {"outcome", "text"}
        self.collected = None      # inner ids the subprocess collected
        self.running = None        # started, not finished
        self.exitstatus = None     # pytest's, from its sessionfinish
        self.returncode = None
        self.timed_out = False
        self.output = ""
        self.proc = None

    def start(self):
        env = dict(os.environ, TRACETHREAD_CONFORMANCE=self.mode, PYTHONFAULTHANDLER="1",
                   TRACETHREAD_PURE_PYTHON="1" if self.impl == "pure" else "0")
        env.pop("PYTEST_ADDOPTS", None)    # -k/-x/--lf meant for this session, not that one
        self._out = open(self.output_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", str(HERE / "lock_conformance.py"), "-q",
             "-p", "no:cacheprovider", "-o", f"faulthandler_timeout={PER_TEST_DUMP_S}",
             f"--impl={self.impl}", f"--lock-tests-results={self.results_path}"],
            cwd=HERE.parent, env=env, stdout=self._out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def finish(self):
        if self.returncode is not None:
            return self
        left = max(1.0, TIMEOUT_S - (time.monotonic() - self.started_at))
        try:
            self.returncode = self.proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self._kill()
        self._out.close()
        self.output = self.output_path.read_text(errors="replace")
        self._read_results()
        return self

    def _kill(self):
        try:     # faulthandler (PYTHONFAULTHANDLER=1) prints every thread's stack on SIGABRT
            os.killpg(self.proc.pid, signal.SIGABRT)
            self.returncode = self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.returncode = self.proc.wait()

    def _read_results(self):
        try:
            lines = self.results_path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:       # a line cut short by a kill
                continue
            if "collected" in rec:
                self.collected = [_inner_id(n) for n in rec["collected"]]
            elif "start" in rec:
                self.running = _inner_id(rec["start"])
            elif "id" in rec:
                self.results[_inner_id(rec["id"])] = rec
                self.running = None
            elif "exitstatus" in rec:
                self.exitstatus = rec["exitstatus"]

    def what_happened(self):
        if self.timed_out:
            return f"was killed after {TIMEOUT_S} s (timeout)"
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"crashed ({name})"
        if self.exitstatus is None:
            return f"died with exit status {self.returncode} before its session finished"
        return f"ended (pytest exit status {self.exitstatus}) without running it"

    def where(self):
        return f"the lock_tests subprocess (mode {self.mode}, --impl={self.impl})"

    def unfinished(self, inner):
        if inner == self.running:
            return (f"{inner} was running when {self.where()} {self.what_happened()}.\n"
                    f"Its output (faulthandler stacks at the end):\n{_tail(self.output, 12000)}")
        if self.collected is not None and inner not in self.collected:
            return (f"{inner} was not collected by {self.where()}, which "
                    f"{self.what_happened()}.\nOutput:\n{_tail(self.output, 3000)}")
        head = (f"{inner} never ran: {self.where()} {self.what_happened()}"
                f"{f' while running {self.running}' if self.running else ''} "
                f"({len(self.results)} of {len(INNER)} tests had finished)")
        if self.running in INNER:    # that test's failure shows the output
            return f"{head}; its output: test_lock_tests[{self.mode}-{self.running}]"
        return f"{head}.\nOutput:\n{_tail(self.output, 3000)}"


@pytest.fixture(scope="session")
def lock_tests_run(request, tmp_path_factory):
    """mode -> its finished _Run; each mode's subprocess runs once per session."""
    impl = request.config.stash[IMPL]
    missing = request.config.stash[C_MISSING]
    runs = {}

    def get(mode):
        if impl == "c" and missing:
            pytest.skip(f"--impl=c, but {missing}: run --impl=pure for the pure-Python paths")
        if mode not in runs:
            runs[mode] = _Run(mode, impl, tmp_path_factory.mktemp(f"lock_tests-{mode}"))
            runs[mode].start()
        return runs[mode].finish()

    yield get
    for run in runs.values():     # interrupted mid-session: leave no process behind
        if run.returncode is None:
            run._kill()
            run._out.close()


@pytest.mark.parametrize("mode, inner", [(m, t) for m in MODES for t in INNER],
                         ids=[f"{m}-{t}" for m in MODES for t in INNER])
def test_lock_tests(mode, inner, lock_tests_run):
    run = lock_tests_run(mode)
    rec = run.results.get(inner)
    if rec is None:
        pytest.fail(run.unfinished(inner), pytrace=False)
    text = rec["text"].removeprefix("Skipped: ")
    if rec["outcome"] == "skipped":
        if inner in lock_conformance.ALLOWED_SKIPS:
            pytest.skip(text)
        pytest.fail(f"{inner} skipped in {run.where()} ({text}); only "
                    f"{sorted(lock_conformance.ALLOWED_SKIPS)} may skip", pytrace=False)
    if rec["outcome"] != "passed":
        pytest.fail(f"{inner}: {rec['outcome']} in {run.where()}:\n{text}", pytrace=False)


@pytest.mark.parametrize("mode", MODES)
def test_lock_tests_session_is_clean(mode, lock_tests_run):
    """What no single inner test accounts for: the subprocess collected exactly the
    tests enumerated here, and ended with status 0 unless an inner test failed."""
    run = lock_tests_run(mode)
    if run.collected is not None:
        missing = [t for t in INNER if t not in run.collected]
        extra = [t for t in run.collected if t not in INNER]
        assert not missing and not extra, (
            f"{run.where()} collected a different list: missing {missing}, extra {extra}")
    failed = [t for t, r in run.results.items() if r["outcome"] not in ("passed", "skipped")]
    finished = not run.timed_out and run.exitstatus is not None
    if finished and not failed:
        assert run.returncode == 0, (
            f"{run.where()} exited with {run.returncode} though every test passed:\n"
            f"{_tail(run.output, 8000)}")


def test_the_interpreters_whole_lock_tests_suite_is_bound():
    """Every concrete suite of this interpreter's test.lock_tests is bound to a tracethread
    class (and RLockTests a second time for Condition), so INNER is all of it."""
    import inspect
    import unittest

    from test import lock_tests
    loader = unittest.TestLoader()
    suites = [c for n, c in vars(lock_tests).items()
              if inspect.isclass(c) and issubclass(c, unittest.TestCase)
              and not n.startswith("Base") and loader.getTestCaseNames(c)]
    bound = [cls.__bases__[0] for cls in lock_conformance.CLASSES]
    assert set(suites) <= set(bound), f"not bound: {set(suites) - set(bound)}"
    expected = sum(len(loader.getTestCaseNames(c)) for c in bound)
    assert len(INNER) == expected == len(set(INNER))
    known = KNOWN_SIZES.get(sys.version_info[:2])
    if known is not None:
        assert len(INNER) == known, f"{len(INNER)} lock_tests here, {known} expected"
