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


def test_a_limited_query_is_handed_only_the_items_it_returns_and_pages_as_before(stack, monkeypatch):
    """The tail query (``Limit=1``, backwards) had moto sort the whole partition, comparing
    ``DynamoType``s: most of an append's time in a big execution. Now moto is handed the first
    ``Limit + 1`` matching items in the query's direction after its ExclusiveStartKey (one more
    than it returns: it reads one past the page to know there is a next), and every page, in
    either direction, with or without a key condition, is what moto answered before."""
    from moto.dynamodb.models.table import Table

    from chalicelib.persistence.table import to_item

    db = boto3.client("dynamodb")
    table = stack.table_name
    for i in range(30):
        db.put_item(TableName=table, Item=to_item({"PK": "pages", "SK": f"ROW#{i:03d}", "n": i}))
    db.put_item(TableName=table, Item=to_item({"PK": "pages", "SK": "ZZZ", "n": -1}))
    handed: list[int] = []
    scoped = Table.all_items

    def spy(self: Any) -> Any:
        items = scoped(self)
        handed.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", spy)

    def pages(limit: int, forward: bool, condition: str, **values: Any) -> list[list[int]]:
        out, start = [], None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            page = db.query(
                TableName=table,
                KeyConditionExpression=f"PK = :p{condition}",
                ExpressionAttributeValues=to_item({":p": "pages", **{f":{k}": v for k, v in values.items()}}),
                ScanIndexForward=forward,
                Limit=limit,
                **extra,
            )
            out.append([int(i["n"]["N"]) for i in page["Items"]])
            start = page.get("LastEvaluatedKey")
            if not start:
                return out

    def flat(page_list: list[list[int]]) -> list[int]:
        return [n for page in page_list for n in page]

    assert pages(1, False, " AND SK BETWEEN :lo AND :hi", lo="ROW#", hi="ROW#~")[:2] == [[29], [28]]
    assert max(handed) == 2
    assert flat(pages(7, True, " AND begins_with(SK, :s)", s="ROW#")) == list(range(30))
    assert flat(pages(7, False, " AND SK < :s", s="ROW#010")) == list(range(9, -1, -1))
    assert pages(4, True, " AND SK >= :s", s="ROW#027") == [[27, 28, 29, -1]]  # moto: no next page
    assert flat(pages(8, True, "")) == [*range(30), -1]
    assert max(handed) == 9  # never the partition's 31 items
