"""One poller per execution per process, feeding every SSE subscriber of that execution.

Without it each connection polls DynamoDB by itself and reads grow with the number of watchers.
With it, a ``Feed`` polls ``events_after(last_seq)`` once per interval and offers each new event
to every subscriber's bounded buffer, so reads per second depend on the number of *executions*
being watched, not on the number of clients.

Polling adapts (polling.py): ``fast`` seconds between polls while events come; once no event has
come for ``hold`` seconds, each empty poll multiplies the interval by ``factor``, up to ``ceiling``;
one new event brings it back to ``fast``. Polls may read eventually consistent (half the RCU): a
page with a hole, or one that stops short of a tail a subscriber was told of, is read again
consistently (polling.py's gap rule), so nothing is skipped. A feed stops when its execution has
ended, or a few seconds after its last subscriber left.

Backpressure: a subscriber's buffer holds at most ``buffer_size`` events. When a client is too
slow and its buffer is full, the subscriber is marked ``overflowed`` and the stream closes it;
the client reconnects with Last-Event-ID and replays from the table. A slow client never slows
the feed or the other subscribers, and never grows memory without bound.

Everything here runs on the event loop; the blocking DynamoDB calls go to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from ..config import SSE_PROFILES, Settings
from ..domain import events as ev
from ..domain import wire
from ..persistence.capacity import ReadMeter
from ..persistence.executions import DynamoStore
from .polling import PollSchedule, needs_consistent_read

log = logging.getLogger(__name__)

PAGE = 500
RECENT_EVENTS = 5000  # per feed: recent events kept for replay to new subscribers
LINGER_SECONDS = 5.0
# The hold of a Hub built without one: the managed-instances profile's.
IDLE_AFTER_SECONDS = SSE_PROFILES["managed-instances"]["poll_hold_seconds"]


class Clock(Protocol):
    """The feed's time and sleep: the event loop's (``LoopClock``), or a test's virtual clock, to
    count polls over a window without waiting for it."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Subscriber:
    __slots__ = ("buffer", "closed", "limit", "overflowed", "ready")

    def __init__(self, limit: int) -> None:
        self.buffer: deque[wire.Encoded] = deque()
        self.limit = limit
        self.ready = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def offer(self, event: wire.Encoded) -> None:
        if self.overflowed or self.closed:
            return
        if len(self.buffer) >= self.limit:
            self.overflowed = True
            self.buffer.clear()  # free it now: this client will replay from the table
        else:
            self.buffer.append(event)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.buffer.clear()
        self.ready.set()


class Feed:
    def __init__(self, hub: Hub, execution_id: str, start_seq: int) -> None:
        self.hub = hub
        self.execution_id = execution_id
        self.last_seq = start_seq
        self.recent: deque[wire.Encoded] = deque(maxlen=RECENT_EVENTS)
        self.subscribers: set[Subscriber] = set()
        self.terminal_seq: int | None = None
        self.known_tail: int | None = None  # a seq known to be written (a resuming client's tail)
        self.snapshot: tuple[int, bytes, str | None] | None = None  # (seq, encoded frame, tail type)
        self.polls = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"feed-{self.execution_id}")

    def backlog(self, after_seq: int) -> list[wire.Encoded] | None:
        """Events after ``after_seq`` up to ``last_seq`` from memory, or None if not all are here."""
        if after_seq >= self.last_seq:
            return []
        first = self.recent[0].seq if self.recent else self.last_seq + 1
        if after_seq + 1 < first:
            return None
        return [e for e in self.recent if e.seq > after_seq]

    async def _read(self) -> list[ev.Event]:
        """The events after ``last_seq`` (a page): eventually consistent when the hub may, read
        again consistently when that page cannot be trusted (polling.py's gap rule)."""
        hub, after = self.hub, self.last_seq
        self.polls += 1
        hub.polls += 1
        if hub.eventual:
            page = await run_in_threadpool(hub.store.events_after, self.execution_id, after, PAGE, False)
            seqs = [int(e["seq"]) for e in page]
            if not needs_consistent_read(after, seqs, PAGE, self.known_tail):
                return page
            hub.rereads += 1
        return await run_in_threadpool(hub.store.events_after, self.execution_id, after, PAGE)

    def _offer(self, batch: list[ev.Event]) -> bool:
        """Hand each new event to every subscriber; whether any was new."""
        new = False
        for stored in batch:
            event = wire.encode_event(stored)  # once, for every subscriber
            if event.seq <= self.last_seq:
                continue
            new = True
            self.last_seq = event.seq
            self.recent.append(event)
            if event.type in ev.TERMINAL_TYPES:
                self.terminal_seq = event.seq
            for sub in tuple(self.subscribers):
                sub.offer(event)
        return new

    async def _run(self) -> None:
        clock, schedule = self.hub.clock, self.hub.schedule
        last_event_at = clock.now()
        empty_since: float | None = None
        interval = schedule.fast
        try:
            while True:
                if not self.subscribers:
                    empty_since = empty_since if empty_since is not None else clock.now()
                    if clock.now() - empty_since >= LINGER_SECONDS:
                        return
                else:
                    empty_since = None
                batch = await self._read()
                new = self._offer(batch)
                if self.terminal_seq is not None:
                    return
                now = clock.now()
                if new:
                    last_event_at = now
                    if len(batch) == PAGE:
                        continue
                interval = schedule.next_interval(interval, new, now - last_event_at)
                await clock.sleep(interval)
        except Exception:
            log.exception("feed of %s failed; its subscribers will reconnect", self.execution_id)
            for sub in tuple(self.subscribers):
                sub.overflowed = True
                sub.ready.set()
        finally:
            self.hub.feeds.pop(self.execution_id, None)


