"""End-to-end: `dagcast up` runs as its own process; tests talk to it over real sockets."""

from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagcast.local.launch import free_port, start_dagcast_up, stop_dagcast_up

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_SECONDS = 0.5


STREAM_SECRET = "e2e-secret-" + "x" * 20


def start_server(
    name: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`dagcast up *args` with the tests' stream secret; its log is test-artifacts/dagcast-up-NAME.log."""
    return start_dagcast_up(
        args,
        log=ROOT / "test-artifacts" / f"dagcast-up-{name}.log",
        env={"DAGCAST_STREAM_SECRET": STREAM_SECRET, **(env or {})},
        cwd=ROOT,
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """``directory`` over plain HTTP on 127.0.0.1 (as `python -m http.server -d DIR` would): its origin."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(directory))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    stop_dagcast_up(proc, timeout=10)


# Package scope: the server stops after the last e2e test instead of running on through the
# functional and unit tests, and its teardown is not run inside a unit test's (guarded) teardown.
@pytest.fixture(scope="package")
def server() -> Iterator[str]:
    proc, base = start_server("main", "--heartbeat-seconds", str(HEARTBEAT_SECONDS))
    yield base
    stop_server(proc)
