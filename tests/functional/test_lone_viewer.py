"""A lone viewer's reads on the real store (moto): eventually consistent polls that never skip or
repeat an event, even when a read comes from a stale replica, and a poll rate that drops while
the execution is quiet — counted over a window of virtual time, with the RCU each read costs."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from chalicelib.config import Settings
from chalicelib.persistence.capacity import ReadMeter
from chalicelib.persistence.executions import DynamoStore
from chalicelib.stream.hub import Hub, hub_for
from tests.support.lambda_stream import VirtualClock


def _settings(profile: str) -> Settings:
    return Settings.from_env({**os.environ, "DAGCAST_SSE_PROFILE": profile, "DAGCAST_AUTH": "off"})


def _own_store(services) -> DynamoStore:
    """A store with its own client, so its reads (and only they) can be metered and faulted."""
    return DynamoStore(boto3.session.Session().client("dynamodb"), services.settings.table_name)


def _execution(services, last_seq: int = 1) -> str:
    """An execution whose log runs to ``last_seq`` (seq 1 is its execution.created)."""
    eid = f"dag-exec_lone{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    _append(services, eid, last_seq - 1)
    return eid


def _append(services, eid: str, count: int) -> None:
    for _ in range(count):
        # ~1 KB each, like a substep.completed with a short preview
        event = {"type": "substep.completed", "taskId": 1, "preview": "x" * 900}
        assert services.store.append_event(eid, uuid.uuid4().hex, event)


class StaleReplica:
    """Eventually consistent Queries of one client answered as a lagging replica might: with an
    event missing in the middle, without the newest events, or with none. Consistent reads are
    left alone. A botocore hook on the real call: what the store does with the page is the code's."""

    def __init__(self, client: Any, faults: Callable[[int], str]) -> None:
        self.faults = faults
        self.applied: dict[str, int] = {}
        self._n = 0
        client.meta.events.register("provide-client-params.dynamodb.Query", self._mark)
        client.meta.events.register("after-call.dynamodb.Query", self._stale)

    @staticmethod
    def _mark(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["stale_ok"] = not params.get("ConsistentRead")

    def _stale(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        items = parsed.get("Items")
        if not context.get("stale_ok") or not items:
            return
        self._n += 1
        fault = self.faults(self._n)
        if fault == "hole" and len(items) >= 3:
            del items[len(items) // 2]
        elif fault == "lag":
            del items[max(1, len(items) // 2) :]
        elif fault == "empty":
            items.clear()
        else:
            return
        self.applied[fault] = self.applied.get(fault, 0) + 1


async def _take(sub, until_seq: int, timeout: float = 30) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1] < until_seq:
            await sub.ready.wait()
            sub.ready.clear()
            while sub.buffer:
                got.append(sub.buffer.popleft().seq)
    return got


def test_stale_eventually_consistent_pages_never_skip_or_repeat_an_event(services):
    """Holes, lagging pages and empty pages on every eventually consistent read, at random: the
    feed re-reads each untrustworthy page consistently, and the viewer gets every seq once, in order."""
    eid = _execution(services, last_seq=20)
    store = _own_store(services)
    rng = random.Random(17)
    replica = StaleReplica(store._db, lambda n: rng.choice(["hole", "lag", "empty", "none"]))
    meter = ReadMeter()
    store.meter_reads(meter)

    async def scenario() -> tuple[list[int], Hub]:
        hub = Hub(lambda: store, 0.01, 0.05, 10_000, hold_seconds=0.0, eventual_reads=True)
        # a client resuming after seq 5, having read the tail (20) as written
        feed, sub = hub.subscribe(eid, 5, tail=20)
        writer = asyncio.create_task(asyncio.to_thread(_paced_append, services, eid, 80))
        got = await _take(sub, 100)
        await writer
        hub.unsubscribe(feed, sub)
        return got, hub

    got, hub = asyncio.run(scenario())
    assert got == list(range(6, 101))  # nothing skipped, nothing twice, in order
    assert replica.applied.get("hole", 0) > 0 and replica.applied.get("empty", 0) > 0
    assert hub.rereads > 0
    stats = meter.stats()
    assert stats["consistentReads"] == hub.rereads  # every consistent read was a gap's re-read
    # every eventual read was a poll; the poll in flight when the viewer left is counted when it
    # starts, and its read may never run (cancelled before its thread started): 35 of 36 was seen
    assert hub.polls - 1 <= stats["eventualReads"] <= hub.polls


def _paced_append(services, eid: str, count: int) -> None:
    for _ in range(count // 5):
        _append(services, eid, 5)
        time.sleep(0.01)  # time is the behaviour here: polls must interleave with the writes


def test_a_page_short_of_the_tail_a_resuming_client_read_is_read_again_consistently(services):
    """A replica that lags the whole time: a client resuming after seq 2 of 12 (it read the tail,
    12, as written) still gets 3..12 from the feed's first poll, not a few at a time."""
    eid = _execution(services, last_seq=12)
    store = _own_store(services)
    replica = StaleReplica(store._db, lambda n: "lag")

    async def scenario() -> tuple[list[int], Hub]:
        clock = VirtualClock(until=0.0)  # one poll, then the window is over
        hub = Hub(lambda: store, 0.2, 2.0, 100, hold_seconds=0.0, eventual_reads=True, clock=clock)
        _, sub = hub.subscribe(eid, 2, tail=12)
        await asyncio.wait_for(clock.parked.wait(), 10)
        return [e.seq for e in sub.buffer], hub

    got, hub = asyncio.run(scenario())
    assert got == list(range(3, 13))
    assert (hub.polls, hub.rereads, replica.applied) == (1, 1, {"lag": 1})


def _polls_at(store: DynamoStore, clock: VirtualClock) -> list[float]:
    """The virtual time of each Query the store makes."""
    times: list[float] = []
    store._db.meta.events.register("after-call.dynamodb.Query", lambda **_: times.append(clock.t))
    return times


@pytest.mark.parametrize("profile", ["on-demand", "managed-instances"])
def test_while_quiet_the_poll_rate_drops_as_the_profile_schedules_it(services, profile):
    """One viewer, an execution that has gone quiet after seq 3: the reads over a virtual minute
    are exactly the schedule's, and in the on-demand profile they cost under 0.5 RCU/s."""
    settings = _settings(profile)
    eid = _execution(services, last_seq=3)
    store = _own_store(services)
    meter = ReadMeter()
    store.meter_reads(meter)

    async def scenario() -> tuple[Hub, list[float]]:
        clock = VirtualClock(until=60.0)
        times = _polls_at(store, clock)
        hub = hub_for(settings, lambda: store)
        hub.clock = clock
        hub.subscribe(eid, 0)
        await asyncio.wait_for(clock.parked.wait(), 60)
        return hub, times

    hub, times = asyncio.run(scenario())
    assert times[0] == 0.0  # the first poll brings seq 1..3; then nothing more comes
    assert len(times) == 1 + hub.schedule.polls_within(60.0)
    last_half = sum(1 for t in times if t > 30.0)
    stats = meter.stats()
    assert stats["consistentReads"] == 0 and stats["eventualReads"] == len(times)
    assert stats["rcuEventual"] == 0.5 * len(times)  # every page under 4 KB
    if profile == "on-demand":
        assert len(times) == 33  # 1 + polls at 0.2, 0.6, 1.4, 3.0, then every 2 s
        assert sum(1 for t in times if t <= 3.0) == 5 and last_half == 15  # 0.5 polls/s late on
        assert stats["rcu"] / 60 < 0.5
    else:
        assert len(times) == 93  # 3 s at 0.05 s (shared by every viewer of the process), then back-off
        assert last_half == 15


def test_while_events_flow_a_lone_viewer_reads_a_page_every_poll_interval(services):
    """10 events/s of ~1 KB for 10 virtual seconds, on-demand: a poll every 0.2 s brings two
    events at a time for half an RCU: 5 reads/s, 2.5 RCU/s (the issue's goal: <= 5)."""
    settings = _settings("on-demand")
    eid = _execution(services)
    store = _own_store(services)
    meter = ReadMeter()
    store.meter_reads(meter)
    written = [0]

    def write_due(t: float) -> None:  # the writer: 10 events/s of virtual time
        due = int(round(t * 10, 6))
        _append(services, eid, due - written[0])
        written[0] = max(written[0], due)

    async def scenario() -> list[int]:
        clock = VirtualClock(until=10.0, on_advance=write_due)
        hub = hub_for(settings, lambda: store)
        hub.clock = clock
        _, sub = hub.subscribe(eid, 0)
        await asyncio.wait_for(clock.parked.wait(), 120)
        return [e.seq for e in sub.buffer]

    got = asyncio.run(scenario())
    assert got == list(range(1, 2 + written[0])) and written[0] == 100  # seq 1: execution.created
    stats = meter.stats()
    reads = stats["eventualReads"]
    assert 49 <= reads <= 52  # one at t=0, then every 0.2 s
    assert stats["rcu"] / 10 <= 2.6 and stats["consistentReads"] == 0
