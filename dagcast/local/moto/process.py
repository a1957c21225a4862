"""The moto stack in a child process, for `dagcast up`.

moto's server, the in-process Lambdas and the stream poller are CPU-heavy Python; in the same
process as the HTTP front they would compete with its event loop for the GIL and delay every SSE
stream. So `dagcast up` runs them in a child process (``MotoStack`` there, unchanged) and keeps
only the REST API and the SSE app in the parent, which talks to moto over loopback like any AWS
client. The two share nothing but the environment and a pipe for stats; the child serves no
HTTP of its own beyond moto's server.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
from multiprocessing.connection import Connection
from typing import Any

from .stack import MotoStack, local_environment


def _child_main(conn: Connection, table_name: str, verbose: bool, options: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING)
    stack = MotoStack(table_name=table_name, **options)
    try:
        stack.start()
    except Exception as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    if not verbose:
        logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
    port = int(stack.endpoint.rsplit(":", 1)[1])
    conn.send({"endpoint": stack.endpoint, "port": port, "environment": stack.shared_environment()})
    parent = os.getppid()
    try:
        while True:
            if not conn.poll(1.0):
                if os.getppid() != parent:  # the parent died without stopping us: do not linger
                    break
                continue
            try:
                message = conn.recv()
            except EOFError:
                break
            if message == "stats":
                conn.send(stack.fanout_stats())
            elif message == "stop":
                break
    finally:
        stack.stop()


class StackProcess:
    def __init__(self, table_name: str = "dagcast-local", verbose: bool = False, **options: Any) -> None:
        """``options``: MotoStack fields (fanout_batch_size, fanout_batch_window_seconds, ...)."""
        self.table_name = table_name
        self.verbose = verbose
        self.options = options
        self.endpoint = ""
        self.state_machine_arn = ""
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._proc: Any = None

    def start(self, timeout: float = 90) -> StackProcess:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child_main,
            args=(child, self.table_name, self.verbose, self.options),
            name="dagcast-stack",
            daemon=True,
        )
        self._proc.start()
        self._conn = parent
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError(f"the local stack did not start within {timeout:.0f} s")
        info = parent.recv()
        if "error" in info:
            self.stop()
            raise RuntimeError(f"the local stack failed to start: {info['error']}")
        self.endpoint = info["endpoint"]
        os.environ.update(local_environment(self.endpoint, int(info["port"])))
        os.environ.update(info["environment"])
        self.state_machine_arn = os.environ["DAGCAST_STATE_MACHINE_ARN"]
        return self

    def fanout_stats(self) -> dict[str, Any] | None:
        if self._conn is None:
            return None
        with self._lock:
            self._conn.send("stats")
            stats: dict[str, Any] | None = self._conn.recv()
            return stats

    def stop(self) -> None:
        if self._conn is not None:
            try:
                with self._lock:
                    self._conn.send("stop")
            except (OSError, EOFError):
                pass
        if self._proc is not None:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()
