"""The DynamoDB stream consumer: every stored event passes through here.

For each event record (an INSERT of an ``EVT#`` item; everything else in the table is skipped):
1. note one delivery per matching webhook (chalicelib/webhooks/) for its lane, which sends it at
   once and writes it with its outcome, or writes it first when it cannot send at once — a lane
   that cannot write them fails its execution's records, so the stream brings them again; a bus
   that keeps refusing cannot cost webhooks (the lanes go also when records failed);
2. publish it to EventBridge when a bus is set (detail-type = event type); ``substep.progress``
   only when the stage turns it on (``DAGCAST_EVENT_BUS_PROGRESS``: it is many small events);
3. append it to its tenant's activity log when it is execution-level (persistence/activity.py:
   the many-run stream's source), except an ``execution.updated`` that a later record of the same
   execution in the batch makes stale (one write per execution per batch, not per task);
4. count it (EMF metrics).
A record whose work fails is reported in ``batchItemFailures`` (powertools BatchProcessor), and so
is every later record of the same execution in the batch, so the stream redelivers them in order;
the batch's other executions are processed. After the records — also when every one of them
failed — the webhook lanes they touched are sent right away (in parallel, each in order) within a
time budget; failures wait for the retry function. Every log line about a record carries its
``executionId`` and ``seq``.

Stream order is not relied on: DynamoDB Streams orders records per item, every event is its own
item, and a partition split puts one execution's events on two shards processed in parallel. So a
record only *triggers* its lanes; each lane reads the event log from its cursor
(webhooks/dispatcher.py), so order and completeness come from the log. EventBridge gets events in
the order records come (its consumers order by ``seq``), and the metrics count records, whatever
their order.

It does not decide how a lane is sent or retried (webhooks/dispatcher.py) nor how webhook items are
stored (webhooks/store.py), and it does not read the event log itself: the records carry the events.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from .domain import events as ev
from .domain.events import SUBSTEP_PROGRESS
from .domain.model import now_ms
from .persistence.activity import ActivityLog, Owner
from .persistence.keys import EVENT_PREFIX, event_position, is_event_sk, record_position
from .persistence.table import Item
from .tenants import DEFAULT_TENANT
from .webhooks.dispatcher import Dispatcher, Handed, LaneReport
from .webhooks.models import Hook, delivery_item
from .webhooks.store import WebhookStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from mypy_boto3_events.client import EventBridgeClient
else:
    EventBridgeClient = Any

logger = Logger(service="dagcast-fanout")
metrics = Metrics(namespace="dagcast", service="fanout")
EVENT_SOURCE = "dagcast"
MAX_DETAIL_BYTES = 200_000  # under EventBridge's 256 KB entry limit, with room for the envelope
MAX_CACHED_TENANTS = 10_000  # executions whose tenant the process remembers
# What the tenant's activity log (the many-run stream) holds: execution-level events only.
ACTIVITY_TYPES = frozenset(
    {ev.EXECUTION_CREATED, ev.EXECUTION_UPDATED, ev.EXECUTION_COMPLETED, ev.EXECUTION_FAILED}
)


class EarlierRecordFailed(RuntimeError):
    """A record of the same execution failed earlier in this batch; this one must wait for it."""


class MalformedRecord(ValueError):
    pass


def is_event_record(record: DynamoDBRecord) -> bool:
    keys = record.dynamodb.keys if record.dynamodb else None
    sk = (keys or {}).get("SK")
    return is_event_sk(sk)


def _position(record: DynamoDBRecord) -> tuple[str, int | str]:
    """(execution id, seq) from the item's keys — known even when its data is not an event."""
    keys = (record.dynamodb.keys if record.dynamodb else None) or {}
    sk = str(keys.get("SK", ""))
    execution_id, seq = event_position(str(keys.get("PK", "")), sk)
    odd_key = sk.removeprefix(EVENT_PREFIX)  # logged as it is when the key is not an event's
    return execution_id, odd_key if seq is None else seq


