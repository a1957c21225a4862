"""Deliver DynamoDB stream records to the fan-out handler, the way a Lambda event source mapping does.

moto's own stream → Lambda mapping sends 1-record batches, drops what it sent and ignores
``batchItemFailures``; this poller does what AWS does instead: Lambda-shaped batches per shard
(``Records`` with ``eventSourceARN``), checkpoints with ``AFTER_SEQUENCE_NUMBER``, and when the
handler reports failed items it redelivers from the first failed record (after a back-off), so
nothing after a failure overtakes it.

Like template.yaml's mapping (``MaximumRetryAttempts``, an on-failure destination,
``BisectBatchOnFunctionError``) it does not retry for ever: once a batch starting at the same record
has failed ``max_retries`` + 1 times, that record (or, when the handler raised, the batch — halved
after each raise, as the mapping bisects it) is given up: its coordinates go to ``OnFailure`` (the
shape of AWS's on-failure message) and the shard moves on, so one record that never succeeds does
not hold back the records behind it for ever.

Like an event source mapping it fills a batch of up to ``batch_size`` records until
``batch_window_seconds`` have passed since the shard's previous invocation ended (for streams AWS
starts the next window when the previous invocation completes, not when a record arrives: after a
quiet spell a record goes at once, while the handler is busy they gather), and drops records the
mapping's filter would (``accept``: only event inserts reach the fan-out in AWS, template.yaml's
FilterCriteria) — a dropped record fills no batch and holds nothing back. Unlike AWS it reads a
shard as soon as a write wakes it, not 4 times a second (up to 250 ms more in AWS once the window
has passed). Checkpoints go to a ``Checkpoints`` store after
every acknowledged batch; a ``FileCheckpoints`` writes them to disk when the poller has caught up,
when it stops, and at most once a second while busy (not per batch), so a poller restarted after
``stop()`` resumes after the last acknowledged record: it neither skips nor repeats. After a
crash it may repeat the last second's batches, as a mapping may after a failure (the fan-out is
idempotent).

It is the moto stack's stand-in only: with the LocalStack backend, LocalStack's own mapping
delivers the records, and in AWS template.yaml's does. It does not emulate shard splits' parent
ordering or the mapping's concurrency per shard (one batch at a time, shard after shard).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
else:
    DynamoDBStreamsClient = Any

from botocore.exceptions import ClientError

from chalicelib.persistence.keys import is_event_sk, record_position

from .shard_reader import MotoShardReader

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
    records_given_up: int = 0  # after the retry limit: in OnFailure, not delivered
    # How long each of the last batches spent in the handler (the bench's "what bounds the lag")
    handler_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class OnFailure:
    """The mapping's on-failure destination: one message per batch given up, shaped like the SQS
    message AWS sends (``requestContext``, ``DDBStreamBatchInfo``) plus the records' execution ids
    and seqs; kept in ``messages`` and, with a path, appended to a JSON-lines file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.write(json.dumps(message, default=str) + "\n")


class Checkpoints:
    """Per stream and shard: the sequence number of the last acknowledged record (in memory)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        return self._data.get(stream_arn, {}).get(shard_id)

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._data.setdefault(stream_arn, {})[shard_id] = sequence_number

    def flush(self) -> None:
        """Make what ``put`` recorded last survive a restart (nothing to do in memory)."""


class FileCheckpoints(Checkpoints):
    """Checkpoints in a JSON file, replaced atomically by ``flush``: the poller flushes when a shard
    has nothing waiting and when it stops, at most every ``flush_seconds`` while busy — not per
    batch (a file per batch cost the busy stack a write and an fsync-free rename per batch, and
    bought nothing: the fan-out is idempotent, so a crash between flushes repeats, never skips)."""

    def __init__(self, path: str | Path, flush_seconds: float = 1.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self._written: dict[str, dict[str, str]] = {}
        self._written_at = time.monotonic()
        if self.path.exists():
            self._data = json.loads(self.path.read_text() or "{}")
            self._written = {k: dict(v) for k, v in self._data.items()}

    def put(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        super().put(stream_arn, shard_id, sequence_number)
        if time.monotonic() - self._written_at >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._written_at = time.monotonic()
        if self._data == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoints-")
        with os.fdopen(fd, "w") as f:
            json.dump(self._data, f)
        os.replace(tmp, self.path)
        self._written = {k: dict(v) for k, v in self._data.items()}


def iterator_start(checkpoint: str | None) -> dict[str, Any]:
    """Where a shard is read from: after its checkpoint, or from the oldest record kept."""
    if checkpoint:
        return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint}
    return {"ShardIteratorType": "TRIM_HORIZON"}


def is_event_insert(record: Record) -> bool:
    """The event source mapping's filter: only new event items reach the fan-out."""
    sk = record.get("dynamodb", {}).get("Keys", {}).get("SK", {}).get("S", "")
    return record.get("eventName") == "INSERT" and is_event_sk(sk)


