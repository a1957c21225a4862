"""Pins the patch of dagcast/local/moto/patches/partition_queries.py
(``moto.dynamodb.models.table.Table.query`` / ``all_items``)."""

from __future__ import annotations

import inspect
from typing import Any

import boto3


def test_queries_read_only_their_partition_and_answer_as_before(stack):
    """scope_queries_to_partition: same answers, without listing the whole table."""
    from moto.dynamodb.models.table import Table

    from chalicelib.persistence.table import to_item

    assert getattr(Table, "_dagcast_scoped", False), "scope_queries_to_partition was not applied"
    wrapped = getattr(Table.query, "__wrapped__", None)
    assert wrapped is not None, "Table.query is not the scoped wrapper"
    params = list(inspect.signature(wrapped).parameters)
    assert params[:2] == ["self", "hash_key"], f"Table.query now takes {params}"
    db = boto3.client("dynamodb")
    table = "dagcast-functional"
    for p in ("scope-a", "scope-b"):
        for i in range(5):
            db.put_item(TableName=table, Item=to_item({"PK": p, "SK": f"ROW#{i}", "n": i}))

    def query(**extra: Any) -> list[tuple[str, int]]:
        out = db.query(
            TableName=table,
            KeyConditionExpression="PK = :p AND begins_with(SK, :s)",
            ExpressionAttributeValues=to_item({":p": "scope-a", ":s": "ROW#"}),
            **extra,
        )
        return [(i["PK"]["S"], int(i["n"]["N"])) for i in out["Items"]]

    assert query() == [("scope-a", i) for i in range(5)]
    assert query(ScanIndexForward=False, Limit=2) == [("scope-a", 4), ("scope-a", 3)]
    # (not EVT# keys: the stream consumers would take them for events)
    # an index query still finds items of every partition (the GSI path is not scoped)
    for p in ("scope-a", "scope-b"):
        db.put_item(TableName=table, Item=to_item({"PK": p, "SK": "G", "GSI1PK": "scope-g", "GSI1SK": p}))
    listed = db.query(
        TableName=table,
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :p",
        ExpressionAttributeValues=to_item({":p": "scope-g"}),
    )
    assert [i["PK"]["S"] for i in listed["Items"]] == ["scope-a", "scope-b"]
