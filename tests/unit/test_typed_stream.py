"""dagcast.client.watch_execution: the async iterator of typed events, against a scripted server
(httpx.MockTransport): models for known types, OpenEvent for the rest, each seq once, resume with
Last-Event-ID, a fresh URL on 401, the end at the terminal event, a final snapshot, or 204."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chalicelib.domain.events import ExecutionCompleted, SubstepFailed, SubstepStarted
from dagcast.client import OpenEvent, TypedEvent, WatchError, watch_execution

URL = "http://sse.test/api/v1/dag-executions/e1/events?token=t0"


def frame(event: dict[str, Any]) -> bytes:
    seq = f"id: {event['seq']}\n" if "seq" in event else ""
    return f"event: {event['type']}\n{seq}data: {json.dumps(event)}\n\n".encode()


def stored(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "executionId": "e1", "timestamp": 1000 + seq, "seq": seq, **fields}


STARTED = stored(2, "substep.started", subStepId="1", taskId=1, description="d", attempt=1)
WAITING = stored(3, "substep.waiting", taskId=1, until="approval")  # a type from a later version
FAILED_NEW_REASON = stored(
    4, "substep.failed", subStepId="1", taskId=1, error="x", reason="quotaExceeded", willRetry=False
)
FAILED = stored(5, "substep.failed", subStepId="1", taskId=1, error="x", reason="error", willRetry=True)
DONE = stored(
    6, "execution.completed", completedTasks=1, failedTasks=0, totalTasks=1, durationMs=5, finalResult="ok"
)


def collect(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> list[TypedEvent]:
    async def go() -> list[TypedEvent]:
        async def no_wait(_: float) -> None:
            return None

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return [e async for e in watch_execution(URL, client=client, sleep=no_wait, **kwargs)]

    return asyncio.run(go())


def stream(*events: dict[str, Any]) -> httpx.Response:
    body = b"retry: 10\n\n" + b"".join(frame(e) for e in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def test_known_types_come_as_their_models_and_the_rest_as_open_events():
    got = collect(lambda request: stream(STARTED, WAITING, FAILED_NEW_REASON, FAILED, DONE), since=1)
    assert [type(e) for e in got] == [SubstepStarted, OpenEvent, OpenEvent, SubstepFailed, ExecutionCompleted]
    waiting = got[1]
    assert isinstance(waiting, OpenEvent) and waiting.type == "substep.waiting" and waiting.seq == 3
    assert waiting.model_extra == {"taskId": 1, "until": "approval"}
    assert (
        isinstance(got[2], OpenEvent)
        and got[2].model_extra
        and got[2].model_extra["reason"] == "quotaExceeded"
    )
    assert isinstance(got[4], ExecutionCompleted) and got[4].finalResult == "ok"


def test_a_drop_resumes_after_the_last_seq_and_nothing_repeats():
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("last-event-id"))
        return stream(STARTED, WAITING) if len(asked) == 1 else stream(WAITING, FAILED, DONE)

    got = collect(handler, since=1)
    assert [getattr(e, "seq", None) for e in got] == [2, 3, 5, 6]
    assert asked == ["1", "3"]


def test_a_refused_token_gets_a_fresh_url_once_and_the_204_is_the_end():
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(request.url.params["token"])
        if request.url.params["token"] == "t0":
            return httpx.Response(401, json={"error": "the stream token expired"})
        return httpx.Response(204)

    async def refresh() -> str:
        return URL.replace("t0", "t1")

    assert collect(handler, since=6, refresh=refresh) == []
    assert urls == ["t0", "t1"]


def test_a_refusal_retrying_cannot_fix_is_an_error_with_its_status():
    with pytest.raises(WatchError) as refused:
        collect(lambda request: httpx.Response(404, json={"error": "no such execution"}))
    assert refused.value.status == 404


def test_types_are_asked_for_with_the_terminal_types():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["types"])
        return stream(DONE)

    collect(handler, types=["substep.*"])
    assert seen == ["substep.*,execution.completed,execution.failed"]
