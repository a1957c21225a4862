"""Pins the patch of dagcast/local/moto/patches/transactions.py
(``moto.dynamodb.models.DynamoDBBackend.transact_write_items``)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


def test_a_transaction_copies_no_table_and_answers_as_moto_does(stack, monkeypatch):
    """check_before_writing: a cancelled transaction writes nothing and says which item failed; a
    committed one writes every item; neither deep-copies the table (moto's own copies it whole,
    ~0.3 s per call on a table of a 1,000-task execution)."""
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.persistence.table import to_item

    assert getattr(DynamoDBBackend, "_dagcast_transactions", False), "check_before_writing was not applied"
    db = boto3.client("dynamodb")
    table = "dagcast-functional"
    p = f"TX#{uuid.uuid4().hex[:8]}"
    db.put_item(TableName=table, Item=to_item({"PK": p, "SK": "A", "n": 1}))

    copied: list[str] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(obj: Any, memo: Any = None) -> Any:
        copied.append(type(obj).__name__)
        return real_deepcopy(obj, memo)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)

    def put(sk: str, condition: str | None = None) -> Any:
        op = {"TableName": table, "Item": to_item({"PK": p, "SK": sk, "n": 2})}
        if condition:
            op["ConditionExpression"] = condition
        return {"Put": op}

    with pytest.raises(ClientError) as raised:
        db.transact_write_items(TransactItems=[put("B"), put("A", "attribute_not_exists(PK)")])
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in db.get_item(TableName=table, Key=to_item({"PK": p, "SK": "B"}))

    update: Any = {
        "Update": {
            "TableName": table,
            "Key": to_item({"PK": p, "SK": "A"}),
            "UpdateExpression": "SET n = n + :one",
            "ConditionExpression": "n = :one",
            "ExpressionAttributeValues": to_item({":one": 1}),
        }
    }
    db.transact_write_items(TransactItems=[put("B", "attribute_not_exists(PK)"), update])
    got = {
        i["SK"]["S"]: int(i["n"]["N"])
        for i in db.query(
            TableName=table,
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues=to_item({":p": p}),
        )["Items"]
    }
    assert got == {"A": 2, "B": 2}
    assert "Table" not in copied, "a transaction deep-copied a whole table"


def test_a_write_that_fails_halfway_is_undone(stack):
    """The one case that writes before failing (a malformed update: a bug, not a race) restores
    the items it wrote, as moto's table copy did."""
    from chalicelib.persistence.table import to_item

    db = boto3.client("dynamodb")
    table = "dagcast-functional"
    p = f"TX#{uuid.uuid4().hex[:8]}"
    db.put_item(TableName=table, Item=to_item({"PK": p, "SK": "A", "n": 1}))
    bad: Any = {
        "Update": {
            "TableName": table,
            "Key": to_item({"PK": p, "SK": "C"}),
            "UpdateExpression": "SET n = n + :one",  # n does not exist on C: the update fails
            "ExpressionAttributeValues": to_item({":one": 1}),
        }
    }
    with pytest.raises(ClientError):
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": to_item({"PK": p, "SK": "A", "n": 5})}},
                {"Put": {"TableName": table, "Item": to_item({"PK": p, "SK": "B", "n": 5})}},
                bad,
            ]
        )
    a = db.get_item(TableName=table, Key=to_item({"PK": p, "SK": "A"}))["Item"]
    assert int(a["n"]["N"]) == 1
    assert "Item" not in db.get_item(TableName=table, Key=to_item({"PK": p, "SK": "B"}))