class Hub:
    def __init__(
        self,
        store_factory: Callable[[], DynamoStore],
        active_seconds: float = 0.1,
        idle_seconds: float = 2.0,
        buffer_size: int = 1000,
        *,
        backoff: float = 2.0,
        hold_seconds: float = IDLE_AFTER_SECONDS,
        eventual_reads: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._store_factory = store_factory
        self._store: DynamoStore | None = None
        self.schedule = PollSchedule(active_seconds, max(idle_seconds, active_seconds), backoff, hold_seconds)
        self.eventual = eventual_reads
        self.clock: Clock = clock or LoopClock()
        self.buffer_size = buffer_size
        self.feeds: dict[str, Feed] = {}
        self.polls = 0
        self.rereads = 0  # eventually consistent pages read again consistently (the gap rule)

    @property
    def store(self) -> DynamoStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def feed(self, execution_id: str, start_seq: int) -> Feed:
        feed = self.feeds.get(execution_id)
        if feed is None:
            feed = Feed(self, execution_id, start_seq)
            self.feeds[execution_id] = feed
            feed.start()
        return feed

    def subscribe(
        self, execution_id: str, after_seq: int, tail: int | None = None
    ) -> tuple[Feed, Subscriber]:
        """A new subscriber to the execution's feed from ``after_seq``; ``tail``: a seq the caller
        read as written (the feed's eventually consistent reads must reach it)."""
        feed = self.feed(execution_id, after_seq)
        if tail is not None and tail > (feed.known_tail or 0):
            feed.known_tail = tail
        sub = Subscriber(self.buffer_size)
        feed.subscribers.add(sub)
        return feed, sub

    @staticmethod
    def unsubscribe(feed: Feed, sub: Subscriber) -> None:
        sub.close()
        feed.subscribers.discard(sub)

    def stats(self) -> dict[str, int]:
        return {
            "feeds": len(self.feeds),
            "subscribers": sum(len(f.subscribers) for f in self.feeds.values()),
            "polls": self.polls,
            "rereads": self.rereads,
        }


def hub_for(settings: Settings, store_factory: Callable[[], DynamoStore]) -> Hub:
    """The hub with the settings' poll schedule and read consistency (its profile's defaults)."""
    return Hub(
        store_factory,
        settings.poll_seconds,
        settings.idle_poll_seconds,
        settings.subscriber_buffer,
        backoff=settings.poll_backoff,
        hold_seconds=settings.poll_hold_seconds,
        eventual_reads=settings.eventual_reads,
    )


def metered(store_factory: Callable[[], DynamoStore], meter: ReadMeter) -> Callable[[], DynamoStore]:
    """``store_factory``, its store's reads counted in ``meter`` (attached once per store)."""

    def build() -> DynamoStore:
        store = store_factory()
        store.meter_reads(meter)
        return store

    return build
