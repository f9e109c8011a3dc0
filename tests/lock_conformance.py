"""CPython's own behaviour suite for the primitives (Lib/test/lock_tests.py), bound to
tracethread's classes the way CPython's test_threading.py binds it to its own.

Run in a subprocess by tests/test_conformance.py (a broken primitive can hang a test),
which reports each inner test as its own test:
    TRACETHREAD_CONFORMANCE=plain|installed python -m pytest tests/lock_conformance.py --impl=c|pure
``plain`` binds the classes directly; ``installed`` runs with ``tracethread.install()`` active
and binds the names through the ``threading`` module, as unmodified code sees them.
``inner_test_ids()`` lists the tests this runs ("LockTests.test_acquire_contended", ...), without
running anything: test_conformance.py parametrises over it at collection time.
"""

import os
import threading
import unittest

import pytest

lock_tests = pytest.importorskip(
    "test.lock_tests",
    reason="this interpreter ships without CPython's test package (test.lock_tests)")

import tracethread  # noqa: E402

MODE = os.environ.get("TRACETHREAD_CONFORMANCE", "plain")


def setUpModule():
    from tracethread._core._accel import speedups
    if os.environ.get("TRACETHREAD_PURE_PYTHON") == "1":
        assert speedups is None, "TRACETHREAD_PURE_PYTHON=1 must disable the C fast paths"
    if MODE == "installed":
        tracethread.install()
        assert threading.Lock is tracethread.Lock


def tearDownModule():
    if MODE == "installed":
        tracethread.uninstall()


def _bind(name):
    if MODE == "installed":
        return staticmethod(lambda *a, **k: getattr(threading, name)(*a, **k))
    return staticmethod(getattr(tracethread, name))


class LockTests(lock_tests.LockTests):
    locktype = _bind("Lock")


class RLockTests(lock_tests.RLockTests):
    locktype = _bind("RLock")


class EventTests(lock_tests.EventTests):
    eventtype = _bind("Event")


class ConditionAsRLockTests(lock_tests.RLockTests):
    # Condition uses an RLock by default and exports its API.
    locktype = _bind("Condition")

    if hasattr(lock_tests.RLockTests, "test_recursion_count"):     # 3.11+
        def test_recursion_count(self):
            self.skipTest("Condition does not expose _recursion_count()")


class ConditionTests(lock_tests.ConditionTests):
    condtype = _bind("Condition")


class SemaphoreTests(lock_tests.SemaphoreTests):
    semtype = _bind("Semaphore")


class BoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = _bind("BoundedSemaphore")


class BarrierTests(lock_tests.BarrierTests):
    barriertype = _bind("Barrier")


CLASSES = [LockTests, RLockTests, EventTests, ConditionAsRLockTests, ConditionTests,
           SemaphoreTests, BoundedSemaphoreTests, BarrierTests]
# The one test allowed to skip (CPython's own test_threading skips it for Condition too).
ALLOWED_SKIPS = {"ConditionAsRLockTests.test_recursion_count"}


def inner_test_ids():
    """``Class.test_name`` of every test of CLASSES, in the order pytest runs them."""
    loader = unittest.TestLoader()
    return [f"{cls.__name__}.{name}" for cls in CLASSES
            for name in loader.getTestCaseNames(cls)]


if __name__ == "__main__":
    unittest.main()
