"""The live event stream of one execution, as an ASGI (Starlette) app.

``GET /api/v1/dag-executions/{id}/events`` answers ``text/event-stream``:

1. a snapshot — an ``execution.updated`` event with ``"snapshot": true``, every task's state and
   ``id`` = the last stored seq, so a client starts from a consistent picture;
2. every later event, in seq order, with ``id: <seq>``;
3. a ``heartbeat`` event (no id) when nothing was sent for ``heartbeat_seconds``;
4. the end of the stream right after ``execution.completed`` / ``execution.failed``.

Runs under uvicorn locally and behind the Lambda Web Adapter in AWS (a Python Lambda cannot
stream by itself). It polls the table (``poll_seconds``) in a worker thread; it deliberately does
not consume the DynamoDB stream, whose shards cannot be read per execution.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import events as ev
from .orchestration import build_snapshot
from .store import DynamoStore, ExecutionNotFound

EVENTS_PATH = "/api/v1/dag-executions/{execution_id}/events"
RETRY_MS = 2000
STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}


def snapshot_event(store: DynamoStore, execution_id: str) -> tuple[dict[str, Any], str | None]:
    """The snapshot event and the type of the last stored event (to know if it was terminal)."""
    tail = store.last_event(execution_id)  # read before the state: the state is never older
    meta = store.get_meta(execution_id)
    tasks = store.get_tasks(execution_id)
    seq = int(tail["seq"]) if tail else 0
    body = build_snapshot(meta, tasks, seq)
    body.update(type=ev.EXECUTION_UPDATED, snapshot=True, timestamp=ev.now_ms())
    return body, (str(tail["type"]) if tail else None)


class BadResumePoint(ValueError):
    pass


def resume_point(request: Request) -> int | None:
    """Where a client resumes: ``Last-Event-ID`` (header), ``?lastEventId=`` or ``?since=``.

    None means "no resume point: start with a snapshot". ``since=0`` replays the whole history.
    """
    for name, raw in (
        ("Last-Event-ID header", request.headers.get("last-event-id")),
        ("lastEventId", request.query_params.get("lastEventId")),
        ("since", request.query_params.get("since")),
    ):
        if raw is None:
            continue
        value = raw.strip()
        if not value.isdigit():
            raise BadResumePoint(f"{name} must be a non-negative integer event id (a seq), got {raw[:40]!r}")
        return int(value)
    return None


async def event_stream(
    store: DynamoStore,
    execution_id: str,
    snapshot: dict[str, Any] | None,
    tail_type: str | None,
    heartbeat_seconds: float,
    poll_seconds: float,
    after_seq: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """Snapshot (if any), then every event after it (or after ``after_seq``), then the end."""
    last_seq = after_seq
    if snapshot is not None:
        last_seq = int(snapshot["seq"])
        yield ev.encode_sse(ev.dumps(snapshot), event=ev.EXECUTION_UPDATED, id=last_seq, retry_ms=RETRY_MS)
        if tail_type in ev.TERMINAL_TYPES:
            return
    else:
        yield ev.encode_retry(RETRY_MS)
    last_sent = clock()
    while True:
        batch = await run_in_threadpool(store.events_after, execution_id, last_seq)
        for event in batch:
            last_seq = int(event["seq"])
            yield ev.encode_sse(ev.dumps(event), event=str(event["type"]), id=last_seq)
            if event["type"] in ev.TERMINAL_TYPES:
                return
        if batch:
            last_sent = clock()
            continue
        if clock() - last_sent >= heartbeat_seconds:
            beat = {"type": ev.HEARTBEAT, "executionId": execution_id, "timestamp": ev.now_ms()}
            yield ev.encode_sse(ev.dumps(beat), event=ev.HEARTBEAT)
            last_sent = clock()
        await asyncio.sleep(poll_seconds)


def events_endpoint(
    store_factory: Callable[[], DynamoStore], heartbeat_seconds: float = 15.0, poll_seconds: float = 0.25
) -> Callable[[Request], Awaitable[Response]]:
    """The ASGI endpoint for EVENTS_PATH (mounted by the SSE app and by the local server)."""

    async def events(request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        store = store_factory()
        try:
            after = resume_point(request)
        except BadResumePoint as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        snapshot: dict[str, Any] | None = None
        try:
            if after is None:
                snapshot, tail_type = await run_in_threadpool(snapshot_event, store, execution_id)
            else:
                await run_in_threadpool(store.get_meta, execution_id)  # 404 if unknown
                tail = await run_in_threadpool(store.last_event, execution_id)
                tail_type = str(tail["type"]) if tail else None
                if tail is not None and tail_type in ev.TERMINAL_TYPES and after >= int(tail["seq"]):
                    # Nothing will ever follow: 204 makes a browser's EventSource stop for good.
                    return Response(status_code=204)
        except ExecutionNotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return StreamingResponse(
            event_stream(
                store, execution_id, snapshot, tail_type, heartbeat_seconds, poll_seconds, after or 0
            ),
            media_type="text/event-stream",
            headers=STREAM_HEADERS,
        )

    return events


def create_sse_app(
    store_factory: Callable[[], DynamoStore], heartbeat_seconds: float = 15.0, poll_seconds: float = 0.25
) -> Starlette:
    endpoint = events_endpoint(store_factory, heartbeat_seconds, poll_seconds)
    return Starlette(routes=[Route(EVENTS_PATH, endpoint, methods=["GET"])])
