"""Webhook receivers in a process of their own, for benchmarks.

The endpoints a stage delivers to are other machines. Run in the stack's own process, ten HTTP
servers (a thread per request) and their signature checks would take the interpreter lock from the
fan-out being measured — about a fifth of that process's samples in a py-spy profile of
bench/fanout — so the bench would time its own receivers as much as dagcast. Here they run in a
child process (the real ``tests.support.receiver.Receiver``: the Standard Webhooks library verifies
every request) and the bench asks it for counts and, at the end, for what each one accepted.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any


class ReceiverProcess:
    def __init__(self, secret: str, count: int) -> None:
        self.secret, self.count = secret, count
        self.urls: list[str] = []
        self._lock = threading.Lock()  # one question at a time on the pipe
        self._conn: Connection | None = None
        self._process: Any = None

    def start(self) -> ReceiverProcess:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no stack threads forked
        ours, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, self.secret, self.count), daemon=True)
        self._process.start()
        self._conn = ours
        self.urls = list(ours.recv())
        return self

    def _ask(self, question: str) -> Any:
        assert self._conn is not None, "start() first"
        with self._lock:
            self._conn.send(question)
            return self._conn.recv()

    def clear(self) -> None:
        """Forget what was accepted so far (a new run)."""
        self._ask("clear")

    def counts(self) -> list[int]:
        """Requests accepted so far, per receiver."""
        return list(self._ask("counts"))

    def accepted(self) -> list[list[Any]]:
        """What each receiver accepted (``Received``: key, event, signature_ok, at — its clock is
        this machine's, as the bench's)."""
        return list(self._ask("accepted"))

    def stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._ask("stop")
            self._process.join(10)
        self._process = None


def _serve(conn: Connection, secret: str, count: int) -> None:
    from tests.support.receiver import Receiver

    receivers = [Receiver(secret).start() for _ in range(count)]
    conn.send([r.url for r in receivers])
    while True:
        question = conn.recv()
        if question == "clear":
            for r in receivers:
                with r._lock:
                    r.accepted.clear()
            conn.send(None)
        elif question == "counts":
            conn.send([len(r.accepted) for r in receivers])
        elif question == "accepted":
            answer = []
            for r in receivers:
                with r._lock:
                    answer.append(list(r.accepted))
            conn.send(answer)
        else:  # stop
            for r in receivers:
                r.stop()
            conn.send(None)
            return
