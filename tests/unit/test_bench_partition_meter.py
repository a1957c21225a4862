"""bench/lambda_shape_app's PartitionMeter: the reads of one client, split by the partition read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bench.lambda_shape_app import PartitionMeter


def _read(meter: PartitionMeter, operation: str, params: dict[str, Any], items: list[dict[str, Any]]) -> None:
    context: dict[str, Any] = {}
    meter._ask(params, context)
    parsed: dict[str, Any] = {"Items": items} if operation == "Query" else {"Item": items[0]}
    meter._answered(parsed, SimpleNamespace(name=operation), context)


def test_each_partition_gets_its_reads_and_the_total_keeps_them_all():
    meter = PartitionMeter()
    big = {"PK": {"S": "EXEC#a"}, "data": {"S": "x" * 5000}}  # 2 units: 1 RCU eventually consistent
    query = {
        "KeyConditionExpression": "PK = :p AND SK BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {":p": {"S": "EXEC#a"}, ":lo": {"S": "1"}, ":hi": {"S": "9"}},
    }
    _read(meter, "Query", {**query, "ConsistentRead": False}, [big])
    _read(meter, "Query", {**query, "ConsistentRead": True}, [])
    slots = {
        "KeyConditionExpression": "PK = :x AND begins_with(SK, :s)",
        "ExpressionAttributeValues": {":x": {"S": "STREAMS#a"}, ":s": {"S": "SLOT#"}},
    }
    _read(meter, "Query", slots, [])
    _read(
        meter, "GetItem", {"Key": {"PK": {"S": "EXEC#a"}, "SK": {"S": "META"}}, "ConsistentRead": True}, [big]
    )
    parts = meter.partition_stats()
    assert parts["EXEC#a"]["eventualReads"] == 1 and parts["EXEC#a"]["rcuEventual"] == 1.0
    assert parts["EXEC#a"]["consistentReads"] == 2 and parts["EXEC#a"]["rcuConsistent"] == 3.0
    assert parts["STREAMS#a"]["reads"] == 1 and parts["STREAMS#a"]["rcuEventual"] == 0.5
    assert meter.stats()["reads"] == 4 and meter.stats()["rcu"] == 4.5
