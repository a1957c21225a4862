"""MotoShardReader (dagcast/local/moto/shard_reader.py): the stack's poller reads the stream from
moto's backend, and what it reads is what GetRecords answers over the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from chalicelib.persistence.keys import event_sk, pk, table_definition
from chalicelib.persistence.table import to_item
from dagcast.local.moto.poller import is_event_insert
from dagcast.local.moto.shard_reader import MotoShardReader
from tests.functional.conftest import run_job, wait_for
from tests.support.jobs import echo

TABLE = "dagcast-shard-reader"


@pytest.fixture(scope="module")
def stream(stack: Any) -> Iterator[tuple[str, str]]:
    """A table of its own (no other test's writes in its stream): (stream ARN, shard id)."""
    db = boto3.client("dynamodb")
    arn = db.create_table(**table_definition(TABLE))["TableDescription"]["LatestStreamArn"]
    shard = boto3.client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    yield arn, shard["ShardId"]
    db.delete_table(TableName=TABLE)


def wire(stack: Any, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """The JSON body moto's server answers a DynamoDB Streams call with (moto checks no signature;
    the credential scope names the service, as in a signed request)."""
    reply = httpx.post(
        stack.endpoint,
        content=json.dumps(body),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDBStreams_20120810.{operation}",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261205/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    reply.raise_for_status()
    return dict(reply.json())


def test_the_reader_answers_what_getrecords_answers_over_the_wire(stack, stream):
    """Every record as moto's server writes it (dates as epoch seconds, binary as base64, numbers,
    sets, lists and maps as AttributeValues), inserts, updates and deletes, and the same next
    iterator: the poller sees through the reader what it saw through the API."""
    arn, shard = stream
    db = boto3.client("dynamodb")
    item = to_item(
        {"PK": "reader", "SK": "ROW#1", "n": Decimal("1.5"), "l": ["x", 2, None, False], "s": {"a"}}
    )
    item["b"] = {"B": b"\x00\xffhi"}
    item["m"] = {"M": {"bs": {"BS": [b"a"]}, "deep": {"M": {"l": {"L": [{"M": {"k": {"S": "v"}}}]}}}}}
    db.put_item(TableName=TABLE, Item=item)
    db.update_item(
        TableName=TABLE,
        Key={"PK": item["PK"], "SK": item["SK"]},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    db.delete_item(TableName=TABLE, Key={"PK": item["PK"], "SK": item["SK"]})
    reader = MotoShardReader()
    start = reader.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    assert start == wire(
        stack, "GetShardIterator", {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}
    )
    read = reader.get_records(ShardIterator=start["ShardIterator"], Limit=1000)
    answered = wire(stack, "GetRecords", {"ShardIterator": start["ShardIterator"], "Limit": 1000})
    assert [r["eventName"] for r in read["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    assert isinstance(read["Records"][0]["dynamodb"]["ApproximateCreationDateTime"], float)
    assert read == answered
    assert reader.describe_stream(StreamArn=arn) == wire(stack, "DescribeStream", {"StreamArn": arn})


def test_a_record_the_filter_refuses_comes_with_its_place_only_and_a_kept_one_is_a_copy(stream):
    """The mapping's filter drops most records (a task's own writes): the poller only counts and
    checkpoints them, so they come without their item image; a record the filter keeps comes whole,
    and as the caller's own copy — changing it changes nothing another read sees."""
    arn, shard = stream
    db = boto3.client("dynamodb")
    db.put_item(TableName=TABLE, Item=to_item({"PK": pk("reader-x"), "SK": "META", "status": "RUNNING"}))
    db.put_item(TableName=TABLE, Item=to_item({"PK": pk("reader-x"), "SK": event_sk(1), "type": "t"}))
    reader = MotoShardReader(keep=is_event_insert)
    latest = reader.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = reader.get_records(ShardIterator=latest["ShardIterator"])["Records"][-2:]
    dropped, kept = records
    assert dropped == {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"PK": {"S": pk("reader-x")}, "SK": {"S": "META"}},
            "SequenceNumber": dropped["dynamodb"]["SequenceNumber"],
        },
    }
    assert kept["dynamodb"]["NewImage"]["type"] == {"S": "t"} and kept["eventSource"] == "aws:dynamodb"
    kept["dynamodb"]["NewImage"]["type"]["S"] = "changed"
    again = reader.get_records(ShardIterator=latest["ShardIterator"])["Records"][-1]
    assert again["dynamodb"]["NewImage"]["type"] == {"S": "t"}


def test_an_iterator_moto_does_not_know_is_an_expired_iterator(stream):
    """What AWS answers for an iterator it no longer serves, so the poller rebuilds its iterator
    from the checkpoint as it does after an API error."""
    arn, _ = stream
    with pytest.raises(ClientError) as raised:
        MotoShardReader().get_records(ShardIterator=f"{arn}|1|not-a-number")
    assert raised.value.response["Error"]["Code"] == "ExpiredIteratorException"


def test_the_stacks_poller_reads_the_stream_without_a_botocore_call(stack, services, monkeypatch):
    """A third of the stack's interpreter time in bench/dag_makespan was the poller's GetRecords
    through botocore (signing, serialising, parsing every record): the stack's poller delivers an
    event to the fan-out while no DescribeStream, GetShardIterator or GetRecords call is made."""
    stream_calls: list[str] = []
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]  # botocore builds it at runtime

    def counting(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodbstreams":
            stream_calls.append(operation)
        return make_api_call(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    stack.poller.stop()
    poller = stack.start_poller()  # a fresh poller: it describes the stream and takes an iterator again
    run_job(services, {"tasks": [echo(1, "read without botocore")]})
    wait_for(lambda: poller.stats.events_delivered >= 4, 30, "the execution's events at the fan-out")
    assert stream_calls == []
