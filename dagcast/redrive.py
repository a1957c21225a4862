"""``dagcast fanout redrive``: deliver what the fan-out gave up on, from the table.

After its retries the stream's event source mapping sends a failed batch's *coordinates* to the
on-failure SQS queue (``dagcast-<stage>-fanout-failures``): shard id, first and last sequence
number, approximate arrival times — not the records, which the stream keeps 24 hours. For each
message this finds the events it names and hands them, read from the table, to the ``fanout``
function as a stream batch of its own, so they go exactly where the fan-out would have sent them:
webhook deliveries (idempotent: a lane sends what its cursor has not passed), EventBridge (at least
once), metrics. A message is deleted only once the function has taken every record of it.

Which events a message names, in order of preference:
1. ``records`` in the message (the local poller adds them; AWS does not);
2. the stream, while it still holds the records: ``AT_SEQUENCE_NUMBER`` from the first sequence
   number to the last, keeping the event items' keys;
3. once the records have expired (``TrimmedDataAccessException``, or the shard is gone): every event
   whose ``timestamp`` lies between the first record's arrival less ``margin`` (an event is stored
   after its timestamp is taken, queued appends later still) and the last record's arrival — one
   scan of the table per such message. Events outside the batch that fall in the window are
   delivered again too, which the webhook lanes ignore and EventBridge consumers dedupe.

It creates no clients (the CLI does) and knows nothing of the fan-out's internals: it calls the
function as the event source mapping does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from chalicelib.persistence.keys import EVENT_PREFIX, event_position, event_sk, pk
from chalicelib.persistence.table import Item, Table, error_code, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
else:
    DynamoDBClient = DynamoDBStreamsClient = Any
# No boto3 stubs for these two in the dev dependencies.
LambdaClient = Any
SQSClient = Any

# A stream batch in, the function's answer out ({"batchItemFailures": [...]}).
Deliver = Callable[[dict[str, Any]], dict[str, Any]]
Position = tuple[str, int]  # (execution id, seq)

# The stream no longer holds the message's records (trimmed after 24 h, or the shard deleted).
EXPIRED_CODES: Final = frozenset(
    {"TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException"}
)
_RECORDS_PER_BATCH = 100  # the mapping's batch size
_BATCH_BYTES = 4_000_000  # under Lambda's 6 MB synchronous payload, with room for the envelope


@dataclass
class MessageOutcome:
    message_id: str
    source: str  # "records", "stream" or "window"
    events: int
    failed: int  # records the function did not take: the message stays in the queue
    deleted: bool


@dataclass
class RedriveReport:
    outcomes: list[MessageOutcome] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return sum(1 for o in self.outcomes if not o.deleted)


def lambda_deliver(client: LambdaClient, function_name: str) -> Deliver:
    """The fan-out function, invoked synchronously as the event source mapping does."""

    def deliver(batch: dict[str, Any]) -> dict[str, Any]:
        out = client.invoke(FunctionName=function_name, Payload=json.dumps(batch).encode())
        payload = out["Payload"].read()
        if out.get("FunctionError"):
            raise RuntimeError(f"{function_name} failed: {payload[:500]!r}")
        return dict(json.loads(payload or b"{}"))

    return deliver


class EventReader(Table):
    """The events a message names, read from the table (never from the stream's images)."""

    def events(self, positions: list[Position]) -> list[Item]:
        keys = [to_item({"PK": pk(e), "SK": event_sk(s)}) for e, s in sorted(set(positions))]
        found = [from_item(i) for i in self._batch_get(keys)]
        return sorted(found, key=lambda i: (str(i["PK"]), int(i["seq"])))

    def events_between(self, first_ms: int, last_ms: int) -> list[Position]:
        """Every event whose timestamp is within [first_ms, last_ms]: a scan (the log has no time
        index), paged, reading only what the decision needs."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(SK, :e)",
            "ProjectionExpression": "PK, SK, #d",
            "ExpressionAttributeNames": {"#d": "data"},
            "ExpressionAttributeValues": to_item({":e": EVENT_PREFIX}),
        }
        found: list[Position] = []
        while True:
            out = self._db.scan(**kwargs)
            for raw in out.get("Items", []):
                item = from_item(raw)
                execution_id, seq = event_position(str(item["PK"]), str(item["SK"]))
                stamp = _timestamp(item.get("data"))
                if seq is not None and stamp is not None and first_ms <= stamp <= last_ms:
                    found.append((execution_id, seq))
            if "LastEvaluatedKey" not in out:
                return found
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def _timestamp(data: Any) -> int | None:
    try:
        value = json.loads(str(data)).get("timestamp")
        return int(value) if value is not None else None
    except (ValueError, AttributeError, TypeError):
        return None


def _epoch_ms(iso: Any) -> int:
    return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() * 1000)


class Redrive:
    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        reader: EventReader,
        streams: DynamoDBStreamsClient,
        deliver: Deliver,
        margin_seconds: float = 900,
        visibility_seconds: int = 300,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.reader = reader
        self.streams = streams
        self.deliver = deliver
        self.margin_ms = int(margin_seconds * 1000)
        self.visibility_seconds = visibility_seconds

    def run(self, max_messages: int | None = None, dry_run: bool = False) -> RedriveReport:
        """Every message in the queue (or the first ``max_messages``), each delivered then deleted.
        A received message is hidden for ``visibility_seconds``: one left undeleted (failed, or a
        dry run) comes back after that for the next run."""
        report = RedriveReport()
        for message in self._messages(max_messages):
            report.outcomes.append(self._one(message, dry_run))
        return report

    def _messages(self, max_messages: int | None) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while max_messages is None or len(seen) < max_messages:
            want = 10 if max_messages is None else min(10, max_messages - len(seen))
            out = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=want,
                VisibilityTimeout=self.visibility_seconds,
                WaitTimeSeconds=1,
            )
            # A message kept by this run shows again once its visibility ends: one pass each.
            messages = [m for m in out.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                return
            for message in messages:
                seen.add(message["MessageId"])
                yield dict(message)

    def _one(self, message: dict[str, Any], dry_run: bool) -> MessageOutcome:
        body = json.loads(message["Body"])
        positions, source = self.named(body)
        items = self.reader.events(positions)
        failed = 0 if dry_run else sum(self._send(chunk) for chunk in _chunks(items))
        done = not dry_run and failed == 0
        if done:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return MessageOutcome(str(message.get("MessageId", "")), source, len(items), failed, done)

    def named(self, body: dict[str, Any]) -> tuple[list[Position], str]:
        """The (execution id, seq) of the events a message names, and where they were found."""
        if body.get("records"):
            return [
                (str(r["executionId"]), int(r["seq"])) for r in body["records"] if r.get("seq")
            ], "records"
        info = body["DDBStreamBatchInfo"]
        from_stream = self._from_stream(info)
        if from_stream is not None:
            return from_stream, "stream"
        first = _epoch_ms(info["approximateArrivalOfFirstRecord"]) - self.margin_ms
        last = _epoch_ms(info["approximateArrivalOfLastRecord"]) + 1000  # arrival times are rounded
        return self.reader.events_between(first, last), "window"

    def _from_stream(self, info: dict[str, Any]) -> list[Position] | None:
        """The event items among the batch's records, or None when the stream no longer has them."""
        start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        try:
            iterator: str | None = self.streams.get_shard_iterator(
                StreamArn=info["streamArn"],
                ShardId=info["shardId"],
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=info["startSequenceNumber"],
            )["ShardIterator"]
            found: list[Position] = []
            while iterator:
                out = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in out.get("Records", []):
                    if int(record["dynamodb"]["SequenceNumber"]) > end:
                        return found
                    keys = from_item(record["dynamodb"].get("Keys", {}))
                    execution_id, seq = event_position(str(keys.get("PK", "")), str(keys.get("SK", "")))
                    inserted = record.get("eventName") == "INSERT"  # the mapping's filter
                    if inserted and seq is not None and int(record["dynamodb"]["SequenceNumber"]) >= start:
                        found.append((execution_id, seq))
                if not out.get("Records"):
                    break  # an open shard answers empty pages for ever: this is its end for now
                iterator = out.get("NextShardIterator")
        except ClientError as exc:
            if error_code(exc) in EXPIRED_CODES:
                return None
            raise
        return found or None  # nothing left of the batch: expired

    def _send(self, items: list[Item]) -> int:
        """One stream batch to the function; how many of its records it did not take."""
        records = [_record(item, n) for n, item in enumerate(items)]
        answer = self.deliver({"Records": records})
        return len(answer.get("batchItemFailures") or [])


def _record(item: Item, n: int) -> dict[str, Any]:
    """A stream record (INSERT, NEW_IMAGE) of a stored event item, as the mapping hands it over."""
    image = to_item(item)
    return {
        "eventID": f"redrive-{n}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"PK": image["PK"], "SK": image["SK"]},
            "NewImage": image,
            "SequenceNumber": f"{n + 1:021d}",
            "StreamViewType": "NEW_IMAGE",
        },
    }


def _chunks(items: list[Item]) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item, default=str))
        if chunk and (len(chunk) == _RECORDS_PER_BATCH or size + item_size > _BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
