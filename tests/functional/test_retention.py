"""Retention and DELETE on moto: every item of an execution carries its expiry from the write
that creates it, a META past its expiry reads as no execution, DELETE removes every partition and
the webhook deliveries, and REMOVE stream records never reach the fan-out's targets."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import ExecutionNotFound, ExecutionRunning
from chalicelib.domain.model import ExecutionStatus
from chalicelib.fanout import FanOut
from chalicelib.http import api
from chalicelib.persistence.keys import TTL_ATTRIBUTE, execution_streams_pk, pk, queue_pk, slot_sk
from chalicelib.persistence.table import to_item
from chalicelib.webhooks.models import Hook
from chalicelib.webhooks.store import DUE_PK, delivery_sk, due_sk, hook_pk, lane_sk
from dagcast.local.moto.poller import is_event_insert
from tests.functional.conftest import echo, run_job, sleep, wait_for_end
from tests.support.fanout import record
from tests.support.receiver import EventBus, published


def partition(services, key: str) -> list[dict[str, Any]]:
    out = boto3.client("dynamodb").query(
        TableName=services.settings.table_name,
        KeyConditionExpression="PK = :p",
        ExpressionAttributeValues={":p": {"S": key}},
        ConsistentRead=True,
    )
    return out["Items"]


def test_every_item_of_an_execution_carries_its_deadline_plus_the_retention(services):
    execution_id, _ = run_job(services, {"timeoutSeconds": 600, "tasks": [echo(1, "a"), echo(2, "b", [1])]})
    meta = services.store.get_meta(execution_id)
    expected = math.ceil(int(meta["deadlineAt"]) / 1000) + services.settings.retention_days * 86_400
    assert meta[TTL_ATTRIBUTE] == expected
    assert int(meta["deadlineAt"]) == int(meta["createdAt"]) + 600_000
    items = partition(services, pk(execution_id)) + partition(services, queue_pk(execution_id))
    missing = [i["SK"]["S"] for i in items if TTL_ATTRIBUTE not in i]
    assert not missing, f"items without an expiry: {missing}"
    assert {int(i[TTL_ATTRIBUTE]["N"]) for i in items} == {expected}
    kinds = {i["SK"]["S"].split("#")[0] for i in items}
    assert {"META", "TASK", "EVT", "KEY"} <= kinds  # the request is META#REQUEST


def test_a_meta_past_its_expiry_is_gone_for_every_read(services):
    execution_id, _ = run_job(services, {"tasks": [echo(1, "a")]})
    assert execution_id in [
        e["executionId"] for e in api.list_executions(services, {"limit": "100"})[1]["executions"]
    ]
    boto3.client("dynamodb").update_item(
        TableName=services.settings.table_name,
        Key=to_item({"PK": pk(execution_id), "SK": "META"}),
        UpdateExpression=f"SET {TTL_ATTRIBUTE} = :t",
        ExpressionAttributeValues=to_item({":t": int(time.time()) - 1}),
    )
    # DynamoDB has not deleted it (TTL runs late, item by item): it reads as gone all the same.
    reads: list[Callable[[], object]] = [
        lambda: api.get_execution(services, execution_id),
        lambda: api.final_result(services, execution_id),
        lambda: api.task_result(services, execution_id, "1"),
        lambda: api.stream_token(services, execution_id, ""),
        lambda: api.rerun_execution(services, execution_id, None, ""),
        lambda: api.delete_execution(services, execution_id),
    ]
    for read in reads:
        with pytest.raises(ExecutionNotFound):
            read()
    listed = api.list_executions(services, {"limit": "100"})[1]["executions"]
    assert execution_id not in [e["executionId"] for e in listed]


@pytest.fixture
def hook(services):
    # Scoped to an execution that never runs: the fan-out sends it nothing (its secret is no KMS
    # ciphertext); the deliveries the test needs are written by the test.
    hook = Hook(id="wh_retention", url="https://example.com/h", types=None, execution_id="dag-exec_none",
                sealed_secret=b"sealed", created_at=1)  # fmt: skip
    services.webhooks.put_hook(hook)
    yield hook
    services.webhooks.delete_hook(hook.id)


def _put(services, items: list[dict[str, Any]]) -> None:
    db = boto3.client("dynamodb")
    for item in items:
        db.put_item(TableName=services.settings.table_name, Item=to_item(item))


def test_delete_removes_every_partition_and_the_webhook_deliveries(services, hook):
    execution_id, _ = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    other, _ = run_job(services, {"tasks": [echo(1, "keep")]})
    _put(services, [
        {"PK": hook_pk(hook.id), "SK": delivery_sk(execution_id, 1), "status": "x"},
        {"PK": hook_pk(hook.id), "SK": delivery_sk(other, 1), "status": "x"},
        {"PK": hook_pk(hook.id), "SK": lane_sk(execution_id), "cursor": 1},
        {"PK": DUE_PK, "SK": due_sk(hook.id, execution_id), "dueAt": 1},
        {"PK": execution_streams_pk(execution_id), "SK": slot_sk(0), "holder": "h"},
        {"PK": queue_pk(execution_id), "SK": "TICKET", "n": 3},
    ])  # fmt: skip
    assert api.delete_execution(services, execution_id) == (
        200,
        {"executionId": execution_id, "deleted": True},
    )
    for key in (pk(execution_id), queue_pk(execution_id), execution_streams_pk(execution_id)):
        assert partition(services, key) == []
    left = [i["SK"]["S"] for i in partition(services, hook_pk(hook.id))]
    assert left == [delivery_sk(other, 1)]  # the other execution's delivery stays
    assert [i for i in partition(services, DUE_PK) if execution_id in i["SK"]["S"]] == []
    with pytest.raises(ExecutionNotFound):
        api.delete_execution(services, execution_id)  # then 404
    with pytest.raises(ExecutionNotFound):
        api.get_execution(services, execution_id)
    listed = api.list_executions(services, {"limit": "100"})[1]["executions"]
    assert execution_id not in [e["executionId"] for e in listed]
    assert services.orchestrator.snapshot(other)["status"] == ExecutionStatus.COMPLETED


def test_delete_refuses_a_running_execution_and_unknown_ids_changing_nothing(services):
    with pytest.raises(ExecutionNotFound):
        api.delete_execution(services, "dag-exec_nobody")
    execution_id = services.orchestrator.submit(parse_job({"tasks": [sleep(1, 1.5)]}))
    try:
        before = len(partition(services, pk(execution_id)))
        with pytest.raises(ExecutionRunning):
            api.delete_execution(services, execution_id)
        assert len(partition(services, pk(execution_id))) >= before
    finally:
        events = wait_for_end(services, execution_id)
    assert events[-1]["type"] == "execution.completed"  # it ran on, untouched


def test_remove_records_never_reach_eventbridge_or_webhooks(stack):
    """TTL deletions and DELETE write REMOVE stream records of EVT# items: the mapping's filter
    (template.yaml; the local poller's ``is_event_insert``) and the fan-out itself skip them."""
    bus = EventBus().create()
    fanout = FanOut(None, None, bus.events, bus.name, 0)
    removed = record("gone", 1)
    removed["eventName"] = "REMOVE"
    removed["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}  # TTL's mark
    assert not is_event_insert(removed)
    assert fanout.handle({"Records": [removed]}, None) == {"batchItemFailures": []}
    assert published(bus) == []
    assert fanout.handle({"Records": [record("kept", 1)]}, None) == {"batchItemFailures": []}
    assert published(bus) == [("kept", 1)]  # the same record as an INSERT is published
