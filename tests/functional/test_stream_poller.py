"""The local event source mapping: Lambda-shaped batches, partial failures redelivered, in order."""

from __future__ import annotations

import time

import boto3

from dagcast.local.poller import StreamPoller
from tests.functional.conftest import echo, run_job


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
        # the real handler accepts the same batch (it only logs for now)
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
