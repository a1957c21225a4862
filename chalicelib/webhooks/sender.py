"""One delivery attempt: the event JSON POSTed, signed, to the hook's URL; the outcome as an
``Attempt``. 2xx is success; any other status, a timeout or a connection error is a failure.

Each attempt is signed when it is sent, with the time of its own clock: a receiver's Standard
Webhooks library refuses a ``webhook-timestamp`` more than five minutes off its clock, and a retry
comes up to 30 minutes after the one before it. ``webhook-id`` is ``<executionId>:<seq>``, the same
for every attempt and replay, so a receiver dedupes on it.

It never retries, redirects or records anything: the dispatcher decides what an outcome means for
the delivery and its lane, and the store writes it. httpx is imported with the first delivery, not
with the module: every function that builds the services builds a Sender, and only the fan-out,
the retry function and a replay send anything (docs/operations.md § Cold starts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.model import now_ms
from . import signing
from .models import Hook

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None  # None: no response (timeout, connection refused, ...)
    error: str  # "" on success; what went wrong, short enough to store on the delivery
    at: int  # epoch ms when the outcome was known


class Sender:
    """POSTs one delivery: the event JSON, signed; 2xx is success, anything else a failure."""

    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.timeout = timeout_seconds
        self._clock = clock  # the signing time; a test moves it to sign a retry half an hour later
        self._client: httpx.Client | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _pooled(self) -> httpx.Client:
        """One pooled client for every lane (the dispatcher sends lanes in parallel threads), made
        on first use. No redirects: a 3xx is the receiver's answer, not a place to send the signed
        body to."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the sender is closed: nothing is sent after close")
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
                    headers={"User-Agent": "dagcast-webhooks/1", "Content-Type": "application/json"},
                )
            return self._client

    def post(self, hook: Hook, key: bytes, delivery: Mapping[str, Any], attempt: int) -> Attempt:
        """One attempt, signed now with the hook's HMAC ``key`` (secrets.py opens it)."""
        body = str(delivery["body"]).encode()
        message_id = f"{delivery['executionId']}:{delivery['seq']}"
        headers = {
            "X-Dagcast-Event": str(delivery["eventType"]),
            "X-Dagcast-Webhook-Id": hook.id,
            "X-Dagcast-Idempotency-Key": message_id,
            "X-Dagcast-Attempt": str(attempt),
            **signing.headers(key, message_id, int(self._clock()), body),
        }
        client = self._pooled()
        import httpx  # imported by _pooled: this only names its exceptions

        try:
            r = client.post(hook.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Attempt(False, None, f"no response within {self.timeout:g}s", now_ms())
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {str(exc)[:300]}", now_ms())
        if 200 <= r.status_code < 300:
            return Attempt(True, r.status_code, "", now_ms())
        return Attempt(False, r.status_code, f"HTTP {r.status_code}: {r.text[:300]}", now_ms())

    def close(self) -> None:
        """Close the pooled connections (the owner stops; nothing is sent after this)."""
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
