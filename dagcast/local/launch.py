"""Run `dagcast up` as a child process on a free 127.0.0.1 port and wait until it answers.

For programs that drive a whole local stack from outside — the end-to-end tests, `make soak`, or
your own integration tests::

    proc, base = start_dagcast_up(["--heartbeat-seconds", "1"], log=Path("up.log"))
    try:
        httpx.post(f"{base}/api/v1/execute-dag", json=job)
    finally:
        stop_dagcast_up(proc)

The child gets this process's environment without its ``AWS_*``, ``DAGCAST_*`` and ``MOTO_*``
variables (so a developer's shell cannot point it somewhere else), plus ``env``. It configures
nothing else: the child is an ordinary ``dagcast up``, with either backend, and stops with SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

DAGCAST = Path(sys.executable).parent / "dagcast"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dagcast_up(
    args: Sequence[str] = (),
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    poll: float = 0.1,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``dagcast up --port <free> *args`` (output to ``log``) and return it with its base URL
    once ``/healthz`` answers 200. Raises RuntimeError with the log's tail if it exits or does not
    answer within ``timeout`` seconds (and kills it)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    clean = {**clean_environment(), **(env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(DAGCAST), "up", "--port", str(port), *args],
            cwd=cwd,
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(
        proc, f"{base}/healthz", log, "dagcast up", timeout, poll, ready=lambda r: r.status_code == 200
    )
    return proc, base


def clean_environment() -> dict[str, str]:
    """This process's environment without its AWS, dagcast and moto settings: a child server
    configures itself from its own arguments, not from whatever the caller happened to set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGCAST_", "MOTO_"))}


def wait_until_answering(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    name: str,
    timeout: float = 60,
    poll: float = 0.1,
    ready: Callable[[httpx.Response], bool] = lambda _: True,
) -> None:
    """Poll ``url`` until an answer is ``ready``. Raises RuntimeError with the log's tail if the
    process exits, or kills it if nothing is ready within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(url, timeout=1)):
                return
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(f"{name} did not answer within {timeout:g} s: {log.read_text()[-3000:]}")
        time.sleep(poll)


def stop_dagcast_up(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (`dagcast up` stops its stack and poller), then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
