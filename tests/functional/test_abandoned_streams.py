"""Streams end by themselves when no disconnect signal comes, as in Lambda: a stream whose client
has gone ends at its lifetime (``max_stream_seconds``) and a client that resumes with its
Last-Event-ID misses nothing; a stream of a finished execution ends at once. The SSE app runs on
the real store (moto) through tests/support/lambda_stream.py, whose ``receive`` never says
``http.disconnect``."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

from chalicelib.config import Settings
from chalicelib.stream.app import create_sse_app
from tests.support.lambda_stream import open_stream

TERMINAL = {"type": "execution.completed", "status": "completed"}


def _app(services, lifetime: float):
    env = {**os.environ, "DAGCAST_AUTH": "off", "DAGCAST_SSE_PROFILE": "on-demand"}
    settings = Settings.from_env({**env, "DAGCAST_MAX_STREAM_SECONDS": str(lifetime)})
    assert settings.poll_hold_seconds == 0.0 and settings.eventual_reads  # the on-demand profile
    return create_sse_app(settings, lambda: services.store)


def _execution(services) -> str:
    eid = f"dag-exec_gone{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    return eid


def _path(eid: str) -> str:
    return f"/api/v1/dag-executions/{eid}/events"


def _append(services, eid: str, count: int, stop: threading.Event | None = None) -> None:
    for _ in range(count):
        if stop is not None and stop.wait(0.05):  # time is the behaviour: events keep coming
            return
        services.store.append_event(eid, uuid.uuid4().hex, {"type": "substep.started", "taskId": 1})


async def _until(predicate, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_an_abandoned_stream_ends_at_its_lifetime_and_a_resuming_client_misses_nothing(services):
    eid = _execution(services)
    short = _app(services, lifetime=2.0)
    stop = threading.Event()

    async def scenario() -> tuple[list[int], list[int], str, int]:
        first = await open_stream(short, _path(eid))
        assert first.status == 200
        writer = asyncio.create_task(asyncio.to_thread(_append, services, eid, 400, stop))
        await _until(lambda: len(first.ids()) >= 4, 20)  # the snapshot and a few live events
        seen = first.ids()  # the tab closes here: what it saw is all it will ever see
        # No disconnect comes; the stream writes on into the void until its lifetime ends it.
        await asyncio.wait_for(first.task, 20)
        endpoint = short.endpoint
        assert endpoint.open_streams == 0
        # A client (EventSource) reconnects with the last id it saw, on an app whose streams last.
        stop.set()
        await writer
        services.store.append_event(eid, "terminal", TERMINAL)
        second = await open_stream(
            _app(services, lifetime=60.0), _path(eid), headers={"Last-Event-ID": str(seen[-1])}
        )
        await asyncio.wait_for(second.task, 20)  # it ends at the terminal event, not at 60 s
        return seen, second.ids(), first.body, services.store.last_seq(eid)

    seen, resumed, first_body, last = asyncio.run(scenario())
    assert "execution.updated" in first_body.split("\n\n")[0]  # the first stream began with a snapshot
    assert seen + resumed == list(range(seen[0], last + 1))  # each seq once, in order, none missing
    assert len(resumed) > 0


def test_streams_of_a_finished_execution_end_at_once_without_a_disconnect(services):
    eid = _execution(services)
    _append(services, eid, 3)
    services.store.append_event(eid, "terminal", TERMINAL)  # seq 5
    app = _app(services, lifetime=600.0)  # an end at the lifetime would fail the 10 s waits below

    async def scenario() -> tuple[list[int], list[int], list[int], int | None]:
        fresh = await open_stream(app, _path(eid))
        await asyncio.wait_for(fresh.task, 10)  # the final snapshot, then the end
        replay = await open_stream(app, _path(eid), query="since=0")
        await asyncio.wait_for(replay.task, 10)  # every event, then the end
        midway = await open_stream(app, _path(eid), headers={"Last-Event-ID": "3"})
        await asyncio.wait_for(midway.task, 10)
        done = await open_stream(app, _path(eid), headers={"Last-Event-ID": "5"})
        await asyncio.wait_for(done.task, 10)
        return fresh.ids(), replay.ids(), midway.ids(), done.status

    fresh, replay, midway, done_status = asyncio.run(scenario())
    assert fresh == [5]
    assert replay == [1, 2, 3, 4, 5]
    assert midway == [4, 5]
    assert done_status == 204  # EventSource stops for good


def test_a_live_stream_ends_right_after_the_terminal_event_without_a_disconnect(services):
    eid = _execution(services)
    app = _app(services, lifetime=600.0)

    async def scenario() -> list[int]:
        stream = await open_stream(app, _path(eid))
        await asyncio.to_thread(_append, services, eid, 3)
        await asyncio.to_thread(services.store.append_event, eid, "terminal", TERMINAL)
        await asyncio.wait_for(stream.task, 20)
        return stream.ids()

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]
