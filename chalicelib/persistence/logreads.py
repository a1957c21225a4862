"""Reading an execution's event log: its event items after a seq, in order. The appends are
eventlog.py's; the stream (through it) and the webhook lanes read with this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .keys import LAST_EVENT_SK, event_sk, pk
from .table import Item, from_item, to_item

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
