"""Fault injection at the boto3 client: a fraction of DynamoDB calls fail the way AWS fails them.

``throttle``  400 ProvisionedThroughputExceededException before the call reaches the table
``5xx``       500 InternalServerError before the call reaches the table
``lost``      the call IS applied, then the client gets a 500 and retries it (a response lost on
              the way back — the case that catches non-idempotent writes)

botocore's own retry handler sees these as it would see AWS's answers (standard mode, backoff).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.retries.standard import ExponentialBackoff
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

_NOWHERE = "https://injected-fault.invalid/"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_ERRORS = {
    "throttle": (400, "ProvisionedThroughputExceededException"),
    "5xx": (500, "InternalServerError"),
    "lost": (500, "InternalServerError"),
}


def _headers() -> HTTPHeaders:
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    return headers


def register_settled(client: Any, event_name: str, handler: Any, unique_id: str | None = None) -> None:
    """``register_first`` a botocore hook on a client that other threads are using right now.

    botocore caches each event's handler list (``HierarchicalEmitter._lookup_cache``) and a
    registration empties that cache — but a thread that looked the list up just before can write
    it back afterwards, without the new handler, and there it stays for that event. So:
    register, then empty the cache until no cached list for the event lacks the handler."""
    events = client.meta.events
    events.register_first(event_name, handler, unique_id=unique_id)
    emitter = getattr(events, "_emitter", events)
    for _ in range(200):
        time.sleep(0.005)
        cache = emitter._lookup_cache
        if all(handler in handlers for name, handlers in list(cache.items()) if name.startswith(event_name)):
            return
        emitter._lookup_cache = {}
    raise RuntimeError(f"could not install the {event_name} hook: botocore kept a handler list without it")


class FaultInjector:
    def __init__(
        self,
        clients: list[Any],
        mode: str,
        rate: float,
        seed: int = 7,
        *,
        operations: set[str] | None = None,
        limit: int | None = None,
    ) -> None:
        """``operations`` limits the faults to those calls (``lost`` always means writes only);
        ``limit`` stops injecting after that many faults."""
        assert mode in _ERRORS, mode
        self.clients = list({id(c): c for c in clients}.values())
        self.mode, self.rate = mode, rate
        self.operations = WRITES if mode == "lost" and operations is None else operations
        self.limit = limit
        self.active = False
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> FaultInjector:
        self.active = True
        for client in self.clients:
            register_settled(client, "before-send.dynamodb", self._before_send)
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False  # a handler list cached by another thread may still call it: inert now
        for client in self.clients:
            client.meta.events.unregister("before-send.dynamodb", self._before_send)

    def _before_send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else str(target)).rsplit(".", 1)[-1]
        if not self.active or (self.operations is not None and operation not in self.operations):
            return None
        with self._lock:
            if self.limit is not None and sum(self.injected.values()) >= self.limit:
                return None
            if self.rng.random() >= self.rate:
                return None
            self.injected[operation] += 1
        if self.mode == "lost":  # apply the call for real, then lose the answer
            event_name = kwargs.pop("event_name", f"before-send.dynamodb.{operation}")
            botocore_stubber(event_name, request, **kwargs)
        # botocore calls *every* before-send handler and keeps the first answer, so moto's stub
        # (registered after this one) would still apply the call: give the request an address
        # the stub does not serve, and it leaves it alone.
        url, request.url = request.url, _NOWHERE
        status, code = _ERRORS[self.mode]
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected fault"})
        return AWSResponse(
            url,
            status,
            _headers(),
            MockRawResponse(body.encode()),
        )


@contextlib.contextmanager
def quicker_retries(factor: float) -> Iterator[None]:
    """botocore's retry delays times ``factor`` while the block runs. Standard mode waits up to
    1 s × 2^attempt after a throttle (25 ms × 2^attempt after a DynamoDB 5xx), so a short chaos run
    whose injected throttles fall on its critical path sat 10–30 s in those sleeps. The retries still
    happen, as many and through the same handler; only the wait between them is shorter. The long
    runs (`make chaos`) keep botocore's own delays."""
    real = ExponentialBackoff.delay_amount

    def scaled(self: ExponentialBackoff, context: Any) -> float:
        return float(real(self, context)) * factor

    ExponentialBackoff.delay_amount = scaled  # type: ignore[method-assign]
    try:
        yield
    finally:
        ExponentialBackoff.delay_amount = real  # type: ignore[method-assign]
