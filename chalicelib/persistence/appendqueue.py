"""The append queue of an execution's event log: ``EVT~Q#<ticket>`` items in the execution's
partition, sorting just after its ``EVT#`` items, so that one query (``LogReads._top``) tells a
writer the tail *and* whether anything is queued. Tickets come from an atomic counter
(``QUEUE#<id> / TICKET``): queue order is the order appends began in.

Here only the queue's items: enqueue (with the writes that go with the event, in one transaction),
list, dequeue. Draining them in order under the lease is ``eventlog.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, Final

from botocore.exceptions import ClientError

from ..domain import events as ev
from ..domain.model import now_ms
from ..domain.wire import dumps
from .expiry import with_expiry
from .keys import LEASE_SK, QUEUED_PREFIX, TICKET_SK, TTL_ATTRIBUTE, pk, queue_pk, queued_sk
from .logreads import LogReads
from .table import Item, error_code, from_item, to_item

PROGRESS: Final = "progress"  # a queued payload: execution.updated with the counters at write time
QUEUED: Final = -1  # append_with: the writes are made and the event is queued, not yet written


class Enqueued(Enum):
    HELD = "held"  # queued; a live lease holder will write it
    FREE = "free"  # queued; nobody holds the lease: the writer drains
    REFUSED = "refused"  # nothing queued: one of the writes failed its condition


TRANSACTION_CANCELLED: Final = "TransactionCanceledException"
_LOST: Final = ("ConditionalCheckFailed", "TransactionConflict")


class AppendQueue(LogReads):
    _expiry: Callable[[str], int | None]

    def _enqueue(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | str,
        timestamp: int | None,
        writes: Sequence[Mapping[str, Any]] = (),
        then_progress: str | None = None,
        check_lease: bool = True,
    ) -> Enqueued:
        """Queue the event behind the queued ones, with ``writes`` in the same transaction.

        The transaction also checks that the append lease has a live holder: then ``HELD`` — the
        holder drains it, since it looks at the queue again after releasing the lease, which is
        after this write — and the writer need not try to take the lease (a call that under
        contention nearly always fails). Else it is queued without the check: ``FREE``, the
        caller drains. ``REFUSED`` if a write's condition failed and nothing was queued (its
        ticket stays unused: the queue is ordered by tickets, a gap in them changes nothing).
        ``then_progress``: the key of an ``execution.updated`` queued right behind it (its
        counters read when it is written), in the same write. ``check_lease=False``: the writer
        saw no queue (it lost a race to a direct writer), so no one is likely to drain: queued
        without the check, ``FREE`` — a check that fails costs the whole transaction again."""
        keys = [key] if then_progress is None else [key, then_progress]
        expiry = self._expiry(execution_id)  # the counter outlives the queue: it goes with the execution
        ttl = "" if expiry is None else f" SET {TTL_ATTRIBUTE} = :ttl"
        out = self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": queue_pk(execution_id), "SK": TICKET_SK}),
            UpdateExpression="ADD n :k" + ttl,
            ExpressionAttributeValues=to_item({":k": len(keys), **({":ttl": expiry} if ttl else {})}),
            ReturnValues="UPDATED_NEW",
        )
        last = int(from_item(out["Attributes"])["n"])
        bodies = [payload if isinstance(payload, str) else dumps(dict(payload)), PROGRESS]
        items = [
            {
                "PK": pk(execution_id),
                "SK": queued_sk(last - len(keys) + 1 + i),
                "idemKey": k,
                "payload": bodies[i],
                "timestamp": timestamp if i == 0 else None,  # progress: when it is written
            }
            for i, k in enumerate(keys)
        ]
        ops: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": to_item(with_expiry(i, expiry))}} for i in items
        ]
        ops += [{"Update": {"TableName": self._table, **w}} for w in writes]
        held = {
            "TableName": self._table,
            "Key": to_item({"PK": queue_pk(execution_id), "SK": LEASE_SK}),
            "ConditionExpression": "attribute_exists(holder) AND expires > :now",
            "ExpressionAttributeValues": to_item({":now": now_ms()}),
        }
        failed = self._transact([*ops, {"ConditionCheck": held}] if check_lease else ops)
        if not failed:
            return Enqueued.HELD if check_lease else Enqueued.FREE
        if any(failed[: len(ops)]) or not check_lease or self._transact(ops):
            return Enqueued.REFUSED
        return Enqueued.FREE

    def _transact(self, ops: list[dict[str, Any]]) -> list[bool]:
        """TransactWriteItems; [] if it committed, else which items failed: their condition, or a
        conflict with another transaction in flight on the same item (DynamoDB's
        ``TransactionConflict``: for an append, as good as a lost race). A cancellation for any
        other reason (throttling, validation) is raised."""
        try:
            self._db.transact_write_items(TransactItems=ops)  # type: ignore[arg-type]
        except ClientError as exc:
            if error_code(exc) != TRANSACTION_CANCELLED:
                raise
            failed = [
                r.get("Code") == "ConditionalCheckFailed" for r in exc.response.get("CancellationReasons", [])
            ]
            if not any(failed):
                raise
            return failed
        return []

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
