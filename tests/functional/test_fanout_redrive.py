"""``dagcast fanout redrive`` on moto: the on-failure queue's messages (stream coordinates only), the
events they name read from the table — also once the stream no longer holds the records — and
delivered as the fan-out would (webhooks, EventBridge), each message deleted only when done."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.fanout import FanOut
from dagcast.local.lambdas import FANOUT, function_name
from dagcast.redrive import EventReader, Redrive, lambda_deliver
from tests.support.fanout import bare_execution, fan_out_by_hand
from tests.support.receiver import EventBus, Receiver

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def receiver(client) -> Iterator[tuple[Receiver, list[str]]]:
    """A receiver and the ids of the webhooks registered to it (deleted afterwards)."""
    r = Receiver(SECRET).start()
    ids: list[str] = []
    yield r, ids
    r.stop()
    for webhook_id in ids:
        client.http.delete(f"/api/v1/webhooks/{webhook_id}")


def register(client: Client, receiver: tuple[Receiver, list[str]], execution_id: str) -> None:
    body = {"url": receiver[0].url, "secret": SECRET, "executionId": execution_id}
    reply = client.http.post(
        "/api/v1/webhooks", body=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 201, reply.json_body
    receiver[1].append(reply.json_body["webhookId"])


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"fanout-failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def on_failure_message(shard_id: str, stream_arn: str, first: dict[str, Any], last: dict[str, Any]) -> str:
    """What the event source mapping sends its on-failure queue: coordinates, no records."""
    arrivals = [r["dynamodb"]["ApproximateCreationDateTime"] for r in (first, last)]
    return json.dumps(
        {
            "version": "1.0",
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": iso(arrivals[0])
                if isinstance(arrivals[0], int)
                else arrivals[0],
                "approximateArrivalOfLastRecord": iso(arrivals[1])
                if isinstance(arrivals[1], int)
                else arrivals[1],
                "batchSize": 3,
                "streamArn": stream_arn,
            },
        },
        default=str,
    )


def new_records(stack: Any, write: Any) -> tuple[str, list[dict[str, Any]]]:
    """Run ``write`` and answer the stream records it made (shard id, records)."""
    streams = boto3.client("dynamodbstreams")
    arn = stack.poller.stream_arn
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][-1]["ShardId"]
    before = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")
    write()
    records: list[dict[str, Any]] = []
    iterator = before["ShardIterator"]
    while True:
        out = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not out["Records"]:
            return shard, records
        records += [dict(r) for r in out["Records"]]
        iterator = out["NextShardIterator"]


def test_redrive_delivers_what_the_queue_names_from_the_table_also_after_the_stream_expired(
    client, services, stack, queue, receiver
):
    sqs, url = queue
    eid = bare_execution(services)
    register(client, receiver, eid)
    bus = EventBus().create()
    assert services.dispatcher is not None
    fanout = FanOut(services.webhooks, services.dispatcher, bus.events, bus.name, 10)
    with fan_out_by_hand(stack):  # as if the fan-out had failed on all of them: nothing delivered yet

        def write() -> None:
            for n in range(6):
                services.store.append_event(eid, f"test#{n}", {"type": "substep.started", "taskId": n})

        shard, records = new_records(stack, write)
    mine = [
        r for r in records if r["dynamodb"]["Keys"]["PK"]["S"] == f"EXEC#{eid}" and r["eventName"] == "INSERT"
    ]
    events = [r for r in mine if r["dynamodb"]["Keys"]["SK"]["S"].startswith("EVT#")]
    assert len(events) == 6 and receiver[0].keys_for(eid) == []
    arn = stack.poller.stream_arn
    # seqs 1-3: the stream still holds them; seqs 4-6: the stream does not. moto never trims a
    # stream (AWS answers TrimmedDataAccessException after 24 h), so the message names a stream
    # that is gone (ResourceNotFoundException, as AWS answers for a deleted shard or stream).
    sqs.send_message(QueueUrl=url, MessageBody=on_failure_message(shard, arn, events[0], events[2]))
    stamps = [json.loads(r["dynamodb"]["NewImage"]["data"]["S"])["timestamp"] for r in events[3:]]
    gone = arn.replace(f"table/{stack.table_name}/", "table/dagcast-deleted-long-ago/")
    expired = json.loads(on_failure_message(shard, gone, events[3], events[5]))
    info = expired["DDBStreamBatchInfo"]
    info["approximateArrivalOfFirstRecord"], info["approximateArrivalOfLastRecord"] = (
        iso(stamps[0]),
        iso(stamps[-1]),
    )
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(expired))

    def deliver(batch: dict[str, Any]) -> dict[str, Any]:
        return fanout.handle(batch, None)

    redrive = Redrive(
        sqs,
        url,
        EventReader(boto3.client("dynamodb"), stack.table_name),
        boto3.client("dynamodbstreams"),
        deliver,
        margin_seconds=0,
    )
    report = redrive.run()
    assert sorted((o.source, o.deleted) for o in report.outcomes) == [("stream", True), ("window", True)]
    assert receiver[0].keys_for(eid) == [f"{eid}:{s}" for s in range(1, 7)]
    assert {d["seq"] for d in (e["detail"] for e in bus.received()) if d["executionId"] == eid} == set(
        range(1, 7)
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    # idempotent: the same message again delivers nothing twice
    sqs.send_message(QueueUrl=url, MessageBody=on_failure_message(shard, arn, events[0], events[2]))
    assert [o.deleted for o in redrive.run().outcomes] == [True]
    assert receiver[0].keys_for(eid) == [f"{eid}:{s}" for s in range(1, 7)]


def test_redrive_goes_through_the_fanout_function_and_keeps_a_message_it_did_not_finish(
    client, services, stack, queue, receiver
):
    sqs, url = queue
    eid = bare_execution(services)
    register(client, receiver, eid)
    with fan_out_by_hand(stack):
        for n in range(3):
            services.store.append_event(eid, f"test#{n}", {"type": "substep.started", "taskId": n})
    # the local poller's message names the records (its addition to AWS's shape)
    body = {"DDBStreamBatchInfo": {}, "records": [{"executionId": eid, "seq": s} for s in (1, 2, 3)]}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    reader = EventReader(boto3.client("dynamodb"), stack.table_name)
    streams = boto3.client("dynamodbstreams")

    def refusing(batch: dict[str, Any]) -> dict[str, Any]:
        last = batch["Records"][-1]["dynamodb"]["SequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": last}]}

    kept = Redrive(sqs, url, reader, streams, refusing, visibility_seconds=0).run()
    assert [(o.events, o.failed, o.deleted) for o in kept.outcomes] == [(3, 1, False)]
    function = lambda_deliver(boto3.client("lambda"), function_name(FANOUT))  # the stack's, in-process
    done = Redrive(sqs, url, reader, streams, function).run()
    assert [(o.source, o.events, o.deleted) for o in done.outcomes] == [("records", 3, True)]
    assert receiver[0].keys_for(eid) == [f"{eid}:{s}" for s in (1, 2, 3)]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
