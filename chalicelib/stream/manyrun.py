"""The many-run stream: ``GET /api/v1/dag-executions/events[?tag=…]`` — the execution-level events
of every execution of the tenant (with all the ``tag``s asked for), live, resumable.

Per connection: checks (tags 400, token 401/403 — a token from ``POST /api/v1/stream-tokens`` for
this tenant and these tags —, ``Last-Event-ID`` 400 unless this stream gave it to this tenant,
concurrent streams 429: the tenant's many-run streams count together as one execution's do); then
``retry:`` and every entry of the tenant's activity log (persistence/activity.py) after the resume
point (none: from now), polled once a second, each sent with its signed position as ``id``
(positions.py). ``execution.updated`` goes out at most once per second per execution
(``UpdateCoalescer``: the newest one held back is sent when the second is over); a seq already
sent for an execution is not sent again (a late write read twice). No id a client gets is past an
update held back (``UpdateCoalescer.safe``): a cut then resumes before it, and may repeat what
followed it (clients keep the highest seq per execution). A heartbeat comment every
``heartbeat_seconds`` carries the position read so far (so bounded), so an idle client resumes
from there. The stream ends after ``max_stream_seconds`` or when the client leaves.

Not here: one execution's stream (endpoint.py, which this borrows its checks and CORS from); a
shared poller per tenant (each connection polls the tenant's 8 shards itself: the hub is per
execution); gzip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ..domain import events as ev
from ..domain import wire
from ..domain.errors import DagcastError, MethodNotAllowed
from ..domain.model import now_ms
from ..domain.tagquery import tag_query
from ..persistence.activity import SETTLE_MS, Activity, end_of
from ..tenants import DEFAULT_TENANT
from .endpoint import STREAM_HEADERS, EventsEndpoint, _client_ip, _token, error_response
from .positions import PositionCodec

MANY_RUN_PATH: Final = "/api/v1/dag-executions/events"
UPDATE_INTERVAL_MS: Final = 1_000
POLL_SECONDS: Final = 1.0
_REMEMBERED = 10_000  # executions whose last sent seq a stream keeps


def parse_tags(request: Request) -> tuple[str, ...]:
    """``?tag=`` repeated: an execution must carry all of them (the search route's rule)."""
    return tag_query(request.query_params.getlist("tag"))


@dataclass
class UpdateCoalescer:
    """Which entries a stream sends, and when: ``execution.updated`` at most once per
    ``interval_ms`` per execution (the newest held back, sent when the interval is over, dropped
    when the execution's end comes first), and no seq twice."""

    interval_ms: int = UPDATE_INTERVAL_MS
    last_update: dict[str, int] = field(default_factory=dict)
    pending: dict[str, Activity] = field(default_factory=dict)
    floors: dict[str, str] = field(default_factory=dict)  # where a held update was read from
    sent: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def admit(self, entry: Activity, now: int, before: str = "") -> list[Activity]:
        """What to send now of ``entry``, read after the position ``before``."""
        if entry.seq <= self.sent.get(entry.execution_id, 0):
            return []
        execution_id = entry.execution_id
        if entry.type == ev.EXECUTION_UPDATED:
            if now - self.last_update.get(execution_id, now - self.interval_ms) < self.interval_ms:
                held = self.pending.get(execution_id)
                if held is None or held.seq < entry.seq:
                    self.pending[execution_id] = entry
                    self.floors.setdefault(execution_id, before)
                return []
            self.last_update[execution_id] = now
        else:
            self.pending.pop(execution_id, None)
            self.floors.pop(execution_id, None)
            if entry.type in ev.TERMINAL_TYPES:
                self.last_update.pop(execution_id, None)
        self._mark(entry)
        return [entry]

    def due(self, now: int) -> list[Activity]:
        out = []
        for execution_id, entry in list(self.pending.items()):
            if now - self.last_update.get(execution_id, 0) >= self.interval_ms:
                del self.pending[execution_id]
                del self.floors[execution_id]
                self.last_update[execution_id] = now
                self._mark(entry)
                out.append(entry)
        return out

    def safe(self, position: str) -> str:
        """The id a frame read at ``position`` may carry: not past where a held update was read."""
        return min([position, *self.floors.values()])

    def _mark(self, entry: Activity) -> None:
        self.sent[entry.execution_id] = entry.seq
        self.sent.move_to_end(entry.execution_id)
        while len(self.sent) > _REMEMBERED:
            self.sent.popitem(last=False)


@dataclass(frozen=True, slots=True)
class ManyRunRequest:
    tags: tuple[str, ...]
    last_event_id: str | None
    token: str | None
    client_ip: str
    tenant: str = DEFAULT_TENANT


class ManyRunEndpoint:
    """The ASGI app behind MANY_RUN_PATH; the per-execution endpoint lends it its store, token
    signer, stream limits and CORS answer."""

    def __init__(self, events: EventsEndpoint) -> None:
        self.events = events
        self.settings = events.settings
        self.positions = PositionCodec(self.settings.stream_key())
        self.open_streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
        cors = self.events.cors_headers(origin)
        if scope["method"] == "OPTIONS":
            return await self.events._preflight(send, cors)
        task = asyncio.current_task()
        assert task is not None
        try:
            request = self._admit(scope)
            after = self._resume(request)
            admission = await self.events.limits.acquire(
                request.client_ip,
                f"*tenant:{request.tenant}",
                task.cancel,
                (request.tenant, self.events.tenants.policy(request.tenant).maxStreams),
            )
        except DagcastError as exc:
            return await error_response(exc, cors)(scope, receive, send)
        self.open_streams += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS + cors})
            await self._stream(request, after, receive, send)
        except asyncio.CancelledError:
            if not admission.lost:
                raise
            task.uncancel()
        finally:
            self.open_streams -= 1
            await self.events.limits.release(admission)

    def _admit(self, scope: Scope) -> ManyRunRequest:
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET (text/event-stream)", allow="GET")
        request = Request(scope)
        parsed = ManyRunRequest(
            tags=parse_tags(request),
            last_event_id=request.headers.get("last-event-id") or request.query_params.get("lastEventId"),
            token=_token(request),
            client_ip=_client_ip(request, self.settings.trust_proxy),
        )
        signer = self.events.signer
        tenant = signer.verify_query(parsed.token, parsed.tags) if signer is not None else DEFAULT_TENANT
        return ManyRunRequest(parsed.tags, parsed.last_event_id, parsed.token, parsed.client_ip, tenant)

    def _resume(self, request: ManyRunRequest) -> str:
        """The position to read after: the client's, or now (a new stream has no backlog)."""
        if request.last_event_id is None:
            return end_of(now_ms() - SETTLE_MS)
        return self.positions.decode(request.last_event_id, request.tenant)

    async def _stream(self, request: ManyRunRequest, after: str, receive: Receive, send: Send) -> None:
        closed = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            closed.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self._pump(request, after, send, closed)
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, request: ManyRunRequest, after: str, send: Send, closed: asyncio.Event) -> None:
        """Poll, send, hold back, beat — until the deadline or the client leaves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_stream_seconds
        last_sent = loop.time()
        coalescer = UpdateCoalescer()
        wanted = set(request.tags)
        log = self.events.store.activity
        # ``retry:`` and the start's id (no data: not dispatched), so a client cut before its first
        # event resumes from where it began, not from a later "now"
        start = self.positions.encode(after, request.tenant)
        await self._write(send, f"retry: {int(self.settings.retry_ms)}\nid: {start}\n\n".encode())
        while not closed.is_set() and loop.time() < deadline:
            cutoff = now_ms() - SETTLE_MS
            batch = await run_in_threadpool(log.read, request.tenant, after, cutoff)
            frames: list[bytes] = []
            for entry in batch:
                before, after = after, entry.position
                if wanted.issubset(entry.tags):
                    for out in coalescer.admit(entry, now_ms(), before):
                        frames.append(self._frame(out, coalescer.safe(out.position), request.tenant))
            if len(batch) < 200:  # everything up to the cutoff has been read
                after = max(after, end_of(cutoff))
            for out in coalescer.due(now_ms()):
                frames.append(self._frame(out, coalescer.safe(after), request.tenant))
            if not frames and loop.time() - last_sent >= self.settings.heartbeat_seconds:
                moved = self.positions.encode(coalescer.safe(after), request.tenant)
                frames.append(f": heartbeat\nid: {moved}\n\n".encode())
            for frame in frames:
                await self._write(send, frame)
                last_sent = loop.time()
            if len(batch) < 200:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(closed.wait(), POLL_SECONDS)

    def _frame(self, entry: Activity, position: str, tenant: str) -> bytes:
        """The stored event as it is, with the position to resume from as ``id``."""
        return wire.encode_sse(entry.data, event=entry.type, id=self.positions.encode(position, tenant))

    @staticmethod
    async def _write(send: Send, chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
