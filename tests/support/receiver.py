"""Real receivers for tests and benchmarks. ``Receiver``: a webhook endpoint on 127.0.0.1 that
verifies signatures the way docs/webhooks.md tells users to, records what it accepted, and can
misbehave on purpose (fail the first N requests, fail some events always, be slow, be down for a
while). ``EventBus``: an EventBridge bus of the local stack's moto whose rule sends every dagcast
event to an SQS FIFO queue, so a test reads what was published, in publish order."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3


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
    refuse_keys: set[str] = field(default_factory=set)  # answer 500 to these idempotency keys, always
    accepted: list[Received] = field(default_factory=list)
    requests: int = 0
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (idempotency key, arrival) of each
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
                key = self.headers.get("X-Dagcast-Idempotency-Key", "")
                with receiver._lock:
                    receiver.requests += 1
                    receiver.attempts.append((key, time.time()))
                    failing = (
                        receiver.fail_always
                        or receiver.requests <= receiver.fail_first
                        or key in receiver.refuse_keys
                    )
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
                            key,
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

    def attempts_at(self, key: str) -> list[float]:
        """When each request for idempotency key ``key`` arrived (accepted or not)."""
        with self._lock:
            return [at for k, at in self.attempts if k == key]


class EventBus:
    """``EventBus().create()``; ``create()`` may come later: until then the bus does not exist and
    PutEvents to it fails (ResourceNotFoundException), as in AWS."""

    def __init__(self) -> None:
        self.name = f"dagcast-test-{uuid.uuid4().hex[:12]}"
        session = boto3.Session()
        self.events = session.client("events")
        self._sqs = session.client("sqs")
        self._queue = ""

    def create(self) -> EventBus:
        self.events.create_event_bus(Name=self.name)
        self._queue = self._sqs.create_queue(
            QueueName=f"{self.name}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])
        self.events.put_rule(
            Name="all", EventBusName=self.name, EventPattern=json.dumps({"source": ["dagcast"]})
        )
        self.events.put_targets(
            Rule="all",
            EventBusName=self.name,
            Targets=[
                {"Id": "q", "Arn": arn["Attributes"]["QueueArn"], "SqsParameters": {"MessageGroupId": "all"}}
            ],
        )
        return self

    def received(self) -> list[dict[str, Any]]:
        """The EventBridge events published since the last call, in publish order."""
        got: list[dict[str, Any]] = []
        while messages := self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            got += [json.loads(m["Body"]) for m in messages]
            for m in messages:
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=m["ReceiptHandle"])
        return got
