"""The live event stream of one execution: ``GET /api/v1/dag-executions/{id}/events``.

An ASGI app that runs under uvicorn locally and behind the Lambda Web Adapter in AWS (a Python
Lambda cannot stream by itself). Per connection:

1. checks: resume point (400), ``types`` filter (400), stream token (401/403), concurrent-stream
   limits per client IP and per execution (limits.py: 429 + Retry-After), the execution exists (404), and a
   resume point already at the terminal event (204 — a browser's EventSource then stops for good);
   each refusal is a domain error answered through the one error map (chalicelib/http/errors.py);
2. ``retry:``, then either a snapshot (an ``execution.updated`` with ``"snapshot": true``, id = the
   last seq) or, when resuming, every stored event after the resume point;
3. live events (``id: <seq>``; filtered by ``types``, ids stay the real seq), a ``heartbeat`` (no id)
   after ``heartbeat_seconds`` of silence;
   with ``Accept-Encoding: gzip`` (compression.py) every message of 2. and 3. goes out
   compressed and flushed, so each still reaches the client the moment it is written;
4. the end: right after the terminal event, after ``max_stream_seconds`` (the client reconnects with
   Last-Event-ID and loses nothing), when the client is too slow (its buffer overflowed, or one write
   blocked for ``send_timeout_seconds``), or at once when the client disconnects — where the server
   is told: Lambda never tells (docs/sse.md, "What a closed tab costs").

The request is read once into a ``StreamRequest``. Events come from sources.py: the hub (hub.py:
one poller per execution for all its clients) or, with the hub off, a poller per connection (kept
as the benchmark's baseline).

What Starlette does here: its Router sends the route to this app (app.py), its ``Request`` parses
the query and headers, its ``JSONResponse`` writes the error answers. CORS is written here by hand,
because Starlette's ``CORSMiddleware`` answers differently from what clients of this route get:
it answers a preflight 200 with a body ``OK`` (here: 204, no body) and only when it carries
``Access-Control-Request-Method`` (here: every OPTIONS); it refuses one with a text body (here:
400, nothing); it lists four request headers in a preflight's ``Vary`` (here: ``Origin``) and adds
the CORS-safelisted ones to ``Access-Control-Allow-Headers`` (here: ``authorization,
last-event-id``); it answers ``*`` when the list holds ``*`` (here: the origin, echoed); it adds
``Vary: Origin`` to answers for other origins (here: nothing). And it wraps ``send``, so every
event of every stream would go through one more Python call; here the CORS headers are added once,
to the response start.

Deliberately raw ASGI for the streaming part: no response object, no task group, one small task
watching for the disconnect — an idle connection costs a few kilobytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..config import Settings
from ..domain import events as ev
from ..domain import wire
from ..domain.errors import BadRequest, DagcastError, MethodNotAllowed
from ..domain.model import now_ms
from ..domain.typefilter import TypeFilter
from ..http.errors import answer_for
from ..persistence.capacity import ReadMeter
from ..persistence.executions import DynamoStore
from ..tenants import DEFAULT_TENANT
from .auth import TokenSigner
from .client_ip import client_ip
from .compression import GZIP_HEADERS, GzipStream, accepts_gzip
from .hub import Subscriber, hub_for, metered
from .limits import StreamLimits
from .sources import HubSource, PollSource, ReplaySource, Snapshots, Source, log_tail

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/dag-executions/{execution_id}/events"
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),
]
PREFLIGHT_HEADERS = [
    (b"access-control-allow-methods", b"GET, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, last-event-id"),
    (b"access-control-max-age", b"600"),
]
Headers = list[tuple[bytes, bytes]]


def resume_point(request: Request) -> int | None:
    """Where a client resumes: ``Last-Event-ID`` (header), ``?lastEventId=`` or ``?since=``.

    None means "no resume point: start with a snapshot". ``since=0`` replays the whole history.
    The header wins: a browser's EventSource sends it on reconnect to the URL it was given.
    """
    for name, raw in (
        ("Last-Event-ID header", request.headers.get("last-event-id")),
        ("lastEventId", request.query_params.get("lastEventId")),
        ("since", request.query_params.get("since")),
    ):
        if raw is None:
            continue
        value = raw.strip()
        # isascii(): str.isdigit() is also true for '¹' or '٣', which int() refuses (a 500)
        if not (value.isascii() and value.isdigit()) or len(value) > 15:
            raise BadRequest(f"{name} must be a non-negative integer event id (a seq), got {raw[:40]!r}")
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What one GET of the events route asks for, read from the request once: the checks and the
    stream use this and keep nothing else of the request for the stream's life."""

    execution_id: str
    after: int | None  # the resume point; None: start with a snapshot
    types: TypeFilter | None  # None: every type
    token: str | None  # the stream token: ?token= or Authorization: Bearer
    client_ip: str
    gzip: bool = False  # Accept-Encoding allows gzip: the stream is compressed (compression.py)
    tenant: str = DEFAULT_TENANT  # whose stream it is: the token's (counted against its maxStreams)

    @classmethod
    def parse(cls, scope: Scope, trust_proxy: bool) -> StreamRequest:
        """Raises BadRequest (the resume point) or InvalidTypeFilter (``types``), in that order."""
        request = Request(scope)
        return cls(
            execution_id=str(scope["path_params"]["execution_id"]),
            after=resume_point(request),
            types=TypeFilter.parse(request.query_params.get("types")),
            token=_token(request),
            client_ip=_client_ip(request, trust_proxy),
            gzip=accepts_gzip(",".join(request.headers.getlist("accept-encoding"))),
        )


