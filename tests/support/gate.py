"""Gates a test opens one by one: a job's ``http`` task that GETs ``gate.url(n)`` is held there until
the test calls ``release(n)``, so a test knows which events can exist at a given moment (those of
the tasks before the held one) and can check that they have already reached a client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.jobs import task

HOLD_SECONDS = 60  # a gate nobody opens lets its task through after this (the test has failed by then)


class Gates:
    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._arrived: dict[int, threading.Event] = {}
        self._open: dict[int, threading.Event] = {}

    def _events(self, n: int) -> tuple[threading.Event, threading.Event]:
        with self._lock:
            return self._arrived.setdefault(n, threading.Event()), self._open.setdefault(n, threading.Event())

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/gate/{n}"

    def task(self, tid: int, n: int, deps: list[int] | None = None) -> dict[str, Any]:
        """A job task that waits at gate ``n``."""
        return task(tid, "http", {"url": self.url(n), "timeoutSeconds": HOLD_SECONDS + 30}, deps)

    def wait_arrived(self, n: int, timeout: float = 30) -> bool:
        """Whether a task reached gate ``n`` (it is running and held there)."""
        return self._events(n)[0].wait(timeout)

    def is_open(self, n: int) -> bool:
        return self._events(n)[1].is_set()

    def release(self, n: int) -> None:
        self._events(n)[1].set()


@contextmanager
def gates() -> Iterator[Gates]:
    """A gate server on 127.0.0.1 for the block's duration."""
    holder: list[Gates] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = int(self.path.rsplit("/", 1)[1])
            arrived, opened = holder[0]._events(n)
            arrived.set()
            opened.wait(HOLD_SECONDS)
            body = b'{"gate": %d}' % n
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    holder.append(Gates(httpd.server_address[1]))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield holder[0]
    finally:
        for n in list(holder[0]._open):
            holder[0].release(n)
        httpd.shutdown()
        httpd.server_close()
