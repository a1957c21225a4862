"""The per-execution event log: the append protocol and the reads of the log.

Events get ``seq`` 1, 2, 3… with no gap and no duplicate, and an idempotency key each, without
transactions (see ``EventLog.append_event``): ``KEY#`` markers, a conditional put of the next
``EVT#`` item, and, under contention, a queue of ``EVT~Q#`` items drained in order by whoever
holds the execution's lease. Every item's key comes from ``keys.py``.

It does not decide what to append or build event bodies (``chalicelib.domain.events`` and the
orchestration do), nor read or write the execution and its tasks: for a ``PROGRESS`` event it asks
the ``read_meta`` it was handed for the counters. Streaming the log to clients is the SSE side's;
here it is only read (``events_after``, the tail).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..domain import events as ev
from ..domain.errors import AppendContention
from ..domain.model import now_ms
from ..domain.wire import dumps
from ..redact import Redactor
from .appendlease import AppendLease
from .expiry import with_expiry
from .keys import (
    EVENT_PREFIX,
    LAST_EVENT_SK,
    LAST_QUEUED_SK,
    LEASE_SK,
    MARKER_PREFIX,
    QUEUED_PREFIX,
    TICKET_SK,
    TTL_ATTRIBUTE,
    event_sk,
    marker_sk,
    pk,
    queue_pk,
    queued_sk,
)
from .logreads import event_items_after
from .table import Item, Table, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

log = logging.getLogger(__name__)

PROGRESS = "progress"  # append_event payload: execution.updated with the counters at write time
Payload = ev.Event | Callable[[], ev.Event] | str

_LEASE_MARGIN_S = 3  # a drain stops a chunk this long before its lease would run out
_CHUNK = 100  # queued events drained per chunk (one BatchGetItem of markers each)
_WAIT_S = 120  # how long a waiting writer watches for its queued event before giving up


def _type_of(payload: ev.Event | str) -> str:
    return str(payload["type"]) if isinstance(payload, dict) else ev.EXECUTION_UPDATED


def _coalesced_run(items: list[Item], start: int) -> list[Item]:
    """``items[start]`` and, if it is a progress event, the progress events right after it: they
    become one event, because each would read the same counters now (every task they stand for
    recorded its counters before queueing)."""
    end = start + 1
    while items[start]["payload"] == PROGRESS and end < len(items) and items[end]["payload"] == PROGRESS:
        end += 1
    return items[start:end]


class EventLog(Table):
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

    def append_event(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> int | None:
        """Append one event under an idempotency ``key``; return its seq (0 if refused).

        Appending the same key twice returns the first seq and writes nothing. Without
        transactions this holds because of one invariant: *every event below the tail has a
        KEY# marker*. Each writer first writes the marker of the current tail (helping whoever
        wrote it), then conditionally puts ``EVT#<tail+1>``. So a key is already taken iff its
        marker exists or it is the tail's key.

        ``payload`` may be a callable, called after the tail is read: a payload built from state
        read *after* the tail is then monotonic in seq. ``PROGRESS`` stands for
        ``execution.updated`` with the counters read at write time.

        Nothing is appended after the terminal event (a cancelled execution's late task Lambdas
        are refused: 0 is returned).

        Under contention (many task Lambdas of one execution finishing at once) a writer whose
        put loses the race — or who finds events already queued — *queues* its event (``EVT~Q#``
        items, ordered by a per-execution ticket) and, if no one holds the execution's append
        lease, takes it and writes every queued event in queue order. Correctness never depends
        on the lease: every write goes through the same conditional put.

        Order: an append that returned (queued or written) comes before any append that starts
        after it, because a writer never puts directly while events are queued. So ``wait=False``
        may return as soon as the event is queued — ``None`` then, unless this writer drained
        it — and the event is still written before anything its writer does next. Someone always
        drains it: a lease holder looks at the queue again after releasing the lease. Only a
        holder that dies leaves the queue until its lease expires and the next append; so the
        last event of an execution (the terminal one) is appended with ``wait=True``, which waits
        for it to be written, taking over an expired lease.
        """
        seq = self._try_append(execution_id, key, payload, timestamp, 1, behind_queue=True)
        if seq is not None:
            return seq
        if callable(payload):
            payload = payload()
        # A queued event keeps the time it happened (progress events: when they are written).
        if timestamp is None and payload != PROGRESS:
            timestamp = now_ms()
        self._enqueue(execution_id, key, payload, timestamp)
        written = self._drain_while_free(execution_id)
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
        """The conditional-put protocol; the seq, or None after ``attempts`` lost races.

        ``behind_queue``: give up (None) if events are queued — they go first.
        """
        marker_key = to_item({"PK": pk(execution_id), "SK": marker_sk(key)})
        for _ in range(attempts):
            # Tail first, marker second: if our key is below the tail we read, its marker was
            # written before that tail event, so the (consistent) marker read must see it.
            tail = self._top(execution_id) if behind_queue else self._tail(execution_id)
            if tail is not None and str(tail["SK"]).startswith(QUEUED_PREFIX):
                return None
            n = 0
            if tail is not None:
                n = int(tail["seq"])
                if tail["idemKey"] == key:
                    return n
                marker = self._db.get_item(TableName=self._table, Key=marker_key, ConsistentRead=True)
                if "Item" in marker:
                    return int(from_item(marker["Item"])["seq"])
                if tail["type"] in ev.TERMINAL_TYPES:
                    return 0  # nothing after the terminal event
                tail_marker = {"PK": pk(execution_id), "SK": marker_sk(tail["idemKey"]), "seq": n}
                self._db.put_item(
                    TableName=self._table, Item=to_item(with_expiry(tail_marker, self._expiry(execution_id)))
                )
            seq = self._put_event(execution_id, key, payload, timestamp, n + 1)
            if seq is not None:
                return seq
        return None

    def _put_event(
        self, execution_id: str, key: str, payload: Payload, timestamp: int | None, seq: int
    ) -> int | None:
        """Put ``EVT#<seq>`` if that seq is free; ``seq``, or None if another writer has it."""
        if payload == PROGRESS:
            body = ev.execution_updated(self._read_meta(execution_id))
        elif callable(payload):
            body = dict(payload())
        else:
            assert isinstance(payload, dict)
            body = dict(payload)
        item = self._event_item(execution_id, key, body, timestamp, seq)
        return (
            seq if self._put_if(Item=to_item(item), ConditionExpression="attribute_not_exists(PK)") else None
        )

    def _event_item(
        self, execution_id: str, key: str, body: dict[str, Any], timestamp: int | None, seq: int
    ) -> Item:
        # Secrets never reach the log: redacted here, before the event is stored.
        body = self._redactor.apply(body)
        body["executionId"] = execution_id
        body["timestamp"] = timestamp if timestamp is not None else now_ms()
        body["seq"] = seq
        item = {
            "PK": pk(execution_id),
            "SK": event_sk(seq),
            "seq": seq,
            "type": body["type"],
            "idemKey": key,
            "data": dumps(body),
        }
        return with_expiry(item, self._expiry(execution_id))

    def seed(self, execution_id: str, events: list[tuple[str, ev.Event]], timestamp: int) -> None:
        """The first events (seq 1, 2, …, with markers) of a log nobody can see or write yet (no
        META), in batches: a rerun's ``execution.created`` and its reused tasks' completions."""
        items = [
            self._event_item(execution_id, k, dict(b), timestamp, n) for n, (k, b) in enumerate(events, 1)
        ]
        self._batch_write([{"PutRequest": {"Item": to_item(i)}} for i in items])
        self._put_markers(execution_id, {str(i["idemKey"]): int(i["seq"]) for i in items})

    # The append queue: EVT~Q#<ticket> items in the execution's partition, sorting just after its
    # EVT# items, so that one query (``_top``) tells a writer the tail *and* whether anything is
    # queued. Tickets come from an atomic counter: queue order is the order appends began in.

    def _enqueue(self, execution_id: str, key: str, payload: ev.Event | str, timestamp: int | None) -> None:
        expiry = self._expiry(execution_id)  # the counter outlives the queue: it goes with the execution
        ttl = "" if expiry is None else f" SET {TTL_ATTRIBUTE} = :ttl"
        out = self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": queue_pk(execution_id), "SK": TICKET_SK}),
            UpdateExpression="ADD n :one" + ttl,
            ExpressionAttributeValues=to_item({":one": 1, **({":ttl": expiry} if ttl else {})}),
            ReturnValues="UPDATED_NEW",
        )
        ticket = int(from_item(out["Attributes"])["n"])
        item = {
            "PK": pk(execution_id),
            "SK": queued_sk(ticket),
            "idemKey": key,
            "payload": payload if isinstance(payload, str) else dumps(dict(payload)),
            "timestamp": timestamp,
        }
        self._db.put_item(TableName=self._table, Item=to_item(with_expiry(item, self._expiry(execution_id))))

    def _queued(self, execution_id: str, limit: int) -> list[Item]:
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND begins_with(SK, :q)",
            ExpressionAttributeValues=to_item({":p": pk(execution_id), ":q": QUEUED_PREFIX}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(i) for i in out.get("Items", [])]

    def _dequeue(self, items: list[Item]) -> None:
        self._batch_write(
            [{"DeleteRequest": {"Key": to_item({"PK": d["PK"], "SK": d["SK"]})}} for d in items]
        )

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
            finally:
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

        A chunk of up to 100 queued events costs about one call per event: one BatchGetItem for
        the markers of the whole chunk, one conditional put per event (the tail is known: we
        just wrote it), then the chunk's markers and its dequeue in batches of 25. Until its
        markers are written, the chunk's events below the tail are unmarked — harmless, because
        direct writers do not write while the chunk is queued (they see it, ``_top``), and no
        other drainer runs while our lease lasts: it is renewed before each chunk, and a chunk
        stops 3 s before the lease would run out. A put that loses a race (a direct writer that
        looked before the chunk was queued) falls back to the full protocol for that event.
        """
        written: dict[str, int] = {}
        tail: Item | None = None
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
            done, chunk, tail = self._append_chunk(execution_id, items, tail, lease_until)
            # The writers waiting for these keys read their markers (seq 0: refused, after the end).
            self._put_markers(execution_id, chunk)
            written.update(chunk)
            self._dequeue(done)
            if len(done) < len(items):  # the lease is running out: let the caller release it
                return written

    def _append_chunk(
        self, execution_id: str, items: list[Item], tail: Item | None, lease_until: float
    ) -> tuple[list[Item], dict[str, int], Item | None]:
        """Append a chunk of queued events in order while the lease lasts, ``tail`` being the
        marked tail. The queue items handled (a prefix of ``items``), the seqs still to mark by
        key, and the new tail."""
        marked = self._markers_of(execution_id, items, tail)
        done: list[Item] = []
        chunk: dict[str, int] = {}  # key → seq, to mark
        i = 0
        while i < len(items) and time.time() < lease_until - _LEASE_MARGIN_S:
            run = _coalesced_run(items, i)
            i += len(run)
            item = run[0]
            raw = str(item["payload"])
            payload: ev.Event | str = raw if raw == PROGRESS else json.loads(raw)
            key = str(item["idemKey"])
            seq = self._append_known(execution_id, key, payload, item.get("timestamp"), tail, marked, chunk)
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
                tail = {"seq": seq, "idemKey": key, "type": _type_of(payload)}
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
    ) -> int | None:
        """One event of a drained chunk, the tail and the markers known: its seq, 0 if refused,
        None if another writer took the next seq first."""
        if key in chunk:
            return chunk[key]
        if key in marked:
            return marked[key]
        if tail is not None and tail["idemKey"] == key:
            return int(tail["seq"])
        if tail is not None and tail["type"] in ev.TERMINAL_TYPES:
            return 0
        n = int(tail["seq"]) if tail is not None else 0
        return self._put_event(execution_id, key, payload, timestamp, n + 1)

    def _put_markers(self, execution_id: str, seqs: Mapping[str, int]) -> None:
        expiry = self._expiry(execution_id)
        markers = [{"PK": pk(execution_id), "SK": marker_sk(k), "seq": seq} for k, seq in seqs.items()]
        self._batch_write([{"PutRequest": {"Item": to_item(with_expiry(m, expiry))}} for m in markers])

    # --- reads of the log

    def _top(self, execution_id: str) -> Item | None:
        """The last queued event if any (EVT~Q#), else the tail event (EVT#), else None."""
        return self._last_between(execution_id, EVENT_PREFIX, LAST_QUEUED_SK)

    def _tail(self, execution_id: str) -> Item | None:
        return self._last_between(execution_id, EVENT_PREFIX, LAST_EVENT_SK)

    def _last_between(self, execution_id: str, lo: str, hi: str) -> Item | None:
        """The execution's item with the greatest sort key in [lo, hi] (consistent), or None."""
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_item({":p": pk(execution_id), ":lo": lo, ":hi": hi}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = out.get("Items", [])
        return from_item(items[0]) if items else None

    def last_seq(self, execution_id: str) -> int:
        tail = self._tail(execution_id)
        return int(tail["seq"]) if tail else 0

    def last_event(self, execution_id: str) -> Item | None:
        """The newest event item (``seq``, ``type``, ``data``), or None before the first."""
        return self._tail(execution_id)

    def events_after(
        self, execution_id: str, after_seq: int, limit: int = 500, consistent: bool = True
    ) -> list[ev.Event]:
        """Events with seq > after_seq in order (at most ``limit``); an eventually consistent read
        (half the RCU) may miss the newest ones, or more: chalicelib/stream/polling.py checks it."""
        items = event_items_after(self._db, self._table, execution_id, after_seq, limit, consistent)
        return [json.loads(i["data"]) for i in items]
