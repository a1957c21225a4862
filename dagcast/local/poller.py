"""Deliver DynamoDB stream records to the fan-out handler, the way a Lambda event source mapping does.

moto's own stream → Lambda mapping sends 1-record batches, drops what it sent and ignores
``batchItemFailures``; this poller does what AWS does instead: Lambda-shaped batches per shard
(``Records`` with ``eventSourceARN``), checkpoints with ``AFTER_SEQUENCE_NUMBER``, and when the
handler reports failed items it redelivers from the first failed record (after a back-off), so
nothing is skipped and nothing after a failure overtakes it.

Checkpoints live in memory for now: a restart of the local stack starts a fresh table anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
else:
    DynamoDBStreamsClient = Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)
SHARD_REFRESH_SECONDS = 5.0

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class PollerStats:
    batches: int = 0
    records_delivered: int = 0
    events_delivered: int = 0
    failures_reported: int = 0
    handler_errors: int = 0
    checkpoints: dict[str, str] = field(default_factory=dict)


class StreamPoller:
    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        stream_arn: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        idle_seconds: float = 0.2,
        retry_seconds: float = 0.5,
    ) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._handler = handler
        self._batch_size = batch_size
        self._idle = idle_seconds
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shards: list[str] | None = None
        self._shards_at = 0.0
        self._iterators: dict[str, str] = {}
        self.stats = PollerStats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dagcast-stream-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.poll_once()
            except Exception:
                log.exception("stream poll failed; retrying")
                delivered = 0
            if not delivered:
                self._stop.wait(self._idle)

    def poll_once(self) -> int:
        """One pass over every shard; returns the number of records acknowledged."""
        now = time.monotonic()
        if self._shards is None or now - self._shards_at > SHARD_REFRESH_SECONDS:
            description = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
            self._shards = [s["ShardId"] for s in description.get("Shards", [])]
            self._shards_at = now
        return sum(self._poll_shard(shard_id) for shard_id in self._shards)

    def _iterator(self, shard_id: str) -> str:
        """The shard's next iterator; after a failure, a fresh one from the checkpoint."""
        cached = self._iterators.get(shard_id)
        if cached:
            return cached
        checkpoint = self.stats.checkpoints.get(shard_id)
        if checkpoint:
            it = self._streams.get_shard_iterator(
                StreamArn=self._arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=checkpoint,
            )
        else:
            it = self._streams.get_shard_iterator(
                StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        return str(it["ShardIterator"])

    def _poll_shard(self, shard_id: str) -> int:
        try:
            out = self._streams.get_records(ShardIterator=self._iterator(shard_id), Limit=self._batch_size)
        except ClientError:
            self._iterators.pop(shard_id, None)  # expired or trimmed: rebuild from the checkpoint
            raise
        next_iterator = out.get("NextShardIterator")
        records: list[dict[str, Any]] = [dict(r, eventSourceARN=self._arn) for r in out.get("Records", [])]
        # Only a fully acknowledged batch may move on with the next iterator; otherwise the
        # next poll starts again after the checkpoint (redelivering from the failed record).
        self._iterators.pop(shard_id, None)
        if not records:
            if next_iterator:
                self._iterators[shard_id] = str(next_iterator)
            return 0
        self.stats.batches += 1
        try:
            response = self._handler({"Records": records}, None) or {}
        except Exception:
            log.exception("fan-out handler raised; redelivering the whole batch")
            self.stats.handler_errors += 1
            self._stop.wait(self._retry)
            return 0
        failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures", [])}
        acked = records
        if failed:
            self.stats.failures_reported += len(failed)
            first = next((i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed), 0)
            acked = records[:first]
        if not failed and next_iterator:
            self._iterators[shard_id] = str(next_iterator)
        if acked:
            self.stats.checkpoints[shard_id] = acked[-1]["dynamodb"]["SequenceNumber"]
            self.stats.records_delivered += len(acked)
            self.stats.events_delivered += sum(1 for r in acked if _is_event_insert(r))
        if failed:
            self._stop.wait(self._retry)
        return len(acked)


def _is_event_insert(record: dict[str, Any]) -> bool:
    sk = record.get("dynamodb", {}).get("Keys", {}).get("SK", {}).get("S", "")
    return record.get("eventName") == "INSERT" and str(sk).startswith("EVT#")
