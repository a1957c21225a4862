"""The local event source mapping: Lambda-shaped batches, partial failures redelivered, in order;
a record that keeps failing is given up after the retry limit (template.yaml's
MaximumRetryAttempts), its coordinates recorded, and the shard goes on."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import boto3

from chalicelib.domain.model import now_ms
from chalicelib.factory import Services
from chalicelib.fanout import FanOut
from chalicelib.orchestration.submission import new_execution_id
from dagcast.local.moto.poller import Checkpoints, FileCheckpoints, OnFailure, StreamPoller, is_event_insert
from dagcast.local.moto.stack import MotoStack
from tests.functional.conftest import SECRET, echo, register, run_job, settled, wait_for
from tests.support.fanout import fanned_out
from tests.support.receiver import EventBus, Receiver


def test_every_event_is_delivered_once_in_order_even_when_the_handler_fails_a_record(services, stack):
    import app

    eid, events = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    acked: list[int] = []
    failed_once: set[int] = set()

    def handler(batch, context):
        assert all(r["eventSourceARN"] == stream_arn for r in batch["Records"])
        failures = []
        for record in batch["Records"]:
            keys = record["dynamodb"]["Keys"]
            if keys["PK"]["S"] != f"EXEC#{eid}" or not keys["SK"]["S"].startswith("EVT#"):
                continue
            seq = int(keys["SK"]["S"][4:])
            if seq == 4 and seq not in failed_once:  # fail seq 4 once: it and what follows come again
                failed_once.add(seq)
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                break
            acked.append(seq)
        # the real handler takes the same batch too: every record succeeds (no bus is set locally)
        assert app.fanout_handler(batch, None) == {"batchItemFailures": []}
        return {"batchItemFailures": failures}

    table = boto3.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    stream_arn = table["LatestStreamArn"]
    poller = StreamPoller(boto3.client("dynamodbstreams"), stream_arn, handler, batch_size=7, retry_seconds=0)
    # poll until everything is in: a batch that starts with the failed record acknowledges none
    deadline = time.monotonic() + 60
    while acked != [e["seq"] for e in events] and time.monotonic() < deadline:
        poller.poll_once()
    assert failed_once == {4}
    assert acked == [e["seq"] for e in events]
    assert poller.stats.failures_reported == 1


def caught_up(stack: MotoStack) -> Checkpoints:
    """Checkpoints at the end of the stream as it is now, so a test's poller reads only what the test
    writes (the session's stream holds every earlier test's records; they are acknowledged unread)."""
    checkpoints = Checkpoints()
    assert stack.poller is not None
    poller = StreamPoller(
        boto3.client("dynamodbstreams"),
        stack.poller.stream_arn,
        lambda batch, context: None,
        checkpoints=checkpoints,
    )
    while poller.poll_once():
        pass
    return checkpoints


def write_execution(services: Services, execution_id: str, types: list[str]) -> None:
    """An execution's events through the real store: execution.created (seq 1), then ``types``."""
    services.store.create_execution(
        execution_id, created_at=now_ms(), original_request="poller test", tasks=[], sink_ids=[]
    )
    for i, kind in enumerate(types):
        services.store.append_event(execution_id, f"poller-test#{i}", {"type": kind})


