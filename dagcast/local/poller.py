"""Deliver DynamoDB stream records to the fan-out handler, the way a Lambda event source mapping does.

moto's own stream → Lambda mapping sends 1-record batches, drops what it sent and ignores
``batchItemFailures``; this poller does what AWS does instead: Lambda-shaped batches per shard
(``Records`` with ``eventSourceARN``), checkpoints with ``AFTER_SEQUENCE_NUMBER``, and when the
handler reports failed items it redelivers from the first failed record (after a back-off), so
nothing is skipped and nothing after a failure overtakes it.

Like an event source mapping it waits up to ``batch_window_seconds`` to fill a batch of
``batch_size``, and drops records the mapping's filter would (``accept``: only event inserts reach
the fan-out in AWS, template.yaml's FilterCriteria). Checkpoints go to a ``Checkpoints`` store after
every acknowledged batch; with a ``FileCheckpoints`` a restarted poller resumes after the last
acknowledged record, so it neither skips nor repeats.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
else:
    DynamoDBStreamsClient = Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)
SHARD_REFRESH_SECONDS = 5.0
STOP_WAIT_LOG_SECONDS = 10.0  # stop(): how often it says it is still waiting for the handler

Handler = Callable[[dict[str, Any], Any], Any]
Record = dict[str, Any]


@dataclass
class PollerStats:
    batches: int = 0
    records_delivered: int = 0
    events_delivered: int = 0
    failures_reported: int = 0
    handler_errors: int = 0
    records_filtered: int = 0


class Checkpoints:
    """Per stream and shard: the sequence number of the last acknowledged record (in memory)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        return self._data.get(stream_arn, {}).get(shard_id)

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._data.setdefault(stream_arn, {})[shard_id] = sequence_number


class FileCheckpoints(Checkpoints):
    """Checkpoints in a JSON file, replaced atomically on every update (survives a restart)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            self._data = json.loads(self.path.read_text() or "{}")

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        super().put(stream_arn, shard_id, sequence_number)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoints-")
        with os.fdopen(fd, "w") as f:
            json.dump(self._data, f)
        os.replace(tmp, self.path)


def is_event_insert(record: Record) -> bool:
    """The event source mapping's filter: only new event items reach the fan-out."""
    sk = record.get("dynamodb", {}).get("Keys", {}).get("SK", {}).get("S", "")
    return record.get("eventName") == "INSERT" and str(sk).startswith("EVT#")


class StreamPoller:
    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        stream_arn: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        batch_window_seconds: float = 0.0,
        idle_seconds: float = 0.2,
        retry_seconds: float = 0.5,
        checkpoints: Checkpoints | None = None,
        accept: Callable[[Record], bool] | None = None,
    ) -> None:
        self._streams = streams
        self._arn = stream_arn
        self.stream_arn = stream_arn
        self._handler = handler
        self._batch_size = batch_size
        self._window = batch_window_seconds
        self.checkpoints = checkpoints or Checkpoints()
        self._accept = accept
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
        """Stop after the batch in hand; return only once the thread has exited. A batch's handler
        call can outlast any fixed wait (webhooks delivered inline take up to 10 s), and returning
        while it runs let a restarted poller (``LocalStack.start_poller``) read the checkpoint from
        before that batch and deliver it a second time — ahead of the first delivery, even."""
        self._stop.set()
        if self._thread is None:
            return
        while True:
            self._thread.join(timeout=STOP_WAIT_LOG_SECONDS)
            if not self._thread.is_alive():
                return
            log.warning("the stream poller is still in the fan-out handler; waiting for it to return")

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
        checkpoint = self.checkpoints.get(self._arn, shard_id)
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

    def _collect(self, shard_id: str) -> tuple[list[Record], str | None]:
        """Up to batch_size records, waiting up to the batch window once the first one is in."""
        iterator: str | None = self._iterator(shard_id)
        records: list[Record] = []
        first_at = 0.0
        while iterator:
            try:
                out = self._streams.get_records(ShardIterator=iterator, Limit=self._batch_size - len(records))
            except ClientError:
                self._iterators.pop(shard_id, None)  # expired or trimmed: rebuild from the checkpoint
                raise
            got = [dict(r, eventSourceARN=self._arn) for r in out.get("Records", [])]
            iterator = out.get("NextShardIterator")
            if got and not records:
                first_at = time.monotonic()
            records += got
            waited = time.monotonic() - first_at
            if not records or len(records) >= self._batch_size or waited >= self._window:
                break
            self._stop.wait(min(0.05, self._window - waited))
        return records, iterator

    def _poll_shard(self, shard_id: str) -> int:
        records, next_iterator = self._collect(shard_id)
        # Only a fully acknowledged batch may move on with the next iterator; otherwise the
        # next poll starts again after the checkpoint (redelivering from the failed record).
        self._iterators.pop(shard_id, None)
        if not records:
            if next_iterator:
                self._iterators[shard_id] = str(next_iterator)
            return 0
        deliver = [r for r in records if self._accept is None or self._accept(r)]
        self.stats.records_filtered += len(records) - len(deliver)
        failed: set[str] = set()
        if deliver:
            self.stats.batches += 1
            try:
                response = self._handler({"Records": deliver}, None) or {}
            except Exception:
                log.exception("fan-out handler raised; redelivering the whole batch")
                self.stats.handler_errors += 1
                self._stop.wait(self._retry)
                return 0
            failed = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
        acked = records
        if failed:
            self.stats.failures_reported += len(failed)
            first = next((i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed), 0)
            acked = records[:first]
        if not failed and next_iterator:
            self._iterators[shard_id] = str(next_iterator)
        if acked:
            self.checkpoints.put(self._arn, shard_id, acked[-1]["dynamodb"]["SequenceNumber"])
            delivered = [r for r in acked if self._accept is None or self._accept(r)]
            self.stats.records_delivered += len(delivered)
            self.stats.events_delivered += sum(1 for r in delivered if is_event_insert(r))
        if failed:
            self._stop.wait(self._retry)
        return len(acked)
