"""The fan-out handler and the local event source mapping: per-execution order under partial
failures, EventBridge (moto: bus → rule → SQS; refusals and a missing bus are moto's own), EMF
metrics, batch windows and checkpoints."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.fanout import FanOut
from chalicelib.persistence.table import CallCounter
from dagcast.local.moto.poller import FileCheckpoints, StreamPoller, is_event_insert
from tests.functional.conftest import echo, run_job
from tests.support.fanout import record
from tests.support.receiver import EventBus, published


def test_a_failed_record_holds_back_its_executions_later_records_not_the_others(stack):
    bus = EventBus().create()
    fanout = FanOut(None, None, bus.events, bus.name, 0)
    # EventBridge refuses an entry without a detail-type (moto as AWS: InvalidArgument): A2 fails
    batch = [
        record("A", 1),
        record("B", 1),
        record("A", 2, type=""),
        record("B", 2),
        record("A", 3),
        record("B", 3),
    ]
    batch.insert(2, record("A", 0, sk="META"))  # not an event item: skipped
    batch.insert(3, record("C", 1, data="{not json"))  # malformed: skipped, never blocks
    response = fanout.handle({"Records": batch}, None)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == ["00002A", "00003A"]  # A2 failed and A3 must wait behind it
    assert published(bus) == [("A", 1), ("B", 1), ("B", 2), ("B", 3)]


def test_an_event_too_large_for_eventbridge_is_published_as_a_pointer(stack):
    bus = EventBus().create()
    big = {
        "type": "execution.created",
        "executionId": "A",
        "seq": 1,
        "timestamp": 1,
        "originalRequest": "é" * 150_000,
    }
    fanout = FanOut(None, None, bus.events, bus.name, 0)
    response = fanout.handle({"Records": [record("A", 1, data=json.dumps(big))]}, None)
    assert response == {"batchItemFailures": []}
    assert [e["detail"] for e in bus.received()] == [
        {"type": "execution.created", "executionId": "A", "seq": 1, "timestamp": 1, "truncated": True}
    ]


def test_eventbridge_is_off_when_no_bus_is_set(services, stack):
    events = boto3.client("events")
    calls = CallCounter()
    events.meta.events.register("before-call.events.PutEvents", calls)
    fanout = FanOut(None, None, events, "", 0)  # a client, but no bus: nothing is published
    response = fanout.handle({"Records": [record("A", 1), record("A", 2)]}, None)
    assert response == {"batchItemFailures": []}
    assert calls.calls == 0
    assert services.settings.event_bus == "" and services.fanout.eventbridge is None  # the local stack
    # the counter does count: the same client with a bus set
    bus = EventBus().create()
    assert FanOut(None, None, events, bus.name, 0).handle({"Records": [record("A", 1)]}, None) == {
        "batchItemFailures": []
    }
    assert calls.calls == 1


def test_every_event_is_published_to_eventbridge_with_its_type(services, stack):
    bus = EventBus().create()
    fanout = FanOut(None, None, bus.events, bus.name, 0)

    eid, written = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})

    def this_execution(record: dict[str, Any]) -> bool:
        # The session's stream holds every earlier test's events too: publish only this job's.
        return is_event_insert(record) and record["dynamodb"]["Keys"]["PK"]["S"] == f"EXEC#{eid}"

    poller = StreamPoller(
        boto3.client("dynamodbstreams"), stack.poller.stream_arn, fanout.handle, accept=this_execution
    )
    while poller.poll_once():
        pass
    mine = [g for g in bus.received() if g["detail"]["executionId"] == eid]
    assert [g["detail"] for g in mine] == written  # once each, in seq order
    assert [g["detail-type"] for g in mine] == [e["type"] for e in written]
    assert {g["source"] for g in mine} == {"dagcast"}


def test_metrics_are_emitted_as_emf(monkeypatch, capsys, stack):
    from chalicelib import fanout as module

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    bus = EventBus().create()
    batch = [record("A", 1), record("A", 2), record("A", 3, type=""), record("A", 4)]
    response = module.FanOut(None, None, bus.events, bus.name, 0).handle({"Records": batch}, None)
    assert len(response["batchItemFailures"]) == 2  # A3 refused by the bus, A4 behind it
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert lines, "no EMF line was printed"
    emf = lines[-1]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"EventsWritten", "EventBridgePublished", "RecordsFailed", "FanoutLag"} <= names
    # EventsWritten counts records fanned out; a failed one counts in RecordsFailed instead
    assert emf["EventsWritten"] == [2.0] and emf["EventBridgePublished"] == [2.0]
    assert emf["RecordsFailed"] == [2.0]
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
    """A DynamoDB Streams client that hands out one record per GetRecords call.

    A stand-in on purpose, the one in these tests: the batch window is about records that arrive
    while a batch fills, and moto's stream returns every record already written in one call (and
    records written from another thread would make the batch sizes depend on timing)."""

    def __init__(self, count: int, records: list[dict[str, Any]] | None = None) -> None:
        self.records = records if records is not None else [record("W", i + 1) for i in range(count)]

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


# AWS, streams: "the next batching window begins as soon as the previous function invocation
# completes". The first record after a quiet spell goes at once; the records that come while the
# handler runs and its window lasts fill the next batch, up to the batch size.
@pytest.mark.parametrize(("window", "sizes"), [(0.0, [1, 1, 1, 1, 1, 1]), (1.0, [1, 4, 1])])
def test_the_batch_window_starts_when_the_last_invocation_ends_and_fills_batches_up_to_the_batch_size(
    window, sizes
):
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
    assert seen == sizes


def test_records_the_filter_drops_fill_no_batch_and_hold_no_event_back():
    """The fan-out's own writes (deliveries, lanes) are in the stream too; the mapping's filter
    drops them, so they must not count against the batch size, nor be what a batch waits for."""
    junk = [record("W", i, sk=f"LANE#{i}") for i in range(10, 15)]
    events = [record("W", i) for i in range(4, 8)]
    stream = junk[:3] + events[:1] + junk[:3] + events[1:2] + junk[3:4] + events[2:]
    seen: list[list[int]] = []
    poller = StreamPoller(
        OneAtATime(0, stream),  # type: ignore[arg-type]
        "arn:stream",
        lambda batch, ctx: seen.append([int(r["eventID"].split("-")[1]) for r in batch["Records"]]),
        batch_size=3,
        batch_window_seconds=30.0,  # a batch that waited out its window would stall this test
        accept=is_event_insert,
    )
    while poller.poll_once():
        pass
    # the first event after the quiet spell goes at once, alone; the next three fill a batch of 3
    # although four dropped records came between them
    assert seen == [[4], [5, 6, 7]]
    assert poller.stats.records_filtered == 7
