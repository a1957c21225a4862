"""Pins the patch of dagcast/local/moto/patches/shard_iterators.py
(``moto.dynamodbstreams.models.ShardIterator`` and the backend's ``shard_iterators``)."""

from __future__ import annotations

import inspect
from typing import Any

import boto3
import pytest


def test_shard_iterators_are_not_kept_and_read_as_before(stack):
    """stateless_shard_iterators: moto kept every iterator it handed out (one per
    GetRecords call, for ever: the idle poller grew `dagcast up` by ~30 MB an hour). Now none is
    kept, and every kind of iterator reads what it did — reusable, like an AWS iterator."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator, dynamodbstreams_backends

    from chalicelib.persistence.table import to_item

    assert getattr(DynamoDBStreamsBackend, "_dagcast_stateless", False), (
        "stateless_shard_iterators was not applied"
    )
    params = list(
        inspect.signature(getattr(ShardIterator.__init__, "__wrapped__", ShardIterator.__init__)).parameters
    )
    assert params[:4] == ["self", "streams_backend", "stream_shard", "shard_iterator_type"], (
        f"ShardIterator.__init__ now takes {params}"
    )
    db = boto3.client("dynamodb")
    streams = boto3.client("dynamodbstreams")
    table = "dagcast-iterators"
    arn = db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def iterator(kind: Any, seq: str | None = None) -> str:
        extra: Any = {"SequenceNumber": seq} if seq else {}
        return str(
            streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind, **extra)[
                "ShardIterator"
            ]
        )

    def rows(records: Any) -> list[int]:
        return [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in records]

    for i in range(3):
        db.put_item(TableName=table, Item=to_item({"PK": "it", "SK": f"ROW#{i}", "n": i}))
    latest = iterator("LATEST")
    first = streams.get_records(ShardIterator=iterator("TRIM_HORIZON"), Limit=2)
    assert rows(first["Records"]) == [0, 1]
    rest = streams.get_records(ShardIterator=first["NextShardIterator"])
    assert rows(rest["Records"]) == [2]
    assert rows(streams.get_records(ShardIterator=first["NextShardIterator"])["Records"]) == [2]  # reusable
    seq1 = first["Records"][1]["dynamodb"]["SequenceNumber"]
    assert rows(streams.get_records(ShardIterator=iterator("AT_SEQUENCE_NUMBER", seq1))["Records"]) == [1, 2]
    assert rows(streams.get_records(ShardIterator=iterator("AFTER_SEQUENCE_NUMBER", seq1))["Records"]) == [2]
    empty = streams.get_records(ShardIterator=rest["NextShardIterator"])
    assert empty["Records"] == []
    db.put_item(TableName=table, Item=to_item({"PK": "it", "SK": "ROW#3", "n": 3}))
    assert rows(streams.get_records(ShardIterator=empty["NextShardIterator"])["Records"]) == [3]
    assert rows(streams.get_records(ShardIterator=latest)["Records"]) == [3]
    backend = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    assert len(backend.shard_iterators) == 0, "moto keeps shard iterators again"
    with pytest.raises(KeyError):  # an iterator moto does not know: what it raised before the patch
        streams.get_records(ShardIterator=f"{arn}|1|not-a-position")