def stale_updates(records: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """(execution, seq) of the batch's ``execution.updated`` records followed, in the batch, by a
    later update or the end of the same execution: the activity log needs only the last."""
    later: set[str] = set()
    stale: set[tuple[str, int]] = set()
    for raw in reversed(records):
        image = (raw.get("dynamodb") or {}).get("NewImage") or {}
        kind = (image.get("type") or {}).get("S")
        if raw.get("eventName") != "INSERT" or kind not in ACTIVITY_TYPES or kind == ev.EXECUTION_CREATED:
            continue
        execution_id, seq = record_position(raw)
        if seq is None:
            continue
        if kind == ev.EXECUTION_UPDATED and execution_id in later:
            stale.add((execution_id, seq))
        later.add(execution_id)
    return stale


@dataclass
class _Batch:
    """One invocation's state: the webhooks, the executions that failed, the lanes touched."""

    hooks: list[Hook]
    failed: set[str] = field(default_factory=set)
    lanes: dict[tuple[str, str], Hook] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], list[Item]] = field(default_factory=dict)  # per lane, to write
    seqs: dict[str, set[int]] = field(default_factory=dict)  # per execution, the event records taken through
    stale: set[tuple[str, int]] = field(default_factory=set)  # updates not worth the activity log
    events: int = 0
    published: int = 0
    malformed: int = 0
    max_lag_ms: int = 0


