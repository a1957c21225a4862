"""Pins the patch of dagcast/local/moto/patches/item_responses.py
(``moto.core.responses.ActionResult.execute_result``)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import boto3

from chalicelib.persistence.table import to_item


def test_item_answers_written_directly_parse_as_motos_serializer_wrote_them(stack, monkeypatch):
    """direct_item_responses: moto walked botocore's output shape to write each item answer and
    each stream read (a fifth of an item call). The JSON written directly parses, in boto3, to the
    same answers — bytes, numbers, sets, lists, maps, the stream's datetimes — and the patch is
    what writes them (the serializer is not called)."""
    from moto.core import responses as core_responses
    from moto.core.serialize import ResponseSerializer

    from dagcast.local.moto.patches import item_responses

    patched = core_responses.ActionResult.__dict__["execute_result"]
    original = getattr(core_responses.ActionResult, item_responses._ORIGINAL, None)
    assert original is not None and patched is not original, "direct_item_responses was not applied"
    db, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    table = stack.table_name
    item = to_item(
        {"PK": "direct", "SK": "ROW#1", "n": Decimal("1.5"), "l": ["x", 2, None, False], "s": {"a", "b"}}
    )
    item["b"] = {"B": b"\x00\xffhi"}
    item["m"] = {"M": {"bs": {"BS": [b"a", b"b"]}, "ns": {"NS": ["1", "2"]}}}
    db.put_item(TableName=table, Item=item)
    arn = db.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][-1]["ShardId"]
    start = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    written = len(streams.get_records(ShardIterator=start["ShardIterator"], Limit=1000)["Records"])

    def answers() -> list[Any]:
        key = {"PK": item["PK"], "SK": item["SK"]}
        out: list[Any] = [
            db.get_item(TableName=table, Key=key),
            db.query(
                TableName=table,
                KeyConditionExpression="PK = :p",
                ExpressionAttributeValues={":p": item["PK"]},
                ReturnConsumedCapacity="TOTAL",
            ),
            db.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET n = :n",
                ExpressionAttributeValues={":n": {"N": "1.5"}},
                ReturnValues="ALL_OLD",
            ),
            # the records written so far (the update above adds one each time)
            streams.get_records(ShardIterator=start["ShardIterator"], Limit=written),
        ]
        for answer in out:
            answer.pop("ResponseMetadata")
        return out

    serialized: list[str] = []  # by this thread (the stack's poller and retry thread call moto too)
    real, me = ResponseSerializer.serialize, threading.current_thread()

    def spy(self: Any, result: Any) -> Any:
        if threading.current_thread() is me:
            serialized.append(self.operation_model.name)
        return real(self, result)

    monkeypatch.setattr(ResponseSerializer, "serialize", spy)
    direct = answers()
    assert serialized == [], f"moto's serializer wrote {serialized}"
    monkeypatch.setattr(core_responses.ActionResult, "execute_result", original)
    assert direct == answers()
    assert serialized == ["GetItem", "Query", "UpdateItem", "GetRecords"]
    assert direct[0]["Item"]["b"] == {"B": b"\x00\xffhi"}
