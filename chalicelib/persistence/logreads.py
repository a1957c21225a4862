"""Reading an execution's event log: the tail, the top of the append queue, the events after a seq.
``EventLog`` (eventlog.py) appends on top of ``LogReads``; the stream (through it) and the webhook
lanes (``event_items_after``) read the log with these.

It writes nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..domain import events as ev
from .keys import EVENT_PREFIX, LAST_EVENT_SK, LAST_QUEUED_SK, event_sk, pk
from .table import Item, Table, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any


def event_items_after(
    db: DynamoDBClient, table: str, execution_id: str, after_seq: int, limit: int, consistent: bool = True
) -> list[Item]:
    """The execution's event items (``seq``, ``type``, ``data``: the event as stored) with seq >
    ``after_seq``, in seq order, at most ``limit``, in one Query: what the stream and the webhook
    lanes read the log with."""
    out = db.query(
        TableName=table,
        KeyConditionExpression="PK = :p AND SK BETWEEN :lo AND :hi",
        ExpressionAttributeValues=to_item(
            {":p": pk(execution_id), ":lo": event_sk(after_seq + 1), ":hi": LAST_EVENT_SK}
        ),
        ConsistentRead=consistent,
        Limit=limit,
    )
    return [from_item(i) for i in out.get("Items", [])]


class LogReads(Table):
    """Reads of the event logs of every execution in one table, by execution id."""

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
