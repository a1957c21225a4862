"""A real webhook receiver on 127.0.0.1 for tests and benchmarks: it verifies signatures the way
docs/webhooks.md tells users to, records what it accepted, and can misbehave on purpose
(fail the first N requests, be slow, be down for a while)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify_signature(secret: str, header: str, body: bytes, tolerance_seconds: int = 300) -> bool:
    """docs/webhooks.md's snippet, verbatim: a receiver's check of X-Dagcast-Signature."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp = int(parts.get("t", "0"))
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False  # too old (or from the future): a replayed request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Received:
    key: str  # X-Dagcast-Idempotency-Key
    event: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool
    at: float


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0  # answer 500 to this many requests first
    delay_seconds: float = 0.0  # answer every request this late
    fail_always: bool = False
    accepted: list[Received] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def reserve_port(self) -> Receiver:
        """Pick a port without listening on it yet (the receiver is 'down' until start())."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        return self

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver.fail_always or receiver.requests <= receiver.fail_first
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"not now")
                    return
                ok = verify_signature(receiver.secret, self.headers.get("X-Dagcast-Signature", ""), body)
                with receiver._lock:
                    receiver.accepted.append(
                        Received(
                            self.headers.get("X-Dagcast-Idempotency-Key", ""),
                            json.loads(body),
                            dict(self.headers.items()),
                            ok,
                            time.time(),
                        )
                    )
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys_for(self, execution_id: str) -> list[str]:
        with self._lock:
            return [r.key for r in self.accepted if r.event.get("executionId") == execution_id]
