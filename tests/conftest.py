import pytest

import tracethread
from tracethread._core import detect

pytest_plugins = ["pytester"]


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
