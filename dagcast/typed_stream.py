"""One execution's events as an async iterator of the event models (``dagcast.client.watch_execution``).

For Python programs that follow an execution (a backend, a notebook, a test): the events come as the
pydantic models of ``chalicelib/domain/events.py`` (``SubstepCompleted``, ``ExecutionFailed``, …), so
fields are attributes with types. Open as every client must be (docs/compatibility.md): an event of a
type this version does not know, or one that does not fit its model (a newer server's new ``reason``
value), comes as ``OpenEvent`` with its type and every field; nothing here fails on them.

The connection rules are the CLI's (``client.EventStream``), for asyncio: each seq once, a resume
with ``Last-Event-ID`` after a drop, a fresh token from ``refresh`` on 401, the end at the terminal
event, at a finished execution's snapshot, or at 204. Not here: where the URLs come from (the
caller has the ``eventsUrl`` an API answer gave, or ``client.stream_access``'s).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.domain.events import HEARTBEAT, TERMINAL_TYPES, parse_event
from chalicelib.domain.model import ExecutionStatus
from chalicelib.domain.wire import WireModel


class OpenEvent(BaseModel):
    """An event this version has no model for: its type and every field it came with (``extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    seq: int | None = None
    executionId: str | None = None
    timestamp: int | None = None


TypedEvent = WireModel | OpenEvent


class WatchError(Exception):
    """The stream cannot be followed: a refusal retrying will not fix, or too many failures."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def typed_event(data: Mapping[str, Any]) -> TypedEvent:
    """The event's model; ``OpenEvent`` when its type is unknown or it does not fit its model."""
    try:
        return parse_event(data)
    except ValidationError:
        return OpenEvent.model_validate(dict(data))


async def watch_execution(
    url: str,
    *,
    client: httpx.AsyncClient,
    since: int | None = None,
    types: list[str] | None = None,
    refresh: Callable[[], Awaitable[str]] | None = None,
    heartbeats: bool = False,
    max_failures: int = 10,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[TypedEvent]:
    """The events of the stream at ``url`` (an ``eventsUrl``, token included), each seq once, to the
    end. ``since``: None = a snapshot first, 0 = every event, N = after N. ``types``: the ``?types=``
    filter (the terminal types are added, so the end is seen). ``refresh``: a fresh URL when the
    token is refused. Waits ``retry:`` doubled per failure in a row (≤ 30 s) before reconnecting."""
    last, retry_ms, failures, refreshed = since, 2000, 0, False
    wanted = ",".join(dict.fromkeys([*types, *sorted(TERMINAL_TYPES)])) if types else None
    while True:
        headers = {"Last-Event-ID": str(last)} if last is not None else {}
        delivered = False
        try:
            where = httpx.URL(url).copy_set_param("types", wanted) if wanted else httpx.URL(url)
            async with aconnect_sse(client, "GET", str(where), headers=headers) as source:
                status = source.response.status_code
                if status == 204:
                    return
                if status == 401 and refresh is not None and not refreshed:
                    url, refreshed = await refresh(), True
                    continue
                if status != 200 and status != 429 and status < 500:
                    raise WatchError(f"the event stream answered {status}", status)
                if status == 200:
                    refreshed = False
                    async for sse in source.aiter_sse():
                        retry_ms = sse.retry if sse.retry is not None else retry_ms
                        if not sse.data:
                            continue
                        data = json.loads(sse.data)
                        if data.get("type") == HEARTBEAT:
                            if heartbeats:
                                yield typed_event(data)
                            continue
                        if not data.get("snapshot") and last is not None and data["seq"] <= last:
                            continue  # delivered already (a replay overlapping what we had)
                        last = data["seq"] if last is None else max(last, data["seq"])
                        delivered = True
                        yield typed_event(data)
                        if data.get("type") in TERMINAL_TYPES:
                            return
                        if data.get("snapshot") and data.get("status") != ExecutionStatus.RUNNING:
                            return  # a finished execution: its final snapshot, then the end
        except httpx.HTTPError:
            pass  # a drop: resumed below
        failures = 0 if delivered else failures + 1
        if failures > max_failures:
            raise WatchError(f"lost the event stream after {max_failures} attempts in a row")
        await sleep(0 if delivered else min(30.0, retry_ms / 1000 * 2 ** max(0, failures - 1)))
