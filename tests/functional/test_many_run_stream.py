"""The many-run stream (``GET /api/v1/dag-executions/events``) on the embedded stack: the fan-out
writes each tenant's activity log (chalicelib/fanout.py, persistence/activity.py) from the table's
stream, and the SSE app (stream/manyrun.py) reads it — in order, resumable after a cut, updates at
most once a second per execution, never another tenant's, tampered ids 400. Over real sockets:
tests/e2e/test_many_run_stream.py."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.domain import events as ev
from chalicelib.stream.app import SseApp, create_sse_app
from chalicelib.stream.auth import TokenSigner
from tests.support.lambda_stream import LambdaStream, open_stream

PATH = "/api/v1/dag-executions/events"
SECRET = "many-run-functional-secret"


@pytest.fixture
def sse(services) -> SseApp:
    env = {**os.environ, "DAGCAST_AUTH": "on", "DAGCAST_STREAM_SECRET": SECRET}
    return create_sse_app(Settings.from_env(env), lambda: services.store)


def token(tenant: str, *tags: str) -> str:
    return TokenSigner(SECRET).issue_query(tuple(tags), tenant).token


def execution(services, tenant: str, tags: list[str] | None = None) -> str:
    """An execution of ``tenant`` (its execution.created written with META, as a submit does)."""
    eid = f"dag-exec_many{uuid.uuid4().hex[:12]}"
    fields: dict[str, Any] = {"tenant": tenant}
    if tags is not None:
        fields["tags"] = tags
    services.store.create_execution(eid, created_at=int(time.time() * 1000), original_request="", tasks=[],
                                    sink_ids=[], **fields)  # fmt: skip
    return eid


def update(services, eid: str, n: int) -> None:
    services.store.append_event(eid, f"u{n}", {"type": ev.EXECUTION_UPDATED, "status": "running"})


def end(services, eid: str) -> None:
    payload = {"type": ev.EXECUTION_COMPLETED, "status": "completed", "durationMs": 1, "finalResult": {}}
    services.store.append_event(eid, "execution.terminal", payload)


def messages(stream: LambdaStream) -> list[dict[str, Any]]:
    """Every dispatched message so far: its event type, id (the one last set) and data."""
    out, last_id = [], None
    for block in stream.body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("event", "id", "data"):
                fields[name] = value
        last_id = fields.get("id", last_id)
        if "data" in fields:
            out.append({"type": fields.get("event"), "id": last_id, **json.loads(fields["data"])})
    return out


async def until(predicate, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def of(stream: LambdaStream, eids: set[str]) -> list[tuple[str, str, int]]:
    return [(m["executionId"], m["type"], m["seq"]) for m in messages(stream) if m["executionId"] in eids]


def test_a_tenants_stream_has_its_executions_events_in_order_and_never_another_tenants(services, sse):
    async def scenario() -> None:
        tenant = f"acme{uuid.uuid4().hex[:6]}"
        everything = await open_stream(sse, PATH, f"token={token(tenant)}")
        nightly = await open_stream(sse, PATH, f"token={token(tenant, 'nightly')}&tag=nightly")
        assert everything.status == nightly.status == 200
        mine, tagged = execution(services, tenant), execution(services, tenant, ["nightly", "eu"])
        other = execution(services, f"globex{uuid.uuid4().hex[:6]}", ["nightly"])
        for eid in (mine, tagged, other):
            end(services, eid)
        ids = {mine, tagged, other}
        await until(lambda: len(of(everything, ids)) >= 4 and len(of(nightly, ids)) >= 2)
        await asyncio.sleep(3)  # the settle window: anything else (another tenant's) would be here now
        got = of(everything, ids)
        assert sorted(got) == sorted(
            [(mine, "execution.created", 1), (mine, "execution.completed", 2),
             (tagged, "execution.created", 1), (tagged, "execution.completed", 2)]
        )  # fmt: skip
        for eid in (mine, tagged):  # per execution in seq order
            assert [s for e, _, s in got if e == eid] == [1, 2]
        assert of(nightly, ids) == [(tagged, "execution.created", 1), (tagged, "execution.completed", 2)]
        for s in (everything, nightly):
            s.task.cancel()

    asyncio.run(scenario())


def test_a_stream_cut_and_resumed_with_its_last_event_id_misses_nothing_and_repeats_nothing(services, sse):
    async def scenario() -> None:
        tenant = f"resume{uuid.uuid4().hex[:6]}"
        first = await open_stream(sse, PATH, f"token={token(tenant)}")
        a, b = execution(services, tenant), execution(services, tenant)
        await until(lambda: len(of(first, {a, b})) == 2)
        last_id = messages(first)[-1]["id"]
        first.task.cancel()  # the cut
        end(services, a)
        c = execution(services, tenant)
        end(services, b)
        resumed = await open_stream(sse, PATH, f"token={token(tenant)}", {"Last-Event-ID": last_id})
        await until(lambda: len(of(resumed, {a, b, c})) >= 3)
        await asyncio.sleep(3)  # the settle window: a repeat would be here by now
        assert sorted(of(resumed, {a, b, c})) == sorted(
            [(a, "execution.completed", 2), (c, "execution.created", 1), (b, "execution.completed", 2)]
        )
        resumed.task.cancel()

    asyncio.run(scenario())


def test_updates_reach_a_stream_at_most_once_a_second_per_execution_and_the_newest_is_sent(services, sse):
    async def scenario() -> None:
        tenant = f"busy{uuid.uuid4().hex[:6]}"
        stream = await open_stream(sse, PATH, f"token={token(tenant)}")
        eid = execution(services, tenant)
        started = time.monotonic()
        for n in range(30):  # time is the behaviour: 30 updates over ~3 s
            update(services, eid, n)
            await asyncio.sleep(0.1)
        await until(lambda: any(s == 31 for _, t, s in of(stream, {eid}) if t == "execution.updated"))
        elapsed = time.monotonic() - started
        arrivals = [
            m for m in messages(stream) if m["executionId"] == eid and m["type"] == "execution.updated"
        ]
        assert len(arrivals) <= elapsed + 1, f"{len(arrivals)} updates in {elapsed:.1f}s"
        assert len(arrivals) >= 2
        assert [m["seq"] for m in arrivals] == sorted(m["seq"] for m in arrivals)
        stream.task.cancel()

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["flipped", "other-tenant", "garbage"])
def test_a_tampered_or_foreign_last_event_id_is_400(services, sse, how):
    async def scenario() -> None:
        tenant = f"tamper{uuid.uuid4().hex[:6]}"
        stream = await open_stream(sse, PATH, f"token={token(tenant)}")
        eid = execution(services, tenant)
        await until(lambda: len(of(stream, {eid})) == 1)
        stream.task.cancel()
        good = messages(stream)[-1]["id"]
        payload, mac = good.split(".")
        bad = {
            "flipped": f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}",
            "other-tenant": good,
            "garbage": "12345",
        }[how]
        asker = f"other{uuid.uuid4().hex[:6]}" if how == "other-tenant" else tenant
        refused = await open_stream(sse, PATH, f"token={token(asker)}", {"Last-Event-ID": bad})
        await refused.task
        assert refused.status == 400, refused.body
        assert "Last-Event-ID" in json.loads(refused.body)["error"]

    asyncio.run(scenario())


def test_a_token_for_another_query_or_one_execution_is_refused(services, sse):
    async def scenario() -> None:
        cases = [
            (f"token={token('acme', 'nightly')}", 403),  # for ?tag=nightly, used with no tag
            (f"token={token('acme')}&tag=nightly", 403),
            (f"token={TokenSigner(SECRET).issue('dag-exec_x', tenant='acme').token}", 403),
            ("", 401),
        ]
        for query, status in cases:
            refused = await open_stream(sse, PATH, query)
            await refused.task
            assert refused.status == status, (query, refused.body)

    asyncio.run(scenario())
