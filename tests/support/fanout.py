"""Whether the local stack's fan-out has caught up with its table's stream: the point after which
tests can check that nothing more arrives (no late duplicate, no delivery to a deleted webhook)
instead of waiting a while for it."""

from __future__ import annotations

from typing import Any

import boto3

from dagcast.local.moto.poller import iterator_start


def fanned_out(stack: Any) -> bool:
    """Whether the stack's stream poller has acknowledged every record in the stream so far: each
    event written before the call has been through the fan-out handler, which wrote its deliveries
    and sent them (or left them to the retry function), and no record is left to deliver again."""
    poller = stack.poller
    streams = boto3.client("dynamodbstreams")
    for shard in streams.describe_stream(StreamArn=poller.stream_arn)["StreamDescription"]["Shards"]:
        start = iterator_start(poller.checkpoints.get(poller.stream_arn, shard["ShardId"]))
        iterator = streams.get_shard_iterator(StreamArn=poller.stream_arn, ShardId=shard["ShardId"], **start)
        if streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)["Records"]:
            return False
    return True
