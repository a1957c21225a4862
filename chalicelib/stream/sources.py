"""Where a stream's events come from: the store reads behind the SSE endpoint.

- the snapshot a new stream starts with (``Snapshots``: one table read per execution at a time,
  shared by the connections that arrive meanwhile, and cached on the hub's feed);
- where the log ends, for a client resuming (``log_tail``);
- the events after a point (``Source``): replayed from the table for an execution that has ended
  (``ReplaySource``), polled by the connection itself with the hub off (``PollSource``), or taken
  from the hub's feed, with the backlog and any gap read from the table page by page
  (``HubSource``).

Everything here runs on the event loop; the blocking DynamoDB calls go to a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..domain import events as ev
from ..domain import wire
from ..domain.model import now_ms
from ..orchestration.views import build_snapshot
from ..persistence.executions import DynamoStore
from .hub import PAGE, Feed, Hub, Subscriber

# A snapshot as streams share it: (its seq, the encoded frame, the type of the last stored event).
Snapshot = tuple[int, bytes, str | None]


def snapshot_event(store: DynamoStore, execution_id: str) -> tuple[dict[str, Any], str | None]:
    """The snapshot event and the type of the last stored event (to know if it was terminal)."""
    tail = store.last_event(execution_id)  # read before the state: the state is never older
    meta = store.get_execution(execution_id)
    tasks = store.get_tasks(execution_id)
    seq = int(tail["seq"]) if tail else 0
    body = build_snapshot(meta, tasks, seq)
    body.update(type=ev.EXECUTION_UPDATED, snapshot=True, timestamp=now_ms())
    return body, (str(tail["type"]) if tail else None)


class Snapshots:
    """The snapshot frame each new stream without a resume point starts with."""

    def __init__(self, store: Callable[[], DynamoStore], hub: Hub | None, retry_ms: int) -> None:
        self._store = store
        self._hub = hub
        self._retry_ms = retry_ms
        self._pending: dict[str, asyncio.Task[Snapshot]] = {}

    async def get(self, execution_id: str) -> Snapshot:
        """From the feed's cache while no event has come since it was read, else read (shared)."""
        feed = self.feed(execution_id)
        cached = feed.snapshot if feed is not None else None
        if cached is not None and feed is not None and cached[0] == feed.last_seq:
            return cached
        snapshot = await self._shared(execution_id)
        feed = self.feed(execution_id)
        if feed is not None and snapshot[0] == feed.last_seq:
            feed.snapshot = snapshot  # connections arriving before the next event share it
        return snapshot

    def feed(self, execution_id: str) -> Feed | None:
        """The hub's feed of the execution in this process, if it has one."""
        return self._hub.feeds.get(execution_id) if self._hub is not None else None

    async def _shared(self, execution_id: str) -> Snapshot:
        """One snapshot read at a time per execution: connections that arrive while it is read
        share it (a burst of 10,000 connects costs one read, not 10,000). Sharing is safe: every
        event after the snapshot's seq is streamed to each of them."""
        pending = self._pending.get(execution_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(self._read(execution_id))
            self._pending[execution_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(execution_id, None))
        return await asyncio.shield(pending)

    async def _read(self, execution_id: str) -> Snapshot:
        body, tail_type = await run_in_threadpool(snapshot_event, self._store(), execution_id)
        start = int(body["seq"])
        frame = wire.encode_sse(
            wire.dumps(body), event=ev.EXECUTION_UPDATED, id=start, retry_ms=self._retry_ms
        )
        return start, frame, tail_type


async def log_tail(
    store: Callable[[], DynamoStore], feed: Feed | None, execution_id: str, after: int
) -> tuple[int, str | None]:
    """The last seq of the execution's log and its type (None: not known to be terminal), for a
    client resuming after ``after``. Raises ExecutionNotFound for an unknown execution.

    The feed can vouch only for seqs it has seen: a resume point beyond its last_seq (a client that
    read further on another process, or before this one restarted) may be the terminal event,
    which must get 204 — not a stream that skips every event up to it and then only sends
    heartbeats. The table is asked instead."""
    if feed is not None and feed.terminal_seq is None and feed.last_seq >= 1 and after <= feed.last_seq:
        return feed.last_seq, None
    await run_in_threadpool(store().get_meta, execution_id)  # ExecutionNotFound if unknown
    tail = await run_in_threadpool(store().last_event, execution_id)
    return (int(tail["seq"]), str(tail["type"])) if tail else (0, None)


class Source:
    """Where a stream's events come from. ``get(timeout)`` returns the next events in seq order
    (an empty list if none came within ``timeout``) or None when there will be no more."""

    async def get(self, timeout: float | None) -> list[wire.Encoded] | None:
        raise NotImplementedError


class ReplaySource(Source):
    """Stored events after a point, for an execution that has already ended."""

    def __init__(self, store: DynamoStore, execution_id: str, after: int) -> None:
        self._store, self._id, self._last = store, execution_id, after

    async def get(self, timeout: float | None) -> list[wire.Encoded] | None:
        batch = await run_in_threadpool(self._store.events_after, self._id, self._last)
        if not batch:
            return None
        self._last = int(batch[-1]["seq"])
        return [wire.encode_event(e) for e in batch]


class PollSource(Source):
    """No hub: this connection polls the table itself (the baseline the hub is measured against).
    ``on_poll`` counts each poll (the endpoint's ``directPolls``)."""

    def __init__(
        self,
        store: DynamoStore,
        execution_id: str,
        after: int,
        poll_seconds: float,
        on_poll: Callable[[], None],
    ) -> None:
        self._store, self._id, self._last = store, execution_id, after
        self._poll_seconds = poll_seconds
        self._on_poll = on_poll

    async def get(self, timeout: float | None) -> list[wire.Encoded] | None:
        loop = asyncio.get_running_loop()
        until = loop.time() + (timeout or 0.0)
        while True:
            batch = await run_in_threadpool(self._store.events_after, self._id, self._last)
            self._on_poll()
            if batch:
                self._last = int(batch[-1]["seq"])
                return [wire.encode_event(e) for e in batch]
            left = until - loop.time()
            if left <= 0:
                return []
            await asyncio.sleep(min(self._poll_seconds, left))


class HubSource(Source):
    """The backlog (from the feed's memory, else the table), then what the feed offers — in seq
    order, each seq once; a gap (events the feed had before this subscriber joined) is read from
    the table.

    Table reads go one page per call, until every seq up to ``_upto`` is in: a Query returns at
    most 1 MB, so with large events (a result preview is up to 16 KB) one read of a backlog or a
    gap can stop short, and the events it left out would be skipped for good. Page by page, a
    stream also never holds more than a page of its backlog in memory."""

    def __init__(
        self, store: DynamoStore, execution_id: str, after: int, feed: Feed, sub: Subscriber
    ) -> None:
        self._store, self._id, self._last = store, execution_id, after
        self._feed = feed
        self._backlog_taken = False  # the first get() takes the backlog from the feed
        self._sub = sub
        self._upto = after  # seqs up to this one are read from the table before the buffer is served

    @property
    def subscriber(self) -> Subscriber:
        return self._sub

    def leave(self) -> None:
        """Unsubscribe from the feed: frees the buffer at once, even if the feed has ended."""
        Hub.unsubscribe(self._feed, self._sub)

    async def _page(self) -> list[wire.Encoded]:
        limit = min(PAGE, self._upto - self._last)
        page = await run_in_threadpool(self._store.events_after, self._id, self._last, limit)
        out = [wire.encode_event(e) for e in page if self._last < int(e["seq"]) <= self._upto]
        # (nothing stored in the range cannot happen with a gapless log: move on rather than spin)
        self._last = out[-1].seq if out else self._upto
        return out

    async def get(self, timeout: float | None) -> list[wire.Encoded] | None:
        out: list[wire.Encoded] = []
        if not self._backlog_taken:
            self._backlog_taken = True
            feed = self._feed
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
