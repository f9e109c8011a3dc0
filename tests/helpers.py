"""Shared by the tests that run real programs against real receivers."""

import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 10


def tt(*args, cwd=None, timeout=60, env=None):
    """``python -m tracethread ARGS`` in a subprocess (in ROOT unless ``cwd``): this
    checkout importable, faulthandler on, no colour, none of the caller's TRACETHREAD_*
    settings (``env`` adds to it)."""
    e = dict(os.environ, PYTHONFAULTHANDLER="1", NO_COLOR="1", PYTHONPATH=ROOT)
    for k in list(e):
        if k.startswith("TRACETHREAD_"):
            del e[k]
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "tracethread", *args], cwd=cwd or ROOT,
                          env=e, capture_output=True, text=True, timeout=timeout)

# A lock held 0.3 s by "holder" while "waiter" waits for it: one lock.wait, one lock.hold.
CONTENDED_PROGRAM = """
    import threading, time
    lock = threading.Lock()
    holding = threading.Event()
    def holder():
        with lock:
            holding.set()
            time.sleep(0.3)          # the waiter waits about this long
    def waiter():
        holding.wait()
        with lock:
            pass
    ts = [threading.Thread(target=holder, name="holder"),
          threading.Thread(target=waiter, name="waiter")]
    for t in ts: t.start()
    for t in ts: t.join()
"""


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.payloads.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


class OTLPReceiver:
    """A loopback OTLP/HTTP receiver keeping each (path, protobuf body) it was sent."""

    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        self.server.payloads = []
        self.payloads = self.server.payloads
        self.server_address = self.server.server_address
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(TIMEOUT)

    def traces(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        return [ExportTraceServiceRequest.FromString(b) for p, b in self.payloads
                if p == "/v1/traces"]

    def metrics(self):
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        return [ExportMetricsServiceRequest.FromString(b) for p, b in self.payloads
                if p == "/v1/metrics"]


def free_port():
    return free_ports(1)[0]


def free_ports(n):
    """n distinct free loopback ports (bound together, so never the same one twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def finish(proc, timeout):
    """proc.communicate(timeout), killing the process if it overruns (no leaked child
    holding a port); re-raises the timeout after the kill."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def run_traced(args, code, tmp_path, env=None, name="prog.py"):
    """Start ``python -m tracethread run ARGS prog.py`` on ``code`` with a clean
    TRACETHREAD_*/OTEL_* environment (plus ``env``); the caller communicates."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return subprocess.Popen([sys.executable, "-m", "tracethread", "run", *args, str(path)],
                            env=clean_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def default_sigint():
    """In the child before it runs: Ctrl-C as in a terminal, even when this test session
    was started with SIGINT ignored (a shell's background job), which a child inherits
    and Python then keeps."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def clean_env(extra=None):
    """The test process's environment without TRACETHREAD_*/OTEL_* settings, with
    faulthandler on, this checkout importable and colour off; plus ``extra``."""
    e = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=ROOT, NO_COLOR="1")
    for k in list(e):
        if k.startswith(("TRACETHREAD_", "OTEL_")):
            del e[k]
    e.update(extra or {})
    return e
