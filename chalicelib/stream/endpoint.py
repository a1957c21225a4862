"""The live event stream of one execution: ``GET /api/v1/dag-executions/{id}/events``.

An ASGI app (Starlette for routing and CORS) that runs under uvicorn locally and behind the Lambda
Web Adapter in AWS (a Python Lambda cannot stream by itself). Per connection:

1. checks: resume point (400), ``types`` filter (400), stream token (401/403), concurrent-stream
   limits per client IP and per execution (429 + Retry-After), the execution exists (404), and a
   resume point already at the terminal event (204 — a browser's EventSource then stops for good);
2. ``retry:``, then either a snapshot (an ``execution.updated`` with ``"snapshot": true``, id = the
   last seq) or, when resuming, every stored event after the resume point;
3. live events (``id: <seq>``; filtered by ``types``, ids stay the real seq), a ``heartbeat`` (no id)
   after ``heartbeat_seconds`` of silence;
4. the end: right after the terminal event, after ``max_stream_seconds`` (the client reconnects with
   Last-Event-ID and loses nothing), when the client is too slow (its buffer overflowed, or one write
   blocked for ``send_timeout_seconds``), or at once when the client disconnects.

Events come from the hub (hub.py: one poller per execution for all its clients) or, with the hub
off, from a poller per connection (kept as the benchmark's baseline).

Deliberately raw ASGI for the streaming part: no response object, no task group, one small task
watching for the disconnect — an idle connection costs a few kilobytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..config import Settings
from ..domain import events as ev
from ..domain.errors import BadRequest, DagcastError, MethodNotAllowed, NoRoute, TooManyStreams
from ..http.errors import answer_for
from ..orchestration import build_snapshot
from ..store import DynamoStore
from .auth import TokenSigner
from .hub import PAGE, Feed, Hub, Subscriber

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/dag-executions/{execution_id}/events"
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),
]


TypeFilter = ev.TypeFilter


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


# A stream refused for the limits may try again this much later (Retry-After): streams end all
# the time (terminal events, max_stream_seconds), so a slot is soon free.
RETRY_AFTER_SECONDS = 5


class Limits:
    """Concurrent streams per client IP and per execution, in this process."""

    def __init__(self, per_ip: int, per_execution: int) -> None:
        self.per_ip = per_ip
        self.per_execution = per_execution
        self.by_ip: dict[str, int] = {}
        self.by_execution: dict[str, int] = {}

    def acquire(self, ip: str, execution_id: str) -> None:
        """Count one more stream, or raise TooManyStreams when either limit is reached."""
        if self.by_ip.get(ip, 0) >= self.per_ip:
            raise TooManyStreams(
                f"too many concurrent streams from {ip} (limit {self.per_ip})", RETRY_AFTER_SECONDS
            )
        if self.by_execution.get(execution_id, 0) >= self.per_execution:
            raise TooManyStreams(
                f"too many concurrent streams for this execution (limit {self.per_execution})",
                RETRY_AFTER_SECONDS,
            )
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        self.by_execution[execution_id] = self.by_execution.get(execution_id, 0) + 1

    def release(self, ip: str, execution_id: str) -> None:
        for table, key in ((self.by_ip, ip), (self.by_execution, execution_id)):
            left = table.get(key, 0) - 1
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)


def snapshot_event(store: DynamoStore, execution_id: str) -> tuple[dict[str, Any], str | None]:
    """The snapshot event and the type of the last stored event (to know if it was terminal)."""
    tail = store.last_event(execution_id)  # read before the state: the state is never older
    meta = store.get_meta(execution_id)
    tasks = store.get_tasks(execution_id)
    seq = int(tail["seq"]) if tail else 0
    body = build_snapshot(meta, tasks, seq)
    body.update(type=ev.EXECUTION_UPDATED, snapshot=True, timestamp=ev.now_ms())
    return body, (str(tail["type"]) if tail else None)


def error_response(exc: DagcastError, cors: list[tuple[bytes, bytes]] = ()) -> Response:  # type: ignore[assignment]
    """The answer the error map gives to ``exc``; an error it does not map is raised again (the
    server answers 500 and logs it, as for any crash)."""
    answer = answer_for(exc)
    if answer is None:
        raise exc
    response = JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
    response.raw_headers.extend(cors)
    return response


class _Stream:
    """What the ticker needs to know about one open stream."""

    __slots__ = ("ready", "stalled", "task", "wake_at", "writing_since")

    def __init__(self, task: asyncio.Task[Any], ready: asyncio.Event | None) -> None:
        self.task = task
        self.ready = ready
        self.wake_at = 0.0
        self.writing_since = 0.0
        self.stalled = False


class EventsEndpoint:
    """The ASGI app behind EVENTS_PATH."""

    def __init__(self, settings: Settings, store_factory: Callable[[], DynamoStore]) -> None:
        self.settings = settings
        self._store_factory = store_factory
        self._store: DynamoStore | None = None
        self.hub = (
            Hub(store_factory, settings.poll_seconds, settings.idle_poll_seconds, settings.subscriber_buffer)
            if settings.hub
            else None
        )
        self.signer = (
            TokenSigner(settings.stream_secret, settings.token_ttl_seconds) if settings.auth else None
        )
        self.limits = Limits(settings.max_streams_per_ip, settings.max_streams_per_execution)
        self.direct_polls = 0
        self.open_streams = 0
        self._streams: set[_Stream] = set()
        self._snapshots: dict[str, asyncio.Task[tuple[int, bytes, str | None]]] = {}
        self._ticker: asyncio.Task[None] | None = None

    @property
    def store(self) -> DynamoStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def client_ip(self, request: Request) -> str:
        if self.settings.trust_proxy:
            forwarded = request.headers.get("x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    def cors_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
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
            preflight = [
                (b"access-control-allow-methods", b"GET, OPTIONS"),
                (b"access-control-allow-headers", b"authorization, last-event-id"),
                (b"access-control-max-age", b"600"),
            ]
            status = 204 if cors else 400
            await send(
                {"type": "http.response.start", "status": status, "headers": preflight + cors if cors else []}
            )
            return await send({"type": "http.response.body", "body": b""})
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed("use GET (text/event-stream)", allow="GET")
            request = Request(scope)
            execution_id = str(scope["path_params"]["execution_id"])
            after = resume_point(request)
            types = TypeFilter.parse(request.query_params.get("types"))
            if self.signer is not None:
                token = request.query_params.get("token")
                auth = request.headers.get("authorization", "")
                if not token and auth.lower().startswith("bearer "):
                    token = auth[7:].strip()
                self.signer.verify(token, execution_id)
            ip = self.client_ip(request)
            self.limits.acquire(ip, execution_id)
        except DagcastError as exc:
            return await error_response(exc, cors)(scope, receive, send)
        del request  # nothing of the request is kept for the life of the stream
        try:
            await self._serve(scope, receive, send, cors, execution_id, after, types)
        finally:
            self.limits.release(ip, execution_id)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        cors: list[tuple[bytes, bytes]],
        execution_id: str,
        after: int | None,
        types: TypeFilter | None,
    ) -> None:
        snapshot: bytes | None = None  # the encoded snapshot frame
        feed = self.hub.feeds.get(execution_id) if self.hub is not None else None
        try:
            if after is None:
                cached = feed.snapshot if feed is not None else None
                if cached is not None and feed is not None and cached[0] == feed.last_seq:
                    start, snapshot, tail_type = cached
                else:
                    start, snapshot, tail_type = await self._shared_snapshot(execution_id)
                    feed = self.hub.feeds.get(execution_id) if self.hub is not None else None
                    if feed is not None and start == feed.last_seq:
                        # Connections arriving before the next event share this snapshot.
                        feed.snapshot = (start, snapshot, tail_type)
                finished = tail_type in ev.TERMINAL_TYPES
            else:
                # The feed can vouch only for seqs it has seen: a resume point beyond its last_seq
                # (a client that read further on another process, or before this one restarted)
                # may be the terminal event, which must get 204 — not a stream that skips every
                # event up to it and then only sends heartbeats. Ask the table instead.
                if (
                    feed is not None
                    and feed.terminal_seq is None
                    and feed.last_seq >= 1
                    and after <= feed.last_seq
                ):
                    tail_seq, tail_type = feed.last_seq, None
                else:
                    await run_in_threadpool(self.store.get_meta, execution_id)  # 404 if unknown
                    tail = await run_in_threadpool(self.store.last_event, execution_id)
                    tail_seq = int(tail["seq"]) if tail else 0
                    tail_type = str(tail["type"]) if tail else None
                finished = tail_type in ev.TERMINAL_TYPES
                if finished and after >= tail_seq:
                    done = Response(status_code=204)
                    done.raw_headers.extend(cors)
                    return await done(scope, receive, send)
                start = after
        except DagcastError as exc:  # ExecutionNotFound
            return await error_response(exc, cors)(scope, receive, send)

        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS + cors})
        sub: Subscriber | None = None
        joined: Feed | None = None
        source: Source
        if finished:
            source = ReplaySource(self.store, execution_id, start)
        elif self.hub is not None:
            joined, sub = self.hub.subscribe(execution_id, start)
            source = HubSource(self.store, execution_id, start, joined, sub)
        else:
            source = PollSource(self, execution_id, start)
        closed = asyncio.Event()
        watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(receive, closed, sub))
        self.open_streams += 1
        task = asyncio.current_task()
        assert task is not None
        st = _Stream(task, sub.ready if sub is not None else None)
        self._track(st)
        try:
            first = snapshot if snapshot is not None else ev.encode_retry(self.settings.retry_ms)
            if not await self._write(send, first, st):
                return
            if snapshot is not None and finished:
                return
            await self._pump(send, execution_id, source, types, closed, sub, st)
        finally:
            self._streams.discard(st)
            self.open_streams -= 1
            watcher.cancel()
            if joined is not None and sub is not None:
                Hub.unsubscribe(joined, sub)  # frees its buffer at once, even if the feed has ended
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch_disconnect(
        self, receive: Receive, closed: asyncio.Event, sub: Subscriber | None
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                closed.set()
                if sub is not None:
                    sub.close()
                return

    async def _shared_snapshot(self, execution_id: str) -> tuple[int, bytes, str | None]:
        """One snapshot read at a time per execution: connections that arrive while it is read
        share it (a burst of 10,000 connects costs one read, not 10,000). Sharing is safe: every
        event after the snapshot's seq is streamed to each of them."""
        pending = self._snapshots.get(execution_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(self._read_snapshot(execution_id))
            self._snapshots[execution_id] = pending
            pending.add_done_callback(lambda _: self._snapshots.pop(execution_id, None))
        return await asyncio.shield(pending)

    async def _read_snapshot(self, execution_id: str) -> tuple[int, bytes, str | None]:
        body, tail_type = await run_in_threadpool(snapshot_event, self.store, execution_id)
        start = int(body["seq"])
        frame = ev.encode_sse(
            ev.dumps(body), event=ev.EXECUTION_UPDATED, id=start, retry_ms=self.settings.retry_ms
        )
        return start, frame, tail_type

    async def _write(self, send: Send, chunk: bytes, st: _Stream) -> bool:
        # No per-write timeout object (this runs per event per client): the ticker cancels a
        # write that has been blocked for send_timeout_seconds (a client that does not read).
        st.writing_since = asyncio.get_running_loop().time()
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

    async def _pump(
        self,
        send: Send,
        execution_id: str,
        source: Source,
        types: TypeFilter | None,
        closed: asyncio.Event,
        sub: Subscriber | None,
        st: _Stream,
    ) -> None:
        loop = asyncio.get_running_loop()
        heartbeat = self.settings.heartbeat_seconds
        deadline = loop.time() + self.settings.max_stream_seconds
        last_sent = loop.time()
        while not closed.is_set():
            now = loop.time()
            if now >= deadline:
                return
            st.wake_at = min(deadline, last_sent + heartbeat)
            # The hub's source waits on its subscriber's event, which the ticker sets when due.
            batch = await source.get(None if st.ready is not None else st.wake_at - now)
            if batch is None or closed.is_set() or (sub is not None and sub.overflowed):
                return
            for event in batch:
                if types is None or types.matches(event.type):
                    if not await self._write(send, event.frame, st):
                        return
                    last_sent = loop.time()
                if event.type in ev.TERMINAL_TYPES:
                    return
            if loop.time() - last_sent >= heartbeat:
                beat = {"type": ev.HEARTBEAT, "executionId": execution_id, "timestamp": ev.now_ms()}
                if not await self._write(send, ev.encode_sse(ev.dumps(beat), event=ev.HEARTBEAT), st):
                    return
                last_sent = loop.time()

    def stats(self) -> dict[str, Any]:
        return {
            "openStreams": self.open_streams,
            "hub": self.hub.stats() if self.hub is not None else None,
            "directPolls": self.direct_polls,
        }


class Source:
    """Where a stream's events come from. ``get(timeout)`` returns the next events in seq order
    (an empty list if none came within ``timeout``) or None when there will be no more."""

    async def get(self, timeout: float | None) -> list[ev.Encoded] | None:
        raise NotImplementedError


class ReplaySource(Source):
    """Stored events after a point, for an execution that has already ended."""

    def __init__(self, store: DynamoStore, execution_id: str, after: int) -> None:
        self._store, self._id, self._last = store, execution_id, after

    async def get(self, timeout: float | None) -> list[ev.Encoded] | None:
        batch = await run_in_threadpool(self._store.events_after, self._id, self._last)
        if not batch:
            return None
        self._last = int(batch[-1]["seq"])
        return [ev.encode_event(e) for e in batch]


class PollSource(Source):
    """No hub: this connection polls the table itself (the baseline the hub is measured against)."""

    def __init__(self, endpoint: EventsEndpoint, execution_id: str, after: int) -> None:
        self._endpoint, self._id, self._last = endpoint, execution_id, after

    async def get(self, timeout: float | None) -> list[ev.Encoded] | None:
        loop = asyncio.get_running_loop()
        until = loop.time() + (timeout or 0.0)
        while True:
            batch = await run_in_threadpool(self._endpoint.store.events_after, self._id, self._last)
            self._endpoint.direct_polls += 1
            if batch:
                self._last = int(batch[-1]["seq"])
                return [ev.encode_event(e) for e in batch]
            left = until - loop.time()
            if left <= 0:
                return []
            await asyncio.sleep(min(self._endpoint.settings.poll_seconds, left))


class HubSource(Source):
    """The backlog (from the feed's memory, else the table), then what the feed offers — in seq
    order, each seq once; a gap (events the feed had before this subscriber joined) is read from
    the table.

    Table reads go one page per call, until every seq up to ``_upto`` is in: a Query returns at
    most 1 MB, so with large events (a result preview is up to 16 KB) a single read of a backlog or
    a gap can stop short — the events it left out used to be skipped for good. Page by page, a
    stream also never holds more than a page of its backlog in memory."""

    def __init__(
        self, store: DynamoStore, execution_id: str, after: int, feed: Feed, sub: Subscriber
    ) -> None:
        self._store, self._id, self._last = store, execution_id, after
        self._feed: Feed | None = feed
        self._sub = sub
        self._upto = after  # seqs up to this one are read from the table before the buffer is served

    async def _page(self) -> list[ev.Encoded]:
        limit = min(PAGE, self._upto - self._last)
        page = await run_in_threadpool(self._store.events_after, self._id, self._last, limit)
        out = [ev.encode_event(e) for e in page if self._last < int(e["seq"]) <= self._upto]
        # (nothing stored in the range cannot happen with a gapless log: move on rather than spin)
        self._last = out[-1].seq if out else self._upto
        return out

    async def get(self, timeout: float | None) -> list[ev.Encoded] | None:
        out: list[ev.Encoded] = []
        if self._feed is not None:
            feed, self._feed = self._feed, None
            backlog = feed.backlog(self._last)
            if backlog is None:
                self._upto = feed.last_seq  # from the table; what follows is in our buffer
            else:
                out.extend(e for e in backlog if e.seq > self._last)
                if out:
                    self._last = out[-1].seq
        if self._last < self._upto:
            return await self._page()
        sub = self._sub
        if not out and not sub.buffer and not sub.closed:
            sub.ready.clear()
            if timeout is None:  # the hot path: the ticker wakes us when a heartbeat is due
                await sub.ready.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await sub.ready.wait()
        while sub.buffer:
            event = sub.buffer[0]
            if event.seq > self._last + 1:
                self._upto = event.seq - 1  # a gap: read it from the table first; the event waits
                break
            sub.buffer.popleft()
            if event.seq > self._last:
                out.append(event)
                self._last = event.seq
        return out


_EVENTS_ROUTE = re.compile(r"^/api/v1/dag-executions/([^/]+)/events/?$")


class SseApp:
    """ASGI front: the events route goes straight to EventsEndpoint — no middleware wraps the
    per-event ``send`` of thousands of streams — and every other request to ``fallback``."""

    def __init__(self, endpoint: EventsEndpoint, fallback: Any) -> None:
        self.endpoint = endpoint
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _EVENTS_ROUTE.match(scope["path"])
            if match:
                scope["path_params"] = {"execution_id": match.group(1)}
                return await self.endpoint(scope, receive, send)
        await self.fallback(scope, receive, send)


def create_sse_app(settings: Settings, store_factory: Callable[[], DynamoStore]) -> SseApp:
    async def not_found(request: Request) -> Response:
        return error_response(NoRoute(request.method, request.url.path))

    fallback = Starlette(routes=[Route("/{path:path}", not_found, methods=["GET", "POST", "OPTIONS"])])
    return SseApp(EventsEndpoint(settings, store_factory), fallback)


def cors_middleware(settings: Settings) -> list[Middleware]:
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "last-event-id"],
            max_age=600,
        )
    ]
