"""A small threaded server with a worker pool: a `socketserver.ThreadingTCPServer` on
127.0.0.1 hands each request to a `ThreadPoolExecutor`, which updates shared statistics
under a lock; a client sends a bounded number of requests, then everything shuts down.

    python -m tracethread run examples/server.py
"""

import socket
import socketserver
import threading
from concurrent.futures import ThreadPoolExecutor

REQUESTS = 60
pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker")
stats_lock = threading.Lock()
stats = {"requests": 0, "bytes": 0}


def work(payload: bytes) -> bytes:
    with stats_lock:
        stats["requests"] += 1
        stats["bytes"] += len(payload)
    return payload.upper()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            reply = pool.submit(work, line.strip()).result(timeout=10)
            self.wfile.write(reply + b"\n")


def main() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        server.daemon_threads = True
        serving = threading.Thread(target=server.serve_forever, name="acceptor")
        serving.start()
        host, port = server.server_address
        clients = []

        def client(n: int) -> None:
            with socket.create_connection((host, port), timeout=10) as sock:
                f = sock.makefile("rwb")
                for i in range(REQUESTS // 3):
                    f.write(f"hello {n}.{i}\n".encode())
                    f.flush()
                    assert f.readline().startswith(b"HELLO")

        for n in range(3):
            t = threading.Thread(target=client, args=(n,), name=f"client-{n}")
            t.start()
            clients.append(t)
        for t in clients:
            t.join(30)
        server.shutdown()
        serving.join(10)
    pool.shutdown()
    print(f"served {stats['requests']} requests, {stats['bytes']} bytes")


if __name__ == "__main__":
    main()
