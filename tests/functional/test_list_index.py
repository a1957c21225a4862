"""The list of executions on the sharded list index, and what a task costs it (issue 18, item 5).

A table of its own for the list's order (the shared stack's list holds every other test's
executions); the shared stack for the route and for what a real execution writes.
"""

from __future__ import annotations

import json

import boto3
import pytest
from chalice.test import Client

from chalicelib.orchestration.views import execution_view
from chalicelib.persistence.capacity import WriteMeter
from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import (
    LIST_INDEX,
    LIST_PK,
    LIST_SHARDS,
    META_SK,
    list_keys,
    pk,
    table_definition,
)
from chalicelib.persistence.table import from_item, to_item
from tests.functional.conftest import echo, wait_for_end


@pytest.fixture(scope="module")
def own_store(stack):
    client = boto3.client("dynamodb")
    client.create_table(**table_definition("dagcast-list-index"))
    return DynamoStore(client, "dagcast-list-index")


def _create(store: DynamoStore, n: int) -> str:
    execution_id = f"dag-exec_list{n:04d}"
    store.create_execution(
        execution_id, created_at=1_000 + n, original_request=f"request {n} " + "é" * n, tasks=[], sink_ids=[]
    )
    return execution_id


def test_lists_are_newest_first_across_every_shard_and_page_by_cursor(own_store):
    ids = [_create(own_store, n) for n in range(24)]
    assert len({list_keys(1, i)[LIST_PK] for i in ids}) > LIST_SHARDS // 2  # spread, not one key
    newest = own_store.list_executions(7)
    assert [m["executionId"] for m in newest] == ids[::-1][:7]
    assert [m["originalRequest"] for m in newest] == [f"request {n} " + "é" * n for n in range(23, 16, -1)]
    seen, cursor = [], None
    while True:
        page, cursor = own_store.listing.page(5, cursor)
        seen += page
        if cursor is None:
            break
    assert seen == ids[::-1]
    raw = own_store._db.get_item(
        TableName="dagcast-list-index", Key=to_item({"PK": pk(ids[0]), "SK": META_SK})
    )
    assert "originalRequest" not in from_item(raw["Item"])  # off the item every task updates
    assert own_store.get_execution(ids[3])["originalRequest"] == "request 3 ééé"


def test_the_list_route_answers_what_it_answered_before(services):
    """Each listed execution is its snapshot's view (with the whole originalRequest, counters and
    final result), as when the list read META from an index projecting ALL."""
    import app

    text = "a long request " * 5_000
    with Client(app.app) as client:
        body = json.dumps({"originalRequest": text, "tasks": [echo(1, "a"), echo(2, "b", [1])]})
        reply = client.http.post(
            "/api/v1/execute-dag", headers={"content-type": "application/json"}, body=body
        )
        eid = reply.json_body["executionId"]
        wait_for_end(services, eid)
        listed = client.http.get("/api/v1/dag-executions?limit=5").json_body["executions"]
        snapshot = client.http.get(f"/api/v1/dag-executions/{eid}").json_body
    (mine,) = [e for e in listed if e["executionId"] == eid]
    assert mine == {k: v for k, v in snapshot.items() if k not in ("seq", "tasks")}
    assert mine["originalRequest"] == text and mine["completedTasks"] == 2 and mine["finalResult"] == "b"
    assert mine == execution_view(services.store.get_execution(eid))


def test_a_task_costs_the_list_index_nothing_and_meta_one_unit_per_update(services):
    """GSI1 (projection ALL, one partition key) was written at META's full size on every per-task
    update, and META carried the request (up to 100,000 characters): ~200 WCU per task on META and
    as much again on the index (bench/write_capacity). Now the index is written when the execution
    is created and when it ends, and META stays under 1 KB (billed twice inside a transaction)."""
    meter = WriteMeter(boto3.client("dynamodb"), services.store._table)
    services.store.meter_writes(meter)
    try:
        job = {"originalRequest": "r" * 100_000, "tasks": [echo(t, str(t)) for t in range(1, 7)]}
        from chalicelib.domain.dag import parse_job

        eid = services.orchestrator.submit(parse_job(job))
        wait_for_end(services, eid)
    finally:
        meter.detach(services.store._db)
    assert meter.units[LIST_INDEX] == 2, meter.units  # created, then finished
    assert meter.units["GSI1"] == 0
    assert meter.units["META writes"] >= 12  # two per task at least
    # every META write ≤ 1 KB: 1 unit, 2 inside a transaction (issue 20: a task's start and finish
    # update META in their event's transaction); with the request on META each would be ~100
    assert meter.units["META"] <= 2 * meter.units["META writes"], meter.units
