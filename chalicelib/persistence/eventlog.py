"""The per-execution event log: the append protocol (its reads are ``logreads.py``).

Events get ``seq`` 1, 2, 3… with no gap and no duplicate, and an idempotency key each (see
``EventLog.append_event``): ``KEY#`` markers, the next ``EVT#`` item put with its marker in one
transaction, and, under contention, a queue of ``EVT~Q#`` items drained in order by whoever holds
the execution's lease. Every item's key comes from ``keys.py``.

It does not decide what to append or build event bodies (``chalicelib.domain.events`` and the
orchestration do); it writes the execution and its tasks only as the ``writes`` a caller hands
``append_with``; for a ``PROGRESS`` event it asks the ``read_meta`` it was handed for the counters.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..domain import events as ev
from ..domain.errors import AppendContention
from ..domain.model import now_ms
from ..redact import Redactor
from .appendlease import AppendLease, LeaseLost
from .appendqueue import PROGRESS, QUEUED, Enqueued
from .contention import RecentContention
from .drainplan import coalesced_run, known_seq, plan_chunk, type_of
from .eventwrites import _DUPLICATE, _RACE, _WRITTEN, EventWrites, Payload, Progress

__all__ = ["PROGRESS", "QUEUED", "EventLog", "Payload"]
from .keys import (
    EVENT_PREFIX,
    LAST_EVENT_SK,
    LEASE_SK,
    MARKER_PREFIX,
    QUEUED_PREFIX,
    marker_sk,
    pk,
)
from .table import Item, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

log = logging.getLogger(__name__)

_LEASE_MARGIN_S = 3  # a drain stops a chunk this long before its lease would run out
# Queued events drained per chunk (one BatchGetItem of markers each): 99 puts and the lease's
# ConditionCheck fill a transaction's 100 actions.
_CHUNK = 99
_WAIT_S = 120  # how long a waiting writer watches for its queued event before giving up
# Direct tries (tail read + one transaction each) before a writer queues its event: a lost race
# costs two calls, while queueing makes every writer after it queue too until the queue drains.
_DIRECT_TRIES = 3
# An append that carries a task's writes tries once: its transaction holds the task and META (the
# largest items it writes), and a lost race is billed for all of them (twice, as a transaction).
# After one lost race the writers of an execution are many at once: the queue is cheaper.
_DIRECT_TRIES_WITH_WRITES = 1


class EventLog(EventWrites):
    """The event logs of every execution in one table: appends and reads, by execution id."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        redactor: Redactor,
        read_meta: Callable[[str], Item],
        expiry: Callable[[str], int | None] = lambda _: None,
    ) -> None:
        super().__init__(client, table_name)
        self._redactor = redactor
        self._read_meta = read_meta  # the execution's META item, for PROGRESS events
        self._expiry = expiry  # on every item written here (expiry.py), riding on writes made anyway
        self._lease = AppendLease(client, table_name, expiry)
        self._contended = RecentContention()  # executions to queue for at once (contention.py)

    def append_event(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> int | None:
        """Append one event under an idempotency ``key``; return its seq (0 if refused).

        Appending the same key twice returns the first seq and writes nothing, because of one
        invariant: *every event below the tail has a KEY# marker*. A writer reads the tail, then
        puts ``EVT#<tail+1>`` and the key's marker, both conditional on being new, and the tail's
        marker if the tail is not ``marked``, in one transaction. So a key is taken iff its
        marker exists or it is the tail's key: the marker's condition is the duplicate check.

        ``payload`` may be a callable, called after the tail is read: a payload built from state
        read *after* the tail is then monotonic in seq. ``PROGRESS`` stands for
        ``execution.updated`` with the counters read at write time.

        Nothing is appended after the terminal event (a cancelled execution's late task Lambdas
        are refused: 0 is returned).

        Under contention (many task Lambdas of one execution finishing at once) a writer whose
        put loses the race — or who finds events already queued — *queues* its event (``EVT~Q#``
        items, ordered by a per-execution ticket) and, if no one holds the execution's append
        lease, takes it and writes every queued event in queue order. Correctness never depends
        on the lease: every write of an event is conditional on its seq being free.

        Order: an append that returned (queued or written) comes before any append that starts
        after it, because a writer never puts directly while events are queued. So ``wait=False``
        may return as soon as the event is queued — ``None`` then, unless this writer drained
        it — and the event is still written before anything its writer does next. Someone always
        drains it: a lease holder looks at the queue again after releasing the lease. Only a
        holder that dies leaves the queue until its lease expires and the next append; so the
        last event of an execution (the terminal one) is appended with ``wait=True``, which waits
        for it to be written, taking over an expired lease.
        """
        seq = self._try_append(execution_id, key, payload, timestamp, _DIRECT_TRIES, behind_queue=True)
        if seq is not None:
            return seq
        if callable(payload):
            payload = payload()
        # A queued event keeps the time it happened (progress events: when they are written).
        if timestamp is None and payload != PROGRESS:
            timestamp = now_ms()
        queued = self._enqueue(execution_id, key, payload, timestamp)
        written = self._drain_while_free(execution_id) if queued == Enqueued.FREE else {}
        if key in written:
            return written[key]
        if not wait:
            return None
        return self._wait_until_written(execution_id, key)

    def _wait_until_written(self, execution_id: str, key: str) -> int:
        """Wait for a queued event to be written, draining the queue whenever no live lease holder
        does; its seq. ``AppendContention`` if it is still unwritten after ``_WAIT_S``."""
        marker_key = to_item({"PK": pk(execution_id), "SK": marker_sk(key)})
        lease_key = self._lease.key(execution_id)
        pause = 0.05
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            # One read per round: is our event written (its marker), and is anyone draining?
            found = {str(i["SK"]): i for i in map(from_item, self._batch_get([marker_key, lease_key]))}
            if marker_sk(key) in found:
                return int(found[marker_sk(key)]["seq"])
            if AppendLease.is_free(found.get(LEASE_SK)):
                written = self._drain_while_free(execution_id)
                if key in written:
                    return written[key]
                continue
            # Someone is draining (our event too): wait, backing off so waiters do not crowd the table.
            time.sleep(random.uniform(pause, 2 * pause))
            pause = min(1.0, pause * 1.5)
        raise AppendContention(f"could not append {key!r} to {execution_id}")

    def _try_append(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None,
        attempts: int,
        behind_queue: bool = False,
    ) -> int | None:
        """The direct protocol; the seq, or None after ``attempts`` lost races.

        ``behind_queue``: give up (None) if events are queued — they go first.
        """
        for _ in range(attempts):
            tail = self._top(execution_id) if behind_queue else self._tail(execution_id)
            if tail is not None and str(tail["SK"]).startswith(QUEUED_PREFIX):
                return None
            if tail is not None and (tail["idemKey"] == key or tail["type"] in ev.TERMINAL_TYPES):
                # ours, else written before the end (its marker) or refused (0)
                return (
                    int(tail["seq"]) if tail["idemKey"] == key else self._marked_seq(execution_id, key) or 0
                )
            outcome = self._transact_event(execution_id, key, payload, timestamp, tail, ())
            if outcome == _WRITTEN:
                return int(tail["seq"]) + 1 if tail is not None else 1
            marked = self._marked_seq(execution_id, key) if outcome == _DUPLICATE else None
            if marked is not None:  # (none: the marker's write conflicted with another in flight)
                return marked
        return None

    def append_with(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event,
        writes: Sequence[Mapping[str, Any]],
        progress: Progress | None = None,
    ) -> int | None:
        """Append one event and apply ``writes`` (TransactWriteItems Updates: a task's or META's
        change) in one transaction: the seq. Under contention (events queued, or every direct try
        lost its race) the event is *queued* in the same transaction as the writes: ``QUEUED``,
        written before anything its writer does next, as with ``append_event(wait=False)``. None
        if nothing was written (the key is the tail's, the log ended, a write's condition
        failed): the caller then writes alone and appends with ``append_event``, which sorts out
        each of those cases. ``progress``: an ``execution.updated`` written or queued right
        behind it, in the same write."""
        # Contended a moment ago: queue at once, with no read of the tail to learn it again (a
        # key already written, or a log that ended, is then sorted out by the writes' conditions
        # and the drain, as for any queued event).
        blind = self._contended.recent(execution_id)
        saw_queue = blind
        for _ in range(0 if blind else _DIRECT_TRIES_WITH_WRITES):
            tail = self._top(execution_id)
            saw_queue = tail is not None and str(tail["SK"]).startswith(QUEUED_PREFIX)
            if saw_queue:
                break  # events are queued: this one goes behind them (and someone likely drains)
            if tail is not None and (tail["idemKey"] == key or tail["type"] in ev.TERMINAL_TYPES):
                return None
            outcome = self._transact_event(execution_id, key, payload, None, tail, writes, progress)
            if outcome == _WRITTEN:
                return int(tail["seq"]) + 1 if tail is not None else 1
            if outcome != _RACE:
                return None
        if not blind:  # seen now (a queue, a lost race): only what is seen extends the window
            self._contended.saw(execution_id)
        then = progress.key if progress is not None else None
        queued = self._enqueue(execution_id, key, payload, now_ms(), writes, then, check_lease=saw_queue)
        if queued == Enqueued.REFUSED:
            return None
        if queued == Enqueued.FREE:
            self._drain_while_free(execution_id)
        return QUEUED

    def _marked_seq(self, execution_id: str, key: str) -> int | None:
        """The seq the key's marker holds (0: an event refused after the end); None without one."""
        marker_key = to_item({"PK": pk(execution_id), "SK": marker_sk(key)})
        out = self._db.get_item(TableName=self._table, Key=marker_key, ConsistentRead=True)
        return int(from_item(out["Item"])["seq"]) if "Item" in out else None

    def _drain_while_free(self, execution_id: str) -> dict[str, int]:
        """Drain the queue while no one else holds the lease; the seqs this caller wrote, by key.

        After releasing the lease the holder looks at the queue once more: an event queued by a
        writer that found the lease taken is then either seen here or by the next holder."""
        written: dict[str, int] = {}
        while True:
            taken = self._lease.acquire(execution_id)
            if taken is None:
                return written
            try:
                if taken.took_over:
                    self._mark_recent(execution_id)
                written.update(self._drain(execution_id, taken.holder))
            except BaseException:
                # A call failed (a throttle botocore gave up on) maybe between a chunk's events and
                # their markers: the next holder must mark the newest events first, as after a
                # holder that died. A released lease would not tell it to.
                self._lease.run_out(execution_id, taken.holder)
                raise
            self._lease.release(execution_id, taken.holder)
            if not self._queued(execution_id, 1):
                return written

    def _mark_recent(self, execution_id: str) -> None:
        """Mark the newest events. A holder whose lease ran out may have died (or stalled) after
        writing a chunk and before marking it, leaving events below the tail unmarked; the
        duplicate check needs them marked before anything is written above them. Its unmarked
        events are among the last chunk it wrote, plus at most the one put it had under way."""
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_item(
                {":p": pk(execution_id), ":lo": EVENT_PREFIX, ":hi": LAST_EVENT_SK}
            ),
            ProjectionExpression="idemKey, seq",
            ScanIndexForward=False,
            Limit=_CHUNK + 1,
            ConsistentRead=True,
        )
        self._put_markers(
            execution_id, {str(i["idemKey"]): int(i["seq"]) for i in map(from_item, out["Items"])}
        )

    def _drain(self, execution_id: str, holder: str) -> dict[str, int]:
        """Append queued events in queue order, mark and dequeue them; their seqs by key.

        A chunk of up to 99 queued events costs a few calls whatever its size: one BatchGetItem
        for the markers of the whole chunk, one transaction of its events, each put conditional
        on its seq being free (the tail is known: we just wrote it), then the chunk's markers and
        its dequeue in batches of 25. Until its
        markers are written, the chunk's events below the tail are unmarked — harmless, because
        direct writers do not write while the chunk is queued (they see it, ``_top``), and no
        other drainer runs while our lease lasts: it is renewed before each chunk, a chunk stops 3 s
        before the lease would run out, and every put checks the lease in its transaction (a put
        held up past a takeover is refused: ``AppendLease.held_by``). If a put would lose a race
        (a direct writer that looked before the chunk was queued), the chunk goes one put at a
        time, and the event that lost goes through the full protocol.
        """
        written: dict[str, int] = {}
        tail: Item | None = None
        held = self._lease.held_by(execution_id, holder)  # in every put's transaction
        while True:
            lease_until = self._lease.renew(execution_id, holder)
            if lease_until is None:
                return written
            items = self._queued(execution_id, _CHUNK)
            if not items:
                return written
            # Tail first, markers second (as in _try_append): an event below the tail we read was
            # marked before that tail was written, so the marker read sees it.
            if tail is None:
                tail = self._marked_tail(execution_id)
            done, chunk, tail = self._append_chunk(execution_id, items, tail, lease_until, held)
            # The writers waiting for these keys read their markers (seq 0: refused, after the end).
            self._put_markers(execution_id, chunk)
            written.update(chunk)
            self._dequeue(done)
            if len(done) < len(items):  # the lease is running out: let the caller release it
                return written

    def _append_chunk(
        self,
        execution_id: str,
        items: list[Item],
        tail: Item | None,
        lease_until: float,
        held: Mapping[str, Any],
    ) -> tuple[list[Item], dict[str, int], Item | None]:
        """Append a chunk of queued events in order while the lease lasts, ``tail`` being the
        marked tail; every put in a transaction with ``held`` (the lease is still ours). The queue
        items handled (a prefix of ``items``), the seqs still to mark by key, and the new tail."""
        marked = self._markers_of(execution_id, items, tail)
        if time.time() < lease_until - _LEASE_MARGIN_S:
            try:
                at_once = self._chunk_at_once(execution_id, items, tail, marked, held)
            except LeaseLost:  # taken over before the chunk landed: nothing written, nothing to mark
                return [], {}, tail
            if at_once is not None:
                return at_once
        return self._chunk_one_by_one(execution_id, items, tail, lease_until, held, marked)

    def _chunk_one_by_one(
        self,
        execution_id: str,
        items: list[Item],
        tail: Item | None,
        lease_until: float,
        held: Mapping[str, Any],
        marked: dict[str, int],
    ) -> tuple[list[Item], dict[str, int], Item | None]:
        """``_append_chunk`` an event at a time: after a put of the chunk lost its race."""
        done: list[Item] = []
        chunk: dict[str, int] = {}  # key → seq, to mark
        meta: Item | None = None  # read once per chunk, for its progress events
        i = 0
        while i < len(items) and time.time() < lease_until - _LEASE_MARGIN_S:
            run = coalesced_run(items, i, tail, marked, chunk)
            i += len(run)
            item = run[0]
            raw = str(item["payload"])
            payload: ev.Event | str = raw if raw == PROGRESS else json.loads(raw)
            key = str(item["idemKey"])
            body = payload
            if payload == PROGRESS:
                # Read after every event below it was written (and every task it stands for was
                # counted before queueing): as fresh as a read per event, and never older than a
                # progress event before it. A race lost below reads afresh (``payload``).
                meta = meta or self._read_meta(execution_id)
                body = ev.execution_updated(meta)
            try:
                seq = self._append_known(
                    execution_id, key, body, item.get("timestamp"), tail, marked, chunk, held
                )
            except LeaseLost:
                break  # taken over: mark and dequeue what was written; the new holder does the rest
            if seq is None:  # lost a race: mark what we wrote, then the full protocol
                self._put_markers(execution_id, chunk)
                marked.update(chunk)
                chunk = {}
                seq, tail = self._append_contended(
                    execution_id, key, payload, item.get("timestamp"), lease_until
                )
                if seq is None:  # the lease is running out: the item stays queued for the next holder
                    break
                if tail is not None:
                    marked.setdefault(str(tail["idemKey"]), int(tail["seq"]))
            elif seq and seq == (int(tail["seq"]) + 1 if tail else 1):
                tail = {"seq": seq, "idemKey": key, "type": type_of(payload)}
            for r in run:
                chunk[str(r["idemKey"])] = seq
            done += run
        return done, chunk, tail

    def _markers_of(self, execution_id: str, items: list[Item], tail: Item | None) -> dict[str, int]:
        """The seqs already given to the keys of ``items`` (their markers, and the tail's), by key."""
        keys = sorted({str(i["idemKey"]) for i in items})
        found = self._batch_get([to_item({"PK": pk(execution_id), "SK": marker_sk(k)}) for k in keys])
        marked = {str(m["SK"]).removeprefix(MARKER_PREFIX): int(m["seq"]) for m in map(from_item, found)}
        if tail is not None:  # the tail itself may be one of ours (a put whose answer was lost)
            marked.setdefault(str(tail["idemKey"]), int(tail["seq"]))
        return marked

    def _chunk_at_once(
        self,
        execution_id: str,
        items: list[Item],
        tail: Item | None,
        marked: Mapping[str, int],
        held: Mapping[str, Any],
    ) -> tuple[list[Item], dict[str, int], Item | None] | None:
        """The whole chunk's events in one transaction (``drainplan.plan_chunk``), each put
        conditional on its seq being free; None if one was not (a direct writer that looked
        before the chunk was queued took it): nothing was written, the caller goes one by one
        (``LeaseLost``: another holder took over). Progress events read META once, after every
        event below them was written."""
        meta: list[Item] = []

        def event_item(key: str, payload: ev.Event | str, timestamp: Any, seq: int) -> Item:
            if payload == PROGRESS:
                meta[:] = meta or [self._read_meta(execution_id)]
                payload = ev.execution_updated(meta[0])
            return self._event_item(execution_id, key, payload, timestamp, seq)

        puts, chunk, new_tail = plan_chunk(items, tail, marked, event_item)
        if puts and not self._put_drained(execution_id, puts, held):
            return None
        return items, chunk, new_tail

    def _append_contended(
        self, execution_id: str, key: str, payload: ev.Event | str, timestamp: int | None, lease_until: float
    ) -> tuple[int | None, Item | None]:
        """One drained event through the full protocol, after its put lost a race: its seq, and the
        new tail (marked); None if the lease ran low first. A drainer never writes once another
        may hold the lease: events that the next holder has written but not yet marked would not
        be seen as taken."""
        while time.time() < lease_until - _LEASE_MARGIN_S:
            seq = self._try_append(execution_id, key, payload, timestamp, 1)
            if seq is not None:
                return seq, self._marked_tail(execution_id)
        return None, None

    def _marked_tail(self, execution_id: str) -> Item | None:
        """The tail, read from the table, with its marker written (helping its writer): every
        event we put above it then leaves it marked, as the invariant requires."""
        tail = self._tail(execution_id)
        if tail is not None:
            self._put_markers(execution_id, {str(tail["idemKey"]): int(tail["seq"])})
        return tail

    def _append_known(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | str,
        timestamp: int | None,
        tail: Item | None,
        marked: Mapping[str, int],
        chunk: Mapping[str, int],
        held: Mapping[str, Any],
    ) -> int | None:
        """One event of a drained chunk, the tail and the markers known: its seq, 0 if refused,
        None if another writer took the next seq first (``LeaseLost`` if another holder took over)."""
        seq = known_seq(key, tail, marked, chunk)
        if seq is not None:
            return seq
        n = int(tail["seq"]) if tail is not None else 0
        return self._put_event(execution_id, key, payload, timestamp, n + 1, held)

    def _put_markers(self, execution_id: str, seqs: Mapping[str, int]) -> None:
        self._batch_write(
            [{"PutRequest": {"Item": self._marker(execution_id, k, seq)}} for k, seq in seqs.items()]
        )

    def seed(self, execution_id: str, events: list[tuple[str, ev.Event]], timestamp: int) -> None:
        """The first events (seq 1, 2, …, with markers) of a log nobody can see or write yet (no
        META), in batches: a rerun's ``execution.created`` and its reused tasks' completions."""
        items = [
            self._event_item(execution_id, k, dict(b), timestamp, n) for n, (k, b) in enumerate(events, 1)
        ]
        self._batch_write([{"PutRequest": {"Item": to_item(i)}} for i in items])
        self._put_markers(execution_id, {str(i["idemKey"]): int(i["seq"]) for i in items})
