"""Read the table's stream straight from moto's DynamoDB Streams backend, as AWS's own poller does.

The stream poller (poller.py) stands in for the Lambda service's event source mapping, which
reads a shard inside AWS: none of its reads is a call dagcast makes, and none crosses dagcast's
wire. Through boto3 (moto's in-process stub) each read was a whole botocore round trip — request
signed and serialised, every record of the answer, old and new item images included, parsed
attribute by attribute — and a py-spy profile of ``bench/dag_makespan`` put a third of the stack's
interpreter time there: the poller reads after every write, and the table writes ~8 stream
records per task of which the mapping's filter keeps ~1.

``MotoShardReader`` answers the three calls the poller makes (DescribeStream, GetShardIterator,
GetRecords) from moto's backend directly, each record as GetRecords' JSON answer carries it (moto's
server's encoding: dates as epoch seconds, binary as base64 — what a Lambda's event holds, where
boto3 would have made dates ``datetime``s), a copy per read. Its methods take the same arguments and give
the same shape as the boto3 client's, so the poller works with either (its tests use both).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodbstreams.models import dynamodbstreams_backends

from ..lambdas import REGION
from .patches.item_responses import wire_value

GET_RECORDS_LIMIT = 1000  # GetRecords' own maximum and default


class MotoShardReader:
    """DescribeStream, GetShardIterator and GetRecords of moto's backend, without the wire."""

    def __init__(
        self,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = REGION,
    ) -> None:
        """``keep``: the mapping's filter. A record it refuses never reaches the function, so it is
        answered with its place only (event name, keys, sequence number: what the poller counts
        and checkpoints), not copied whole with its item images."""
        self._keep = keep
        self._account_id = account_id
        self._region = region

    @property
    def _backend(self) -> Any:
        # looked up per call: a stack stopped and started again in this process gets new backends
        return dynamodbstreams_backends[self._account_id][self._region]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": _as_answered(self._backend.describe_stream(StreamArn))}

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict[str, Any]:
        number = int(SequenceNumber) if SequenceNumber is not None else None
        iterator = self._backend.get_shard_iterator(StreamArn, ShardId, ShardIteratorType, number)
        return {"ShardIterator": iterator.arn}

    def get_records(self, ShardIterator: str, Limit: int = GET_RECORDS_LIMIT) -> dict[str, Any]:
        try:
            # No lock needed: moto builds a record whole, then appends it to the shard's list, so
            # the slice this reads is a prefix of whole records.
            answer = self._backend.get_records(ShardIterator, Limit)
        except KeyError:  # moto's answer to an iterator it does not know; AWS names it so
            raise ClientError(
                {"Error": {"Code": "ExpiredIteratorException", "Message": "Iterator expired"}},
                "GetRecords",
            ) from None
        return {
            "Records": [self._copy(r) for r in answer["Records"]],
            "NextShardIterator": answer["NextShardIterator"],
        }

    def _copy(self, record: dict[str, Any]) -> dict[str, Any]:
        if self._keep is None or self._keep(record):
            return _as_answered(record)
        place = record["dynamodb"]
        return {
            "eventName": record["eventName"],
            "dynamodb": {
                "Keys": {name: dict(value) for name, value in place["Keys"].items()},
                "SequenceNumber": place["SequenceNumber"],
            },
        }


def _as_answered(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as moto's server writes it into an answer (dates as epoch seconds to the
    millisecond, binary as base64: patches/item_responses.py), parsed back: the caller's own copy."""
    return dict(json.loads(json.dumps(value, default=wire_value)))