def _token(request: Request) -> str | None:
    token = request.query_params.get("token")
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token


def _client_ip(request: Request, trust_proxy: bool) -> str:
    """Behind the function URL: the Web Adapter's request context, else X-Forwarded-For (client_ip.py)."""
    return client_ip(request.headers, request.client.host if request.client else None, trust_proxy)


def error_response(exc: DagcastError, cors: Headers | None = None) -> Response:
    """The answer the error map gives to ``exc``; an error it does not map is raised again (the
    server answers 500 and logs it, as for any crash)."""
    answer = answer_for(exc)
    if answer is None:
        raise exc
    response = JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
    response.raw_headers.extend(cors or ())
    return response


@dataclass(frozen=True, slots=True)
class _Opening:
    """How a stream begins: events after ``start``, first the snapshot frame when there is one."""

    start: int
    snapshot: bytes | None
    finished: bool  # the terminal event is stored: replay from the table, then end
    tail: int | None = None  # the log's last seq as read (a consistent read) when resuming


class _Stream:
    """One open stream: what the ticker and the disconnect watcher need to know about it."""

    __slots__ = ("closed", "gzip", "ready", "stalled", "sub", "task", "wake_at", "writing_since")

    def __init__(
        self, task: asyncio.Task[Any], sub: Subscriber | None = None, gzip: GzipStream | None = None
    ) -> None:
        self.task = task
        self.gzip = gzip  # every write goes through it when the client asked for gzip
        self.sub = sub
        self.ready = sub.ready if sub is not None else None  # set by the ticker when a wake is due
        self.closed = asyncio.Event()  # the client disconnected
        self.wake_at = 0.0
        self.writing_since = 0.0
        self.stalled = False