class StreamPoller:
    def __init__(
        self,
        streams: DynamoDBStreamsClient | MotoShardReader,
        stream_arn: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        batch_window_seconds: float = 0.0,
        idle_seconds: float = 0.2,
        retry_seconds: float = 0.5,
        checkpoints: Checkpoints | None = None,
        accept: Callable[[Record], bool] | None = None,
        max_retries: int = 10,
        on_failure: OnFailure | None = None,
    ) -> None:
        """``max_retries``: retries of a failing batch before it is given up (template.yaml's
        ``MaximumRetryAttempts``; -1: without limit)."""
        self._streams = streams
        self.stream_arn = stream_arn
        self._handler = handler
        self._batch_size = batch_size
        self._window = batch_window_seconds
        self.checkpoints = checkpoints or Checkpoints()
        self._accept = accept
        self._idle = idle_seconds
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and by wake(): a record was written
        self._thread: threading.Thread | None = None
        self._shards: list[str] | None = None
        self._shards_at = 0.0
        self._iterators: dict[str, str] = {}
        self._max_retries = max_retries
        self.on_failure = on_failure or OnFailure()
        self._failing: dict[str, tuple[str, int]] = {}  # shard → (record retried from, failed attempts)
        self._bisected: dict[str, int] = {}  # shard → batch size after the handler raised
        self._invoked: dict[str, float] = {}  # shard → when its last invocation ended (monotonic)
        self.stats = PollerStats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dagcast-stream-poller", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A record was written: end the idle wait now (the moto stack calls it on every stream
        write, patches/stream_wakeups.py). Safe from any thread; it only signals."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the batch in hand; return only once the thread has exited. A batch's handler
        call can outlast any fixed wait (webhooks delivered inline take up to 10 s), and returning
        while it runs would let a restarted poller (``MotoStack.start_poller``) read the checkpoint from
        before that batch and deliver it a second time — ahead of the first delivery, even."""
        self._stop.set()
        self._wake.set()
        while self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_LOG_SECONDS)
            if not self._thread.is_alive():
                break
            log.warning("the stream poller is still in the fan-out handler; waiting for it to return")
        self.checkpoints.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before reading: a write from here on ends the idle wait below
            try:
                delivered = self.poll_once()
            except Exception:
                log.exception("stream poll failed; retrying")
                self._stop.wait(self._idle)  # not woken by writes: a failing read is not retried hot
                continue
            if not delivered:
                self.checkpoints.flush()  # caught up: what was acknowledged goes to disk now
                self._wake.wait(self._idle)

    def poll_once(self) -> int:
        """One pass over every shard; returns the number of records acknowledged."""
        now = time.monotonic()
        if self._shards is None or now - self._shards_at > SHARD_REFRESH_SECONDS:
            description = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
            self._shards = [s["ShardId"] for s in description.get("Shards", [])]
            self._shards_at = now
        return sum(self._poll_shard(shard_id) for shard_id in self._shards)

    def _iterator(self, shard_id: str) -> str:
        """The shard's next iterator; after a failure, a fresh one from the checkpoint."""
        cached = self._iterators.get(shard_id)
        if cached:
            return cached
        checkpoint = self.checkpoints.get(self.stream_arn, shard_id)
        it = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id, **iterator_start(checkpoint)
        )
        return str(it["ShardIterator"])

    def _collect(self, shard_id: str) -> tuple[list[Record], str | None]:
        """Records up to batch_size of them the filter lets through, gathered until the batch
        window has passed since the shard's last invocation ended (AWS, streams: "the next batching
        window begins as soon as the previous function invocation completes"). Records the filter
        drops fill no batch and start no window; when none of the records read is for the handler
        they are answered at once (acknowledged without an invocation)."""
        iterator: str | None = self._iterator(shard_id)
        size = self._bisected.get(shard_id, self._batch_size)
        records: list[Record] = []
        wanted = 0
        while iterator:
            try:
                out = self._streams.get_records(ShardIterator=iterator, Limit=size - wanted)
            except ClientError:
                self._iterators.pop(shard_id, None)  # expired or trimmed: rebuild from the checkpoint
                raise
            got = [dict(r, eventSourceARN=self.stream_arn) for r in out.get("Records", [])]
            iterator = out.get("NextShardIterator")
            records += got
            wanted += sum(1 for r in got if self._accepts(r))
            left = self._window - (time.monotonic() - self._invoked.get(shard_id, -self._window))
            if not wanted or wanted >= size or left <= 0:
                break
            self._stop.wait(min(0.05, left))
        return records, iterator

    def _accepts(self, record: Record) -> bool:
        return self._accept is None or self._accept(record)

    def _poll_shard(self, shard_id: str) -> int:
        records, next_iterator = self._collect(shard_id)
        # Only a fully acknowledged batch may move on with the next iterator; otherwise the
        # next poll starts again after the checkpoint (redelivering from the failed record).
        self._iterators.pop(shard_id, None)
        if not records:
            if next_iterator:
                self._iterators[shard_id] = str(next_iterator)
            return 0
        deliver = [r for r in records if self._accepts(r)]
        self.stats.records_filtered += len(records) - len(deliver)
        acked, given_up = records, []
        if deliver:
            self.stats.batches += 1
            started = time.monotonic()
            try:
                response = self._handler({"Records": deliver}, None) or {}
            except Exception:
                self._invoked[shard_id] = time.monotonic()
                log.exception("fan-out handler raised; redelivering the batch")
                self.stats.handler_errors += 1
                if not self._exhausted(shard_id, records[0]):
                    self._bisected[shard_id] = max(1, len(records) // 2)  # BisectBatchOnFunctionError
                    self._stop.wait(self._retry)
                    return 0
                given_up = deliver
            else:
                self._invoked[shard_id] = time.monotonic()  # the shard's next batch window starts
                self.stats.handler_seconds.append(self._invoked[shard_id] - started)
                failed = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
                if failed:
                    self.stats.failures_reported += len(failed)
                    first = next((i for i, r in enumerate(records) if _sequence(r) in failed), 0)
                    acked = records[:first]
                    if self._exhausted(shard_id, records[first]):
                        # give up on that record only: the rest of the batch gets another chance
                        acked, given_up = records[: first + 1], [records[first]]
        self._bisected.pop(shard_id, None)
        if given_up:
            self._give_up(shard_id, given_up, function_error=given_up is deliver)
        if acked is records and next_iterator:
            self._iterators[shard_id] = str(next_iterator)
        if acked:
            self.checkpoints.put(self.stream_arn, shard_id, _sequence(acked[-1]))
            delivered = [r for r in acked if self._accepts(r) and r not in given_up]
            self.stats.records_delivered += len(delivered)
            self.stats.events_delivered += sum(1 for r in delivered if is_event_insert(r))
        if len(acked) < len(records) and not given_up:
            self._stop.wait(self._retry)
        return len(acked)

    def _exhausted(self, shard_id: str, record: Record) -> bool:
        """Count a failed attempt at a batch starting at ``record``; True when it was the last one
        (``max_retries`` + 1 attempts; never with -1)."""
        sequence = _sequence(record)
        at, failures = self._failing.get(shard_id, ("", 0))
        failures = failures + 1 if at == sequence else 1
        self._failing[shard_id] = (sequence, failures)
        return 0 <= self._max_retries < failures

    def _give_up(self, shard_id: str, records: list[Record], function_error: bool) -> None:
        _, attempts = self._failing.pop(shard_id, ("", 0))
        self.stats.records_given_up += len(records)
        arrivals = [_iso(r["dynamodb"].get("ApproximateCreationDateTime")) for r in records]
        message = {
            "version": "1.0",
            "timestamp": _iso(datetime.now(UTC)),
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"functionError": "Unhandled"} if function_error else {"statusCode": 200},
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": _sequence(records[0]),
                "endSequenceNumber": _sequence(records[-1]),
                "approximateArrivalOfFirstRecord": arrivals[0],
                "approximateArrivalOfLastRecord": arrivals[-1],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
            # dagcast's addition: which events they were (read them from the table, not the stream)
            "records": [_coordinates(r) for r in records],
        }
        self.on_failure.send(message)
        log.error(
            "fan-out gave up on %d stream record(s) after %d attempts (shard %s, from %s): %s",
            len(records),
            attempts,
            shard_id,
            _sequence(records[0]),
            json.dumps(message["records"])[:500],
        )


def _sequence(record: Record) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _coordinates(record: Record) -> dict[str, Any]:
    execution_id, seq = record_position(record)
    return {"sequenceNumber": _sequence(record), "executionId": execution_id, "seq": seq}


def _iso(value: Any) -> Any:
    """A record's arrival as the on-failure message writes it: boto3 gives a ``datetime``, a
    Lambda event (and ``MotoShardReader``) epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value
