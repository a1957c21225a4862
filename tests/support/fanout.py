"""Whether the local stack's fan-out has caught up with its table's stream: the point after which
tests can check that nothing more arrives (no late duplicate, no delivery to a deleted webhook)
instead of waiting a while for it; and the stream records a test feeds the fan-out by hand."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3

from chalicelib.domain.model import ExecutionStatus, now_ms
from chalicelib.orchestration.submission import new_execution_id
from chalicelib.persistence.keys import META_SK, pk
from chalicelib.persistence.table import to_item
from dagcast.local.lambdas import FANOUT
from dagcast.local.moto.poller import iterator_start


def fanned_out(stack: Any) -> bool:
    """Whether the stack's stream poller has acknowledged every record in the stream so far: each
    event written before the call has been through the fan-out handler, which wrote its deliveries
    and sent them (or left them to the retry function), and no record is left to deliver again."""
    poller = stack.poller
    streams = boto3.client("dynamodbstreams")
    for shard in streams.describe_stream(StreamArn=poller.stream_arn)["StreamDescription"]["Shards"]:
        start = iterator_start(poller.checkpoints.get(poller.stream_arn, shard["ShardId"]))
        iterator = streams.get_shard_iterator(StreamArn=poller.stream_arn, ShardId=shard["ShardId"], **start)
        if streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)["Records"]:
            return False
    return True


def stream_record(item: dict[str, Any], sequence_number: str) -> dict[str, Any]:
    """The stream record (INSERT, NEW_IMAGE) the event source mapping would hand the fan-out for a
    stored event item (plain values, as ``WebhookStore.log_after`` reads them)."""
    image = to_item(item)
    return {
        "eventID": f"{item['PK']}-{item['SK']}-{sequence_number}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "Keys": {"PK": image["PK"], "SK": image["SK"]},
            "NewImage": image,
            "SequenceNumber": sequence_number,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def record(
    execution_id: str,
    seq: int,
    *,
    data: str | None = None,
    sk: str | None = None,
    type: str = "substep.started",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A stream record of an event item, as the event source mapping hands it to the fan-out."""
    event = {
        "type": type,
        "executionId": execution_id,
        "seq": seq,
        "timestamp": timestamp or now_ms(),
    }
    keys = {"PK": {"S": f"EXEC#{execution_id}"}, "SK": {"S": sk or f"EVT#{seq:012d}"}}
    return {
        "eventID": f"{execution_id}-{seq}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "Keys": keys,
            "NewImage": {**keys, "data": {"S": data if data is not None else json.dumps(event)}},
            "SequenceNumber": f"{seq:05d}{execution_id}",
            "StreamViewType": "NEW_IMAGE",
        },
    }


@contextlib.contextmanager
def fan_out_by_hand(stack: Any) -> Iterator[None]:
    """The stack's stream poller runs a fan-out that acknowledges every record and does nothing
    while the block runs (and until the stream has been read to its end), so a test can feed the
    records itself — in any order. The poller resumes after its checkpoint with the real one."""
    real = stack.handlers[FANOUT]
    stack.poller.stop()
    stack.handlers[FANOUT] = lambda event, context: {"batchItemFailures": []}
    stack.start_poller()
    try:
        yield
        deadline = time.monotonic() + 60
        while not fanned_out(stack):
            assert time.monotonic() < deadline, "the stack's stream poller did not catch up"
            time.sleep(0.05)
    finally:
        stack.poller.stop()
        stack.handlers[FANOUT] = real
        stack.start_poller()


def bare_execution(services: Any) -> str:
    """A new execution's META and nothing else (no task, no execution.created): a test's own events
    are then its whole log. The event log reads an execution's expiry from its META and refuses
    events of an execution that does not exist."""
    eid = new_execution_id()
    item = {
        "PK": pk(eid),
        "SK": META_SK,
        "executionId": eid,
        "status": ExecutionStatus.RUNNING,
        "totalTasks": 6,
    }
    boto3.client("dynamodb").put_item(TableName=services.store._table, Item=to_item(item))
    return eid
