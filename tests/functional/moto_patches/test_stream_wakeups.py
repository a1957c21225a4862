"""Pins the patch of dagcast/local/moto/patches/stream_wakeups.py
(``moto.dynamodb.models.table.StreamShard.add``)."""

from __future__ import annotations

import inspect

import boto3

from chalicelib.persistence.table import to_item


def test_a_stream_write_calls_the_listeners_and_an_unregistered_one_no_more(stack):
    """wake_on_stream_writes: the stream poller slept out its idle wait while records waited. Now
    every stream record moto appends calls the registered listeners (the stack's poller.wake)."""
    from moto.dynamodb.models.table import StreamShard

    from dagcast.local.moto.patches.stream_wakeups import on_stream_write

    assert getattr(StreamShard, "_dagcast_wakes", False), "wake_on_stream_writes was not applied"
    params = list(inspect.signature(getattr(StreamShard.add, "__wrapped__", StreamShard.add)).parameters)
    assert params == ["self", "old", "new"], f"StreamShard.add now takes {params}"
    calls: list[int] = []
    remove = on_stream_write(lambda: calls.append(1))
    db = boto3.client("dynamodb")
    try:
        db.put_item(TableName=stack.table_name, Item=to_item({"PK": "wake", "SK": "ROW#1"}))
        assert calls == [1], "a write to a table with a stream did not call the listener"
    finally:
        remove()
    db.put_item(TableName=stack.table_name, Item=to_item({"PK": "wake", "SK": "ROW#2"}))
    assert calls == [1]