class FanOut:
    def __init__(
        self,
        webhooks: WebhookStore | None,
        dispatcher: Dispatcher | None,
        eventbridge: EventBridgeClient | None,
        bus: str,
        inline_seconds: float,
        tenant_of: Callable[[str], str | None] = lambda execution_id: DEFAULT_TENANT,
        publish_progress: bool = False,
        activity: ActivityLog | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.activity = activity  # the tenants' activity logs (None: not written)
        self._owners: OrderedDict[str, Owner | None] = OrderedDict()  # execution → tenant and tags
        self.publish_progress = publish_progress  # substep.progress to EventBridge (a stage setting)
        self._tenant_of = tenant_of
        self._tenants: OrderedDict[str, str | None] = OrderedDict()  # execution → tenant: it never changes
        self.dispatcher = dispatcher
        self.eventbridge = eventbridge if bus else None
        self.bus = bus
        self.inline_seconds = inline_seconds

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # powertools' batch utility is imported by the one function that consumes the stream, not
        # by every function that builds the services (docs/operations.md § Cold starts)
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        started = time.time()
        batch = _Batch(self.webhooks.hooks() if self.webhooks else [])
        batch.stale = stale_updates(list(event.get("Records") or []))
        # When every record fails the answer must still list them all (the stream redelivers them),
        # and the deliveries written for them must still be sent: no raise for a failed batch.
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        response: dict[str, Any] = {}
        try:
            response = dict(
                process_partial_response(
                    event=event,
                    record_handler=lambda record: self._record(batch, record),
                    processor=processor,
                    context=context,
                )
            )
        finally:
            reports, unwritten = self._send_lanes(batch, started)
            # A lane that could not write its deliveries fails its execution's records: the stream
            # brings them again (a raise above fails the whole batch, and the count says so).
            response = fail_records_of(response, event, unwritten) if response else response
            failed = (
                len(response.get("batchItemFailures") or []) if response else len(event.get("Records") or [])
            )
            publish_metrics(batch, reports, failed)
        return response

    def _send_lanes(self, batch: _Batch, started: float) -> tuple[list[LaneReport], set[str]]:
        """The batch's lanes sent (each writes its deliveries first); the executions of lanes
        whose deliveries could not be written."""
        if not batch.lanes or self.dispatcher is None:
            return [], set()
        lanes = [(hook, execution_id) for (_, execution_id), hook in batch.lanes.items()]
        # An execution with a failed record had later ones held back: its lanes read the log
        # (which has them all) instead of stopping where the batch's records stopped.
        handed = {
            key: Handed(
                batch.deliveries.get(key, []),
                frozenset() if key[1] in batch.failed else frozenset(batch.seqs.get(key[1], ())),
            )
            for key in batch.lanes
        }
        reports = self.dispatcher.process(lanes, started + self.inline_seconds, handed)
        return reports, {
            execution_id for (_, execution_id), r in zip(lanes, reports, strict=True) if r.unwritten
        }

    def _record(self, batch: _Batch, record: DynamoDBRecord) -> dict[str, Any] | None:
        if not is_event_record(record) or record.event_name is None or record.event_name.name != "INSERT":
            return None
        execution_id, seq = _position(record)
        logger.thread_safe_append_keys(executionId=execution_id, seq=seq)
        try:
            if execution_id in batch.failed:
                logger.warning("event record held back behind a failed one of its execution")
                raise EarlierRecordFailed(f"an earlier event of {execution_id} failed in this batch")
            try:
                return self._fan_out(batch, record)
            except MalformedRecord as exc:
                # Retrying cannot mend it: say so loudly and let the others through.
                logger.error("malformed event record skipped", extra={"error": str(exc)})
                batch.malformed += 1
                return None
            except Exception as exc:
                batch.failed.add(execution_id)
                logger.error(
                    "event record failed; the stream delivers it again",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:1000]},
                    exc_info=True,
                )
                raise
        finally:
            logger.thread_safe_remove_keys(["executionId", "seq"])

    def _fan_out(self, batch: _Batch, record: DynamoDBRecord) -> dict[str, Any]:
        image = record.dynamodb.new_image if record.dynamodb else None
        try:
            body = str((image or {})["data"])
            event: dict[str, Any] = json.loads(body)
            execution_id, seq = str(event["executionId"]), int(event["seq"])  # both required
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedRecord(f"event record {record.event_id}: {type(exc).__name__}: {exc}") from None
        logger.debug("event", extra={"type": event.get("type")})
        # Deliveries first: they are idempotent, so a bus that keeps refusing cannot cost webhooks.
        # A webhook only ever gets its own tenant's events (an execution gone: nobody's).
        tenant = self.tenant(execution_id) if batch.hooks else None
        hooks = [h for h in batch.hooks if tenant is not None and h.matches(event, tenant)]
        if self.webhooks is not None:
            for h in hooks:  # written by the lane's own thread, first thing (dispatcher.process_lane)
                batch.lanes[(h.id, execution_id)] = h
                batch.deliveries.setdefault((h.id, execution_id), []).append(delivery_item(h, event, body))
            # matched against every webhook: a lane whose delivery is not among these does not take it
            batch.seqs.setdefault(execution_id, set()).add(seq)
        if self.eventbridge is not None and (self.publish_progress or event.get("type") != SUBSTEP_PROGRESS):
            self._publish(event, body)
            batch.published += 1
        self._log_activity(batch, event, body)
        # Counted once its work is done: a failed record is counted in RecordsFailed instead.
        batch.events += 1
        batch.max_lag_ms = max(batch.max_lag_ms, now_ms() - int(event.get("timestamp") or now_ms()))
        return event

    def _log_activity(self, batch: _Batch, event: dict[str, Any], body: str) -> None:
        kind, execution_id, seq = str(event.get("type")), str(event["executionId"]), int(event["seq"])
        if self.activity is None or kind not in ACTIVITY_TYPES or (execution_id, seq) in batch.stale:
            return
        owner = self._owner(execution_id)
        if owner is not None:  # an execution gone (deleted, expired) is nobody's activity
            self.activity.append(owner, kind, execution_id, seq, body)

    def _owner(self, execution_id: str) -> Owner | None:
        """The execution's tenant, tags and expiry, for the activity log and the webhooks' tenant
        check alike: read once per execution per process (they never change)."""
        assert self.activity is not None
        if execution_id not in self._owners:
            self._owners[execution_id] = self.activity.owner(execution_id)
            while len(self._owners) > MAX_CACHED_TENANTS:
                self._owners.popitem(last=False)
        return self._owners[execution_id]

    def tenant(self, execution_id: str) -> str | None:
        """The execution's tenant (None when it is gone): the activity log's owner read when the
        log is kept, else one attribute of META; once per execution per process."""
        if self.activity is not None:
            owner = self._owner(execution_id)
            return None if owner is None else owner.tenant
        if execution_id not in self._tenants:
            self._tenants[execution_id] = self._tenant_of(execution_id)
            while len(self._tenants) > MAX_CACHED_TENANTS:
                self._tenants.popitem(last=False)
        return self._tenants[execution_id]

    def _publish(self, event: dict[str, Any], body: str) -> None:
        assert self.eventbridge is not None
        if len(body.encode()) > MAX_DETAIL_BYTES:  # EventBridge takes 256 KB per entry: send a pointer
            pointer = {
                k: event[k] for k in ("type", "executionId", "seq", "timestamp", "taskId") if k in event
            }
            body = json.dumps({**pointer, "truncated": True})
        out = self.eventbridge.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": str(event.get("type")),
                    "Detail": body,
                    "EventBusName": self.bus,
                    "Resources": [],
                }
            ]
        )
        if out.get("FailedEntryCount"):
            entry = out["Entries"][0]
            raise RuntimeError(
                f"EventBridge refused event {event['executionId']}:{event['seq']}: "
                f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )


