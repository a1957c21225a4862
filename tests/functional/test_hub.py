"""The SSE hub against the real store on moto: one poller per execution, bounded buffers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from chalicelib.stream.hub import Hub


def _execution(services) -> str:
    eid = f"dag-exec_hub{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    return eid


def _append(services, eid: str, n: int, start: int = 0, pause: float = 0) -> None:
    for i in range(start, start + n):
        services.store.append_event(eid, f"k#{i}", {"type": "substep.started", "taskId": i})
        time.sleep(pause)


async def _collect(sub, want: int, timeout: float = 10) -> list[int]:
    got: list[int] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while len(got) < want and loop.time() < until:
        await asyncio.wait_for(sub.ready.wait(), until - loop.time())
        sub.ready.clear()
        while sub.buffer:
            got.append(sub.buffer.popleft().seq)
    return got


async def _running(feed: Any, timeout: float = 10) -> None:
    """Until the feed has polled the store once."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while feed.polls == 0:
        assert loop.time() < until, "the feed never polled"
        await asyncio.sleep(0.01)


def test_every_subscriber_gets_every_event_from_one_poller(services):
    eid = _execution(services)

    async def scenario() -> tuple[list[list[int]], int, int]:
        hub = Hub(lambda: services.store, active_seconds=0.05, idle_seconds=0.2, buffer_size=100)
        subs = [hub.subscribe(eid, 1)[1] for _ in range(50)]
        feed = hub.feeds[eid]
        await _running(feed)
        polls_before = feed.polls
        await asyncio.to_thread(_append, services, eid, 10)
        results = await asyncio.gather(*(_collect(s, 10) for s in subs))
        return results, polls_before, feed.polls

    results, polls_before, polls_after = asyncio.run(scenario())
    assert all(r == list(range(2, 12)) for r in results)
    # one feed polled for all 50 subscribers (a poll every 50 ms at most)
    assert polls_after - polls_before < 60


def test_a_full_buffer_cuts_that_subscriber_only(services):
    eid = _execution(services)

    async def scenario() -> Any:
        hub = Hub(lambda: services.store, active_seconds=0.05, idle_seconds=0.2, buffer_size=5)
        feed, slow = hub.subscribe(eid, 1)
        _, fast = hub.subscribe(eid, 1)
        collector = asyncio.create_task(_collect(fast, 12))
        await _running(feed)
        # paced so that no poll (every 50 ms) brings more than a buffer's worth: the fast reader
        # keeps up, the one that never reads overflows
        await asyncio.to_thread(_append, services, eid, 12, 0, 0.1)
        got = await collector
        return slow, got

    slow, got = asyncio.run(scenario())
    assert slow.overflowed and len(slow.buffer) == 0  # its memory is released at once
    assert got == list(range(2, 14))


def test_polling_backs_off_when_idle_and_the_feed_stops_without_subscribers(services):
    eid = _execution(services)

    async def scenario() -> Any:
        hub = Hub(lambda: services.store, active_seconds=0.02, idle_seconds=0.5, buffer_size=5)
        feed, sub = hub.subscribe(eid, 1)
        await asyncio.sleep(5)
        idle_polls = feed.polls
        hub.unsubscribe(feed, sub)
        loop = asyncio.get_running_loop()
        until = loop.time() + 6  # it lingers 5 s (hub.LINGER_SECONDS), then stops at its next poll
        while eid in hub.feeds and loop.time() < until:
            await asyncio.sleep(0.05)
        return idle_polls, eid in hub.feeds

    idle_polls, still_there = asyncio.run(scenario())
    # 3 s at 20 ms, then doubling to 0.5 s: well under the 250 polls of constant fast polling
    assert idle_polls < 180
    assert not still_there
