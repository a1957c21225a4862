"""The fan-out handler and the local event source mapping: per-execution order under partial
failures, EventBridge (moto: bus → rule → SQS), EMF metrics, batch windows and checkpoints."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.fanout import FanOut
from dagcast.local.poller import FileCheckpoints, StreamPoller, is_event_insert
from tests.functional.conftest import echo, run_job


def record(execution_id: str, seq: int, *, data: str | None = None, sk: str | None = None) -> dict[str, Any]:
    event = {
        "type": "substep.started",
        "executionId": execution_id,
        "seq": seq,
        "timestamp": 1_700_000_000_000,
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


class RefusingBus:
    """An EventBridge client that refuses one event (the bus is throttled, say); records the rest."""

    def __init__(self, refuse: tuple[str, int]) -> None:
        self.refuse = refuse
        self.published: list[tuple[str, int]] = []
        self.details: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        event = json.loads(Entries[0]["Detail"])
        key = (event["executionId"], event["seq"])
        if key == self.refuse:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}],
            }
        self.published.append(key)
        self.details.append(event)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}]}


def test_a_failed_record_holds_back_its_executions_later_records_not_the_others():
    bus = RefusingBus(refuse=("A", 2))
    fanout = FanOut(None, None, bus, "bus", 0)  # type: ignore[arg-type]
    batch = [record("A", 1), record("B", 1), record("A", 2), record("B", 2), record("A", 3), record("B", 3)]
    batch.insert(2, record("A", 0, sk="META"))  # not an event item: skipped
    batch.insert(3, record("C", 1, data="{not json"))  # malformed: skipped, never blocks
    response = fanout.handle({"Records": batch}, None)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == ["00002A", "00003A"]  # A2 failed and A3 must wait behind it
    assert bus.published == [("A", 1), ("B", 1), ("B", 2), ("B", 3)]


def test_an_event_too_large_for_eventbridge_is_published_as_a_pointer():
    bus = RefusingBus(refuse=("none", 0))
    big = {
        "type": "execution.created",
        "executionId": "A",
        "seq": 1,
        "timestamp": 1,
        "originalRequest": "é" * 150_000,
    }
    fanout = FanOut(None, None, bus, "bus", 0)  # type: ignore[arg-type]
    response = fanout.handle({"Records": [record("A", 1, data=json.dumps(big))]}, None)
    assert response == {"batchItemFailures": []}
    assert bus.details == [
        {"type": "execution.created", "executionId": "A", "seq": 1, "timestamp": 1, "truncated": True}
    ]


def test_every_event_is_published_to_eventbridge_with_its_type(services, stack):
    session = boto3.Session()
    events, sqs = session.client("events"), session.client("sqs")
    events.create_event_bus(Name="dagcast-test")
    queue = sqs.create_queue(QueueName="dagcast-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="dagcast-test", EventPattern=json.dumps({"source": ["dagcast"]}))
    events.put_targets(Rule="all", EventBusName="dagcast-test", Targets=[{"Id": "q", "Arn": arn}])
    fanout = FanOut(None, None, events, "dagcast-test", 0)

    eid, written = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    poller = StreamPoller(
        session.client("dynamodbstreams"), stack.poller.stream_arn, fanout.handle, accept=is_event_insert
    )
    while poller.poll_once():
        pass
    got: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        got += [json.loads(m["Body"]) for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    mine = sorted((g for g in got if g["detail"]["executionId"] == eid), key=lambda g: g["detail"]["seq"])
    assert [g["detail"] for g in mine] == written
    assert [g["detail-type"] for g in mine] == [e["type"] for e in written]
    assert {g["source"] for g in mine} == {"dagcast"}


def test_metrics_are_emitted_as_emf(monkeypatch, capsys):
    from chalicelib import fanout as module

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    bus = RefusingBus(refuse=("A", 9))
    module.FanOut(None, None, bus, "bus", 0).handle({"Records": [record("A", 1), record("A", 2)]}, None)  # type: ignore[arg-type]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert lines, "no EMF line was printed"
    emf = lines[-1]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"EventsWritten", "EventBridgePublished", "FanoutLag"} <= names
    assert emf["EventsWritten"] == [2.0] and emf["EventBridgePublished"] == [2.0]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "dagcast"


def test_a_restarted_poller_resumes_after_its_checkpoint_neither_skipping_nor_repeating(
    services, stack, tmp_path
):
    eid, events = run_job(services, {"tasks": [echo(i, str(i)) for i in range(1, 6)]})
    streams = boto3.client("dynamodbstreams")
    delivered: list[str] = []
    mine: list[int] = []

    def handler(batch: dict[str, Any], context: Any) -> dict[str, Any]:
        assert len(batch["Records"]) <= 4
        for r in batch["Records"]:
            delivered.append(r["dynamodb"]["SequenceNumber"])
            if r["dynamodb"]["Keys"]["PK"]["S"] == f"EXEC#{eid}":
                mine.append(int(r["dynamodb"]["Keys"]["SK"]["S"][4:]))
        return {"batchItemFailures": []}

    path = tmp_path / "checkpoints.json"
    arn = stack.poller.stream_arn

    def poller() -> StreamPoller:
        return StreamPoller(
            streams, arn, handler, batch_size=4, checkpoints=FileCheckpoints(path), accept=is_event_insert
        )

    first = poller()
    while len(mine) < len(events) // 2:
        assert first.poll_once() or mine, "the first poller stalled"
    first.stop()
    assert json.loads(path.read_text())[arn]  # the checkpoint is on disk
    second = poller()  # a restart: a new poller reading the same checkpoint file
    while second.poll_once():
        pass
    assert len(delivered) == len(set(delivered))  # nothing repeated
    assert mine == [e["seq"] for e in events]  # nothing skipped, in order


class OneAtATime:
    """A DynamoDB Streams client that hands out one record per GetRecords call."""

    def __init__(self, count: int) -> None:
        self.records = [record("W", i + 1) for i in range(count)]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        after = kwargs.get("SequenceNumber")
        start = next(
            (i + 1 for i, r in enumerate(self.records) if r["dynamodb"]["SequenceNumber"] == after), 0
        )
        return {"ShardIterator": str(start)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        i = int(ShardIterator)
        return {"Records": self.records[i : i + 1], "NextShardIterator": str(min(i + 1, len(self.records)))}


@pytest.mark.parametrize(("window", "sizes"), [(0.0, [1, 1, 1, 1, 1, 1]), (1.0, [4, 2])])
def test_the_batch_window_fills_batches_up_to_the_batch_size(window, sizes):
    seen: list[int] = []
    poller = StreamPoller(
        OneAtATime(6),  # type: ignore[arg-type]
        "arn:stream",
        lambda batch, ctx: seen.append(len(batch["Records"])),
        batch_size=4,
        batch_window_seconds=window,
    )
    while poller.poll_once():
        pass
    assert seen[: len(sizes)] == sizes and sum(seen) == 6
