"""Pins the moto internals dagcast's local stack relies on (see dagcast/local/moto_adapter.py).
If a moto upgrade breaks them, these fail with a message that says what changed."""

from __future__ import annotations

import inspect
import json
from typing import Any

import boto3
import pytest
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.models import StateMachine

from dagcast.local.stack import function_name


def test_lambda_invoke_hook_still_exists_with_the_same_signature(stack):
    assert hasattr(LambdaFunction, "_invoke_lambda"), "moto no longer has LambdaFunction._invoke_lambda"
    original = stack.invoker.replaced
    assert original.__module__ == "moto.awslambda.models"
    params = list(inspect.signature(original).parameters)
    assert params == ["self", "event"], f"LambdaFunction._invoke_lambda now takes {params}"


def test_boto3_invoke_reaches_the_in_process_handler_and_errors_keep_lambdas_shape(stack):
    client = boto3.client("lambda")

    def handler(event, context):
        if event.get("boom"):
            raise KeyError("missing")
        return {"echo": event, "fn": context.function_name}

    with stack.handler_override("finalize", handler):
        ok = client.invoke(FunctionName=function_name("finalize"), Payload=json.dumps({"a": 1}))
        bad = client.invoke(FunctionName=function_name("finalize"), Payload=json.dumps({"boom": True}))
    assert json.loads(ok["Payload"].read()) == {"echo": {"a": 1}, "fn": function_name("finalize")}
    assert bad["FunctionError"] == "Handled"
    body = json.loads(bad["Payload"].read())
    assert body["errorType"] == "KeyError" and body["errorMessage"] == "'missing'"


def test_state_machine_copy_fix_is_installed(stack):
    assert "__deepcopy__" in StateMachine.__dict__, "moto_adapter.fix_state_machine_copy was not applied"


def test_queries_read_only_their_partition_and_answer_as_before(stack):
    """moto_adapter.scope_queries_to_partition: same answers, without listing the whole table."""
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


def test_concurrent_conditional_writes_to_one_item_have_one_winner(stack, services):
    """moto_adapter.serialize_dynamodb: DynamoDB's per-item atomicity, which moto lacks alone.
    (Without the patch the race is rare under the GIL — the random-DAG test hit it once in CI —
    so this guards the guarantee rather than reproducing the bug every run.)"""
    import threading
    import uuid

    from moto.dynamodb.models import DynamoDBBackend

    assert getattr(DynamoDBBackend, "_dagcast_serialized", False), "serialize_dynamodb was not applied"
    store = services.store
    for _ in range(3):
        eid = f"dag-exec_slot{uuid.uuid4().hex[:8]}"
        store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
        start = threading.Barrier(24)
        won: list[int] = []

        def claim(
            task_id: int, eid: str = eid, start: threading.Barrier = start, won: list[int] = won
        ) -> None:
            start.wait()
            if store.acquire_slot(eid, task_id, limit=1):
                won.append(task_id)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, f"{len(won)} writers passed the same condition: {won}"
        assert store.get_meta(eid)["holding"] == set(won)


def test_this_process_reaches_moto_in_process_and_other_processes_over_http(stack):
    """moto_adapter.dispatch_in_process: no socket for this process's calls, the same backends
    for everyone else (the front of `dagcast up`, a CLI) through the server."""
    import os

    from moto.core.models import botocore_stubber

    from chalicelib.persistence.table import to_item

    assert botocore_stubber.enabled, "dispatch_in_process was not applied"
    assert "AWS_ENDPOINT_URL" not in os.environ, "this process's boto3 must not be pointed at the server"
    sent: list[str] = []
    local = boto3.client("dynamodb")
    local.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    local.put_item(TableName="dagcast-functional", Item=to_item({"PK": "dispatch", "SK": "ROW", "n": 7}))
    assert sent and all(u.startswith("https://dynamodb.us-east-1.amazonaws.com") for u in sent), sent

    remote = boto3.client("dynamodb", endpoint_url=stack.endpoint)
    got = remote.get_item(TableName="dagcast-functional", Key=to_item({"PK": "dispatch", "SK": "ROW"}))
    assert got["Item"]["n"] == {"N": "7"}


def test_shard_iterators_are_not_kept_and_read_as_before(stack):
    """moto_adapter.stateless_shard_iterators: moto kept every iterator it handed out (one per
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


def test_moto_no_longer_keeps_every_model_object_it_made(stack):
    """moto_adapter.untracked_models: moto's BaseModel appended every object it made to its class's
    instances_tracked (for its dashboard), so superseded item versions were never freed."""
    import gc

    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.dynamo_type import Item

    from chalicelib.persistence.table import to_item

    assert getattr(BaseModel, "_dagcast_untracked", False), "untracked_models was not applied"
    db = boto3.client("dynamodb")
    key = to_item({"PK": "tracked", "SK": "ROW"})
    db.put_item(TableName="dagcast-functional", Item=to_item({"PK": "tracked", "SK": "ROW", "n": 0}))
    for n in range(1, 51):
        db.update_item(
            TableName="dagcast-functional",
            Key=key,
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues=to_item({":n": n}),
        )
    gc.collect()
    versions = [o for o in gc.get_objects() if isinstance(o, Item) and o.hash_key.value == "tracked"]
    # the item in the table (a stream record keeps its image as JSON, not the Item)
    assert len(versions) == 1, f"{len(versions)} versions of one item are alive"
    assert getattr(Item, "instances_tracked", []) == []
