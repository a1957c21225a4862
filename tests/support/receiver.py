"""Real receivers for tests and benchmarks. ``Receiver``: a webhook endpoint on 127.0.0.1 that
verifies each request with the Standard Webhooks library (``standardwebhooks`` from PyPI, as a
user's receiver would, not with code of ours), records what it accepted, and can misbehave on
purpose (fail the first N requests, fail some events always, be slow, be down for a while).
``ShiftedClock``: a clock ahead of the real one, for a sender and the library alike (a retry half an
hour later without waiting for it). ``EventBus``: an EventBridge bus of the local stack's moto whose
rule sends every dagcast event to an SQS FIFO queue, so a test reads what was published, in
publish order."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def whsec_of(secret: str) -> str:
    """A registered secret's Standard Webhooks form, made as docs/webhooks.md tells the owner of a
    webhook registered before the standard: ``whsec_`` + base64 of its UTF-8 bytes. A ``whsec_``
    secret is its own form."""
    if secret.startswith("whsec_"):
        return secret
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def verify_standard(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """The library's verdict on one request: "" when it verifies, else its reason."""
    try:
        Webhook(whsec_of(secret)).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        return str(exc) or "refused"
    return ""


def verify_signature(secret: str, header: str, body: bytes, tolerance_seconds: int = 300) -> bool:
    """The deprecated X-Dagcast-Signature check, as docs/webhooks.md showed it before the standard:
    what receivers written against it still run."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp = int(parts.get("t", "0"))
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False  # too old (or from the future): a replayed request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class ShiftedClock:
    """The real clock plus ``offset`` seconds. ``time`` is a sender's clock; ``for_the_library``
    makes standardwebhooks read the same time while the block runs (it asks ``datetime.now``)."""

    offset: float = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    @contextlib.contextmanager
    def for_the_library(self) -> Iterator[None]:
        clock = self

        class Shifted(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> Shifted:
                real = datetime.now(tz)
                moved = real + timedelta(seconds=clock.offset)
                return cls.combine(moved.date(), moved.timetz())

        library = vars(standardwebhooks.webhooks)  # the module's own name for datetime, swapped
        real = library["datetime"]
        library["datetime"] = Shifted
        try:
            yield
        finally:
            library["datetime"] = real


@dataclass
class Received:
    key: str  # webhook-id: <executionId>:<seq>
    event: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool  # the Standard Webhooks library verified it
    at: float
    legacy_ok: bool = False  # the deprecated X-Dagcast-Signature checked out too


@dataclass(frozen=True)
class Check:
    """One request as it came (accepted or not) and the library's verdict on it."""

    key: str
    headers: dict[str, str]
    body: bytes
    refused: str  # "" when the library verified it; else why not
    at: float


@dataclass
class Receiver:
    secret: str  # as registered: a whsec_ value, or one of the kind registered before the standard
    fail_first: int = 0  # answer 500 to this many requests first
    delay_seconds: float = 0.0  # answer every request this late
    fail_always: bool = False
    refuse_keys: set[str] = field(default_factory=set)  # answer 500 to these idempotency keys, always
    accepted: list[Received] = field(default_factory=list)
    requests: int = 0
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (idempotency key, arrival) of each
    checks: list[Check] = field(default_factory=list)  # every request, verified or not
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

    def _answer(self, received: dict[str, str], body: bytes) -> int:
        """Verify (every request, so a test sees each attempt's signature), then answer: 500 while
        misbehaving on purpose, else 204 for a request the library verified and 401 for one it did not."""
        headers = {k.lower(): v for k, v in received.items()}  # HTTP header names are case-insensitive
        key = headers.get("webhook-id", "")
        refused = verify_standard(self.secret, headers, body)
        with self._lock:
            self.requests += 1
            self.attempts.append((key, time.time()))
            self.checks.append(Check(key, headers, body, refused, time.time()))
            failing = self.fail_always or self.requests <= self.fail_first or key in self.refuse_keys
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if failing:
            return 500
        legacy = verify_signature(self.secret, headers.get("x-dagcast-signature", ""), body)
        with self._lock:
            self.accepted.append(Received(key, json.loads(body), received, not refused, time.time(), legacy))
        return 401 if refused else 204

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.end_headers()
                if status == 500:
                    self.wfile.write(b"not now")

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

    def checks_of(self, key: str) -> list[Check]:
        with self._lock:
            return [c for c in self.checks if c.key == key]


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


def published(bus: EventBus) -> list[tuple[str, int]]:
    """(executionId, seq) of each event published to ``bus`` since the last read, in publish order."""
    return [(e["detail"]["executionId"], e["detail"]["seq"]) for e in bus.received()]