def fail_records_of(response: dict[str, Any], event: dict[str, Any], executions: set[str]) -> dict[str, Any]:
    """``response`` with every event record of ``executions`` in the batch added to its
    ``batchItemFailures`` (once each)."""
    if not executions:
        return response
    failures = list(response.get("batchItemFailures") or [])
    listed = {str(f.get("itemIdentifier")) for f in failures}
    for raw in event.get("Records") or []:
        execution_id, seq = record_position(raw)
        number = str((raw.get("dynamodb") or {}).get("SequenceNumber", ""))
        if seq is not None and execution_id in executions and number not in listed:
            failures.append({"itemIdentifier": number})
            listed.add(number)
    return {**response, "batchItemFailures": failures}


def publish_metrics(batch: _Batch, reports: Iterable[LaneReport], failed_records: int) -> None:
    """EMF metrics for one invocation (CloudWatch turns the log line into metrics)."""
    counts = {
        "EventsWritten": batch.events,
        "EventBridgePublished": batch.published,
        "RecordsFailed": failed_records,
        "MalformedEvents": batch.malformed,
    }
    publish_delivery_metrics(reports, counts, batch.max_lag_ms if batch.events else None)


def publish_delivery_metrics(
    reports: Iterable[LaneReport], counts: dict[str, int] | None = None, fanout_lag_ms: int | None = None
) -> None:
    """Webhook metrics of lanes sent by the stream handler or by the retry function."""
    counts = dict(counts or {})
    lags: list[int] = []
    for r in reports:
        counts["WebhooksDelivered"] = counts.get("WebhooksDelivered", 0) + len(r.lags_ms)
        counts["WebhookFailures"] = counts.get("WebhookFailures", 0) + r.failures
        counts["WebhookDeadLetters"] = counts.get("WebhookDeadLetters", 0) + r.dead
        lags += r.lags_ms
    record_metrics(counts, lags, fanout_lag_ms)


def record_metrics(counts: dict[str, int], delivery_lags_ms: list[int], fanout_lag_ms: int | None) -> None:
    if is_metrics_disabled():  # powertools keeps (and never flushes) what is added while disabled
        return
    added = False
    for name, value in counts.items():
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            added = True
    for lag in delivery_lags_ms[:100]:  # EMF takes at most 100 values per metric per line
        metrics.add_metric(name="WebhookDeliveryLag", unit=MetricUnit.Milliseconds, value=lag)
        added = True
    if fanout_lag_ms is not None:
        metrics.add_metric(name="FanoutLag", unit=MetricUnit.Milliseconds, value=fanout_lag_ms)
        added = True
    if added:
        metrics.flush_metrics()