class EventsEndpoint:
    """The ASGI app behind EVENTS_PATH."""

    def __init__(self, settings: Settings, store_factory: Callable[[], DynamoStore]) -> None:
        self.settings = settings
        self.reads = ReadMeter()  # the stream's DynamoDB reads and their RCU (stats())
        store_factory = metered(store_factory, self.reads)
        self._store_factory = store_factory
        self._store: DynamoStore | None = None
        self.hub = hub_for(settings, store_factory) if settings.hub else None
        self.signer = (
            TokenSigner(settings.stream_key(), settings.token_ttl_seconds) if settings.auth else None
        )
        self.tenants = settings.tenant_policies()
        self.limits = StreamLimits.from_settings(settings, lambda: self.store)
        self.snapshots = Snapshots(lambda: self.store, self.hub, settings.retry_ms)
        self.direct_polls = 0
        self.open_streams = 0
        self._streams: set[_Stream] = set()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def store(self) -> DynamoStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def cors_headers(self, origin: str | None) -> Headers:
        allowed = self.settings.cors_origins
        if not origin or not allowed or (origin not in allowed and "*" not in allowed):
            return []
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
        cors = self.cors_headers(origin)  # added to every answer, streamed or not
        if scope["method"] == "OPTIONS":
            return await self._preflight(send, cors)
        task = asyncio.current_task()
        assert task is not None
        try:
            request = self._admit(scope)
            # A slot is taken last, so a refused request holds none; a stream whose slot was
            # taken over (limits.py) is ended through its task, so the caps hold.
            admission = await self.limits.acquire(
                request.client_ip,
                request.execution_id,
                task.cancel,
                (request.tenant, self.tenants.policy(request.tenant).maxStreams),
            )
        except DagcastError as exc:
            return await error_response(exc, cors)(scope, receive, send)
        try:
            await self._serve(request, cors, scope, receive, send)
        except asyncio.CancelledError:
            if not admission.lost:
                raise
            task.uncancel()  # the client resumes with Last-Event-ID (and may be refused: 429)
        finally:
            await self.limits.release(admission)

    async def _preflight(self, send: Send, cors: Headers) -> None:
        """204 with the route's CORS answer for an allowed origin, else 400 with nothing."""
        status = 204 if cors else 400
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": PREFLIGHT_HEADERS + cors if cors else [],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _admit(self, scope: Scope) -> StreamRequest:
        """The request, read and checked: method, resume point, types, token (the limits come
        after, in ``__call__``)."""
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET (text/event-stream)", allow="GET")
        request = StreamRequest.parse(scope, self.settings.trust_proxy)
        if self.signer is not None:
            tenant = self.signer.verify(request.token, request.execution_id)
            request = dataclasses.replace(request, tenant=tenant)
        return request

    async def _serve(
        self, request: StreamRequest, cors: Headers, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            opening = await self._opening(request)
        except DagcastError as exc:  # ExecutionNotFound
            return await error_response(exc, cors)(scope, receive, send)
        if opening is None:  # resuming at the terminal event: nothing will follow
            done = Response(status_code=204)
            done.raw_headers.extend(cors)
            return await done(scope, receive, send)
        encoding = GZIP_HEADERS if request.gzip else []
        await send(
            {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS + encoding + cors}
        )
        await self._stream(request, opening, receive, send)

    async def _opening(self, request: StreamRequest) -> _Opening | None:
        """Where the stream starts (None: the resume point is the terminal event, answer 204)."""
        if request.after is None:
            start, snapshot, tail_type = await self.snapshots.get(request.execution_id)
            return _Opening(start, snapshot, tail_type in ev.TERMINAL_TYPES)
        feed = self.snapshots.feed(request.execution_id)
        tail_seq, tail_type = await log_tail(lambda: self.store, feed, request.execution_id, request.after)
        finished = tail_type in ev.TERMINAL_TYPES
        if finished and request.after >= tail_seq:
            return None
        return _Opening(request.after, None, finished, tail_seq)

    def _source(self, execution_id: str, opening: _Opening) -> Source:
        if opening.finished:
            return ReplaySource(self.store, execution_id, opening.start)
        if self.hub is not None:
            feed, sub = self.hub.subscribe(execution_id, opening.start, opening.tail)
            return HubSource(self.store, execution_id, opening.start, feed, sub)
        return PollSource(self.store, execution_id, opening.start, self.settings.poll_seconds, self._polled)

    def _polled(self) -> None:
        self.direct_polls += 1

    async def _stream(self, request: StreamRequest, opening: _Opening, receive: Receive, send: Send) -> None:
        """The body of a 200: the first frame (the snapshot, or ``retry:``), then the events."""
        source = self._source(request.execution_id, opening)
        task = asyncio.current_task()
        assert task is not None
        st = _Stream(
            task,
            source.subscriber if isinstance(source, HubSource) else None,
            GzipStream() if request.gzip else None,
        )
        watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(receive, st))
        self.open_streams += 1
        self._track(st)
        try:
            first = (
                opening.snapshot
                if opening.snapshot is not None
                else wire.encode_retry(self.settings.retry_ms)
            )
            if not await self._write(send, first, st):
                return
            if opening.snapshot is not None and opening.finished:
                return
            await self._pump(send, request, source, st)
        finally:
            self._streams.discard(st)
            self.open_streams -= 1
            watcher.cancel()
            if isinstance(source, HubSource):
                source.leave()  # frees its buffer at once, even if the feed has ended
            end = st.gzip.finish() if st.gzip is not None else b""  # the gzip trailer
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": end, "more_body": False})

    async def _watch_disconnect(self, receive: Receive, st: _Stream) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                st.closed.set()
                if st.sub is not None:
                    st.sub.close()
                return

    async def _write(self, send: Send, chunk: bytes, st: _Stream) -> bool:
        # No per-write timeout object (this runs per event per client): the ticker cancels a
        # write that has been blocked for send_timeout_seconds (a client that does not read).
        st.writing_since = asyncio.get_running_loop().time()
        if st.gzip is not None:  # compressed and flushed: the client decodes all of it at once
            chunk = st.gzip.encode(chunk)
        try:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if st.stalled:
                st.task.uncancel()
                return False  # close; the client will replay from Last-Event-ID
            raise
        finally:
            st.writing_since = 0.0
        return True

    def _track(self, st: _Stream) -> None:
        self._streams.add(st)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        """One task for all streams: wakes streams due for a heartbeat or their end, and cancels
        writes blocked longer than send_timeout_seconds."""
        loop = asyncio.get_running_loop()
        s = self.settings
        interval = max(0.01, min(1.0, s.heartbeat_seconds / 4, s.send_timeout_seconds / 4))
        try:
            while self._streams:
                await asyncio.sleep(interval)
                now = loop.time()
                for st in tuple(self._streams):
                    if st.ready is not None and now >= st.wake_at:
                        st.ready.set()
                    if (
                        st.writing_since
                        and now - st.writing_since >= s.send_timeout_seconds
                        and not st.stalled
                    ):
                        st.stalled = True
                        st.task.cancel()
        finally:
            self._ticker = None

    async def _pump(self, send: Send, request: StreamRequest, source: Source, st: _Stream) -> None:
        """Events as they come, filtered by ``types``, and a heartbeat after each silence, until
        the terminal event, the stream's deadline, the client leaving or falling behind."""
        loop = asyncio.get_running_loop()
        heartbeat = self.settings.heartbeat_seconds
        deadline = loop.time() + self.settings.max_stream_seconds
        last_sent = loop.time()
        types, sub = request.types, st.sub
        while not st.closed.is_set():
            now = loop.time()
            if now >= deadline:
                return
            st.wake_at = min(deadline, last_sent + heartbeat)
            # The hub's source waits on its subscriber's event, which the ticker sets when due.
            batch = await source.get(None if st.ready is not None else st.wake_at - now)
            if batch is None or st.closed.is_set() or (sub is not None and sub.overflowed):
                return
            for event in batch:
                if types is None or types.matches(event.type):
                    if not await self._write(send, event.frame, st):
                        return
                    last_sent = loop.time()
                if event.type in ev.TERMINAL_TYPES:
                    if types is not None and not types.matches(event.type):
                        # The client filtered the end out: an id-only message moves its
                        # Last-Event-ID to the terminal event without an event (WHATWG: the id is
                        # kept, an empty message is not dispatched), so its reconnect gets the 204
                        # end instead of the same replay again, every retry, for ever.
                        await self._write(send, f"id: {event.seq}\n\n".encode(), st)
                    return
            if loop.time() - last_sent >= heartbeat:
                beat = ev.heartbeat(request.execution_id, now_ms())
                if not await self._write(send, wire.encode_sse(wire.dumps(beat), event=ev.HEARTBEAT), st):
                    return
                last_sent = loop.time()

    def stats(self) -> dict[str, Any]:
        return {
            "openStreams": self.open_streams,
            "hub": self.hub.stats() if self.hub is not None else None,
            "directPolls": self.direct_polls,
            "reads": self.reads.stats(),
            "leases": self.limits.stats(),
        }
