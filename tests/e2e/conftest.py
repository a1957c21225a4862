"""End-to-end: `dagcast up` runs as its own process; tests talk to it over real sockets."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGCAST = Path(sys.executable).parent / "dagcast"
HEARTBEAT_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STREAM_SECRET = "e2e-secret-" + "x" * 20


def start_server(
    name: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = ROOT / "test-artifacts" / f"dagcast-up-{name}.log"
    log.parent.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGCAST_", "MOTO_"))}
    clean.update({"DAGCAST_STREAM_SECRET": STREAM_SECRET, **(env or {})})
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(DAGCAST), "up", "--port", str(port), *args],
            cwd=ROOT,
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dagcast up exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"dagcast up did not answer within 60 s: {log.read_text()[-3000:]}")
        time.sleep(0.1)


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
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    proc, base = start_server("main", "--heartbeat-seconds", str(HEARTBEAT_SECONDS))
    yield base
    stop_server(proc)
