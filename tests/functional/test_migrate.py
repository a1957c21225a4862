"""``dagcast migrate`` on moto: idempotent, resumable data changes; the first puts executions of the
old layout (GSI1 keys, originalRequest on META) on the list index (issue 18, items 5 and 12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import LEGACY_INDEX, META_SK, REQUEST_SK, pk, table_definition
from chalicelib.persistence.table import from_item, to_item
from dagcast.cli.entry import main
from dagcast.migrations import Migrator

TABLE = "dagcast-migrate"
OLD = 13


@pytest.fixture
def db(stack) -> Iterator[Any]:
    """A table of its own in the stack's moto (a second mock_aws would end the stack's on exit)."""
    client = boto3.client("dynamodb")
    client.create_table(**table_definition(TABLE))
    try:
        for n in range(OLD):  # written by the code before the list index, as it wrote them
            eid = f"dag-exec_old{n:03d}"
            meta = {
                "PK": pk(eid),
                "SK": META_SK,
                "executionId": eid,
                "status": "completed",
                "totalTasks": 1,
                "originalRequest": f"old request {n}",
                "createdAt": 100 + n,
                "sinks": [1],
                "completed": {1},
                "GSI1PK": "EXECUTIONS",
                "GSI1SK": f"{100 + n:015d}#{eid}",
            }
            client.put_item(TableName=TABLE, Item=to_item(meta))
            client.put_item(
                TableName=TABLE, Item=to_item({"PK": pk(eid), "SK": "EVT#000000000001", "seq": 1})
            )
        yield client
    finally:
        client.delete_table(TableName=TABLE)


def _meta(db, eid: str) -> dict[str, Any]:
    return from_item(db.get_item(TableName=TABLE, Key=to_item({"PK": pk(eid), "SK": META_SK}))["Item"])


def _writes(db) -> list[str]:
    seen: list[str] = []
    for op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
        db.meta.events.register(f"before-call.dynamodb.{op}", lambda model, **_: seen.append(model.name))
    return seen


def test_migrate_killed_midway_completes_on_the_next_run_and_a_third_changes_nothing(db):
    store = DynamoStore(db, TABLE)
    assert store.list_executions(50) == []  # old executions are not on the new index yet
    writes = _writes(db)

    def killed(model, **_):
        if len(writes) >= 9:  # mid-page: some items of the page done, its position not saved
            raise KeyboardInterrupt("killed")

    db.meta.events.register("before-call.dynamodb.UpdateItem", killed)
    with pytest.raises(KeyboardInterrupt):
        Migrator(db, TABLE, page_size=4).run()
    db.meta.events.unregister("before-call.dynamodb.UpdateItem", killed)

    scans: list[dict[str, Any]] = []
    db.meta.events.register(
        "provide-client-params.dynamodb.Scan", lambda params, **_: scans.append(dict(params))
    )
    (progress,) = Migrator(db, TABLE, page_size=4).run()
    assert progress.done and not progress.already_done
    assert "ExclusiveStartKey" in scans[0]  # resumed at the position saved before the kill
    listed = store.list_executions(50)
    assert [m["executionId"] for m in listed] == [f"dag-exec_old{n:03d}" for n in reversed(range(OLD))]
    assert [m["originalRequest"] for m in listed] == [f"old request {n}" for n in reversed(range(OLD))]
    for n in range(OLD):
        meta = _meta(db, f"dag-exec_old{n:03d}")
        assert not {"originalRequest", "GSI1PK", "GSI1SK"} & set(meta)
    legacy = db.query(
        TableName=TABLE,
        IndexName=LEGACY_INDEX,
        KeyConditionExpression="GSI1PK = :p",
        ExpressionAttributeValues=to_item({":p": "EXECUTIONS"}),
    )
    assert legacy["Items"] == []

    before = len(writes)
    (again,) = Migrator(db, TABLE).run()
    assert again.already_done and len(writes) == before  # nothing scanned, nothing written


def test_a_rescan_of_a_migrated_table_writes_nothing(db):
    Migrator(db, TABLE).run()
    db.delete_item(TableName=TABLE, Key=to_item({"PK": "MIGRATION#2025-list-index", "SK": "STATE"}))
    writes = _writes(db)
    (progress,) = Migrator(db, TABLE, page_size=5).run()
    assert progress.done and progress.changed == 0
    assert set(writes) == {"PutItem"}  # the saved position only
    request = db.get_item(TableName=TABLE, Key=to_item({"PK": pk("dag-exec_old004"), "SK": REQUEST_SK}))
    assert from_item(request["Item"])["originalRequest"] == "old request 4"


def test_the_migrate_command_names_the_table_and_reports(db, capsys):
    assert main(["migrate", "--table", TABLE, "--page-size", "50"]) == 0
    assert f"{TABLE}: 2025-list-index: " in capsys.readouterr().err
    assert main(["migrate", "--table", TABLE]) == 0
    assert "already done" in capsys.readouterr().err
    assert main(["migrate", "--table", "no-such-table"]) == 2
    assert "no-such-table" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["migrate"])  # neither --stage nor --table