def poll_until(poller: StreamPoller, done: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out; poller stats: {poller.stats}"
        poller.poll_once()


def test_a_record_that_never_succeeds_is_given_up_after_the_retry_limit_and_the_rest_go_on(
    services, stack, tmp_path
):
    bus = EventBus().create()
    checkpoints = caught_up(stack)
    poison, other = new_execution_id(), new_execution_id()
    # EventBridge refuses an entry without a detail-type (moto as AWS): the poison's seq 2, every time
    write_execution(services, poison, [""])
    write_execution(services, other, ["execution.updated", "execution.updated"])
    services.store.append_event(poison, "poller-test#after", {"type": "execution.updated"})
    failures = tmp_path / "stream-failures.jsonl"
    poller = StreamPoller(
        boto3.client("dynamodbstreams"),
        stack.poller.stream_arn,
        FanOut(None, None, bus.events, bus.name, 0).handle,
        batch_size=2,  # so records beyond the retried batch wait behind the failing one
        retry_seconds=0,
        checkpoints=checkpoints,
        accept=is_event_insert,
        max_retries=2,
        on_failure=OnFailure(failures),
    )
    got: list[tuple[str, int]] = []

    def everything_else_published() -> bool:
        got.extend((e["detail"]["executionId"], e["detail"]["seq"]) for e in bus.received())
        return {(poison, 3), (other, 3)} <= set(got)

    poll_until(poller, everything_else_published)
    # the poison's seq 2 never reached the bus; everything else did, each execution in seq order
    assert sorted(set(got)) == sorted([(poison, 1), (poison, 3), (other, 1), (other, 2), (other, 3)])
    for eid in (poison, other):  # a retried batch publishes its other records again: first arrivals
        first_arrivals = list(dict.fromkeys(seq for e, seq in got if e == eid))
        assert first_arrivals == sorted(first_arrivals)
    assert poller.stats.records_given_up == 1
    [message] = [json.loads(line) for line in failures.read_text().splitlines()]
    assert message == poller.on_failure.messages[0]
    info = message["DDBStreamBatchInfo"]
    [given_up] = message["records"]
    assert given_up["executionId"] == poison and given_up["seq"] == 2
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == given_up["sequenceNumber"]
    assert info["batchSize"] == 1 and info["streamArn"] == stack.poller.stream_arn and info["shardId"]
    assert message["requestContext"] == {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3}
    # and the shard went on: once the stack's own fan-out has been through these records too, what
    # it wrote in return (the tenant's activity log: no events) is acknowledged, nothing more given
    # up, and then nothing is left for the poller
    wait_for(lambda: fanned_out(stack), what="the stack's fan-out")
    for _ in range(20):
        if poller.poll_once() == 0:
            break
    else:
        raise AssertionError("the poller never caught up with the shard")
    assert poller.stats.records_given_up == 1


def test_a_record_that_fails_a_few_times_then_succeeds_loses_nothing_and_keeps_order(
    client,
    hooks,
    services,
    stack,
):
    bus = EventBus()  # not created yet: PutEvents fails (ResourceNotFoundException) until it is
    receiver = Receiver(SECRET).start()
    eid, other = new_execution_id(), new_execution_id()
    webhook_id = register(client, hooks, receiver, executionId=eid)
    checkpoints = caught_up(stack)
    write_execution(services, eid, ["execution.updated", "execution.updated"])
    write_execution(services, other, ["execution.updated"])
    services.store.append_event(eid, "poller-test#after", {"type": "execution.updated"})
    assert services.dispatcher is not None
    poller = StreamPoller(
        boto3.client("dynamodbstreams"),
        stack.poller.stream_arn,
        FanOut(services.webhooks, services.dispatcher, bus.events, bus.name, 10).handle,
        batch_size=3,
        retry_seconds=0,
        checkpoints=checkpoints,
        accept=is_event_insert,
        max_retries=10,
    )
    try:
        poll_until(poller, lambda: poller.stats.failures_reported >= 3 * 3)  # three failed attempts
        assert poller.stats.records_delivered == 0
        bus.create()
        got: list[tuple[str, int]] = []

        def all_published() -> bool:
            got.extend((e["detail"]["executionId"], e["detail"]["seq"]) for e in bus.received())
            return {(eid, 4), (other, 2)} <= set(got)

        poll_until(poller, all_published)
        assert got == [(eid, 1), (eid, 2), (eid, 3), (other, 1), (other, 2), (eid, 4)]  # stream order
        expected = [f"{eid}:{n}" for n in range(1, 5)]
        wait_for(lambda: receiver.keys_for(eid) == expected, what="the webhook deliveries")
        # nothing pending, the stack's own fan-out of the records through: a duplicate would be here
        wait_for(lambda: settled(stack, client, webhook_id, eid, other), what="the deliveries")
        assert receiver.keys_for(eid) == expected and receiver.keys_for(other) == []
        assert poller.stats.records_given_up == 0 and poller.on_failure.messages == []
    finally:
        receiver.stop()


def test_the_stacks_poller_gives_up_like_the_mapping_and_reports_it(stack):
    assert stack.poller is not None and isinstance(stack.poller.checkpoints, FileCheckpoints)
    # next to the checkpoint file, counted in /local/stats
    assert stack.poller.on_failure.path == stack.poller.checkpoints.path.with_name("stream-failures.jsonl")
    stats = stack.fanout_stats()
    assert stats is not None and stats["recordsGivenUp"] == stack.poller.stats.records_given_up == 0
    template = (Path(__file__).parents[2] / "template.yaml").read_text()
    mapping = re.search(r"FanoutMapping:.*?MaximumRetryAttempts: (\d+)", template, re.DOTALL)
    assert mapping and stack.fanout_max_retry_attempts == int(mapping[1])  # the mapping's retry limit


class _Shard:
    """A one-shard DynamoDB Streams client over event inserts appended by the test (``add``);
    ``reads`` counts GetRecords calls, each counted once its answer is fixed."""

    def __init__(self, n: int = 0) -> None:
        self.records: list[dict[str, Any]] = []
        self.reads = 0
        for _ in range(n):
            self.add()

    def add(self) -> None:
        i = len(self.records) + 1
        self.records.append(
            {
                "eventName": "INSERT",
                "dynamodb": {
                    "Keys": {"PK": {"S": "EXEC#e"}, "SK": {"S": f"EVT#{i:012d}"}},
                    "SequenceNumber": f"{i:05d}",
                },
            }
        )

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        seqs = [r["dynamodb"]["SequenceNumber"] for r in self.records]
        after = kwargs.get("SequenceNumber")
        return {"ShardIterator": str(seqs.index(after) + 1 if after in seqs else 0)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        i = int(ShardIterator)
        got = self.records[i : i + Limit]
        self.reads += 1
        return {"Records": got, "NextShardIterator": str(i + len(got))}


def test_a_busy_poller_writes_no_checkpoint_file_per_batch_only_when_caught_up_or_stopped(
    tmp_path, monkeypatch
):
    """The poller wrote and renamed a checkpoint file after every batch; now a FileCheckpoints
    writes when the poller has caught up, when it stops, and at most every flush_seconds while
    busy. A restart still resumes after the last acknowledged record."""
    shard, path = _Shard(10), tmp_path / "checkpoints.json"
    renames: list[str] = []  # of this test's file (the package stack's poller writes its own)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst) == str(path):
            renames.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    delivered: list[str] = []

    def handler(batch: dict[str, Any], context: Any) -> dict[str, Any]:
        delivered.extend(r["dynamodb"]["SequenceNumber"] for r in batch["Records"])
        return {"batchItemFailures": []}

    busy = StreamPoller(
        shard,  # type: ignore[arg-type]
        "arn",
        handler,
        batch_size=2,
        checkpoints=FileCheckpoints(path, flush_seconds=3600),
    )
    for _ in range(5):  # five batches while records wait
        assert busy.poll_once() == 2
    assert renames == [] and not path.exists()
    busy.stop()  # never started: stopping still writes what was acknowledged
    assert renames == [str(path)] and json.loads(path.read_text()) == {"arn": {"s": "00010"}}

    shard.add()
    shard.add()
    running = StreamPoller(
        shard,  # type: ignore[arg-type]
        "arn",
        handler,
        batch_size=2,
        idle_seconds=0.01,
        checkpoints=FileCheckpoints(path, flush_seconds=3600),
    )
    running.start()  # resumes after 00010, and writes the file once it has caught up
    wait_for(lambda: path.exists() and json.loads(path.read_text()) == {"arn": {"s": "00012"}}, timeout=10)
    running.stop()
    assert delivered == [f"{i:05d}" for i in range(1, 13)]
    assert len(renames) == 2  # the stop above, the catch-up; the idle passes after it write nothing


def test_an_idle_poller_reads_a_record_as_soon_as_it_is_woken_not_after_its_idle_wait():
    """The poller slept idle_seconds after a pass that found nothing, so a record written meanwhile
    waited for the rest of it; wake() (the moto stack calls it on every stream write) ends the
    wait. With an idle wait of an hour, only the wake-up can deliver the record."""
    shard, delivered = _Shard(), list[str]()

    def handler(batch: dict[str, Any], context: Any) -> dict[str, Any]:
        delivered.extend(r["dynamodb"]["SequenceNumber"] for r in batch["Records"])
        return {"batchItemFailures": []}

    poller = StreamPoller(shard, "arn", handler, idle_seconds=3600)  # type: ignore[arg-type]
    poller.start()
    try:
        wait_for(lambda: shard.reads >= 1, timeout=10)  # it found nothing and went idle
        shard.add()
        poller.wake()
        wait_for(lambda: delivered == ["00001"], timeout=10)
    finally:
        poller.stop()  # stop() wakes it too: this returns at once, not after the hour


def test_the_stacks_poller_is_woken_by_every_stream_write(stack):
    """The stack registers its poller's wake() with the patch (patches/stream_wakeups.py), and
    moves the registration to a restarted poller."""
    from dagcast.local.moto.patches import stream_wakeups

    assert stack.poller is not None
    assert stack.poller.wake in stream_wakeups._listeners
    first = stack.poller
    first.stop()
    second = stack.start_poller()
    assert second.wake in stream_wakeups._listeners and first.wake not in stream_wakeups._listeners
