"""The execution repository: an execution's META item, its task items and their results.

``DynamoStore`` is what the rest of dagcast calls to keep an execution's state: create it, count
its tasks (number *sets*, ``ADD completed :ids``, so that a retried Lambda that records the same
task twice cannot count it twice), move tasks through their statuses with conditional updates,
hand out its concurrency slots, store large results in chunks. Its event log is an ``EventLog``
(``eventlog.py``); ``append_event`` and the log reads are passed on to it.

It decides no transition (the orchestration does) and builds no event body; a ``ClientError``
becomes a domain error here or in the ``EventLog``, nowhere above them. It is handed its boto3
client; it never creates one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from ..domain import events as ev
from ..domain.errors import ExecutionExists, ExecutionNotFound, StoreError
from ..domain.model import ExecutionStatus, cut_error
from ..domain.search import ListQuery
from ..redact import Redactor
from .activity import ActivityLog
from .capacity import ReadMeter, WriteMeter
from .eventlog import EventLog
from .eventwrites import Payload, Progress
from .expiry import Expiries, is_gone, with_expiry
from .idempotency import IdempotencyRecords
from .keys import (
    DEFAULT_SCOPE,
    LIST_SK,
    META_SK,
    REQUEST_SK,
    TASK_PREFIX,
    TTL_ATTRIBUTE,
    list_keys,
    pk,
    tag_list_item,
    task_sk,
)
from .listing import NO_LABELS, ExecutionList, Labels, with_request
from .partialtext import PartialText
from .removal import ExecutionRemoval
from .results import ResultStore
from .table import CallCounter, Item, from_item, to_item
from .taskwrites import (
    COMPLETED_IDS,
    FAILED_IDS,
    RUNNING_IDS,
    SKIPPED_IDS,
    TaskDone,
    counted_done,
    meta_key,
    meta_update,
    task_done,
    task_key,
    task_running,
    unfinished_task,
)
from .taskwrites import finish_task as finish_update
from .taskwrites import start_task as start_update

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

INLINE_RESULT_CHARS: Final = 32_768  # larger results go to RESULT# items

__all__ = ["COMPLETED_IDS", "FAILED_IDS", "RUNNING_IDS", "SKIPPED_IDS", "DynamoStore"]


class DynamoStore(ResultStore):
    """Executions, their tasks and results, and (through ``event_log``) their event logs."""

    def __init__(self, client: DynamoDBClient, table_name: str, redactor: Redactor | None = None) -> None:
        super().__init__(client, table_name)
        self.redactor = redactor or Redactor()
        self.expiries = Expiries(self.get_meta)
        self.event_log = EventLog(
            client, table_name, self.redactor, read_meta=self.get_meta, expiry=self.expiries.of
        )
        self.listing = ExecutionList(client, table_name)
        self.activity = ActivityLog(client, table_name)  # the tenants' activity logs (many-run streams)
        self.partial_text = PartialText(client, table_name)
        self.removal = ExecutionRemoval(client, table_name)
        self.idempotency = IdempotencyRecords(client, table_name)

    def meter_reads(self, meter: ReadMeter) -> None:
        """Count this store's reads and their RCU in ``meter`` (the SSE endpoint's stats)."""
        meter.attach(self._db)

    def meter_writes(self, meter: WriteMeter) -> None:
        """Count this store's writes and their WCU, table and indexes, in ``meter``."""
        meter.attach(self._db)

    def instrument(self) -> CallCounter:
        """Count this store's DynamoDB calls (benchmarks and /local/stats)."""
        counter = CallCounter()
        self._db.meta.events.register("before-call.dynamodb", counter)
        return counter

    # ------------------------------------------------------------------ executions

    def create_execution(
        self,
        execution_id: str,
        *,
        created_at: int,
        original_request: str,
        tasks: list[Item],
        sink_ids: list[int],
        seed: list[tuple[str, ev.Event]] | None = None,
        labels: Labels = NO_LABELS,
        **fields: Any,
    ) -> None:
        """Write the task items, the request and the tag lists' items, then the META item, then
        ``execution.created``.

        META goes last: until it exists the execution is invisible (404, and left out of every
        list), so a crash halfway leaves nothing a client can see. The request, the tags and the
        metadata are an item of their own (``REQUEST_SK``): META is updated twice per task, and
        DynamoDB charges each update for the whole item. Every item carries ``fields``' expiry
        (expiry.py). ``seed`` (a rerun's reused tasks): events written right after
        ``execution.created``, before META, so they precede anything a task writes.
        """
        expiry = fields.get(TTL_ATTRIBUTE)
        key = pk(execution_id)
        request = {"PK": key, "SK": REQUEST_SK, "originalRequest": original_request, **labels.fields()}
        listed = [tag_list_item(t, created_at, execution_id, labels.scope) for t in labels.tags]
        items = [{"PK": key, "SK": task_sk(t["taskId"]), **t} for t in tasks] + [request, *listed]
        self._batch_write([{"PutRequest": {"Item": to_item(with_expiry(i, expiry))}} for i in items])
        meta = {
            "PK": pk(execution_id),
            "SK": META_SK,
            "executionId": execution_id,
            "status": ExecutionStatus.RUNNING,
            "totalTasks": len(tasks),
            "createdAt": created_at,
            "sinks": sink_ids,
            **fields,
            # a tenant's executions are its own partitions of the list index (absent: ``default``)
            **list_keys(created_at, execution_id, labels.scope),
        }
        self.expiries.remember(execution_id, meta)
        created = ev.execution_created(len(tasks), original_request, list(labels.tags), labels.metadata())
        if seed:
            self.event_log.seed(execution_id, [(ev.EXECUTION_CREATED, created), *seed], created_at)
        written = self._put_if(Item=to_item(meta), ConditionExpression="attribute_not_exists(PK)")
        # Refused: someone else's execution, or our own write that landed, lost its answer and
        # was retried by botocore.
        if not written and not self._is_own_meta(execution_id, {**meta, "originalRequest": original_request}):
            raise ExecutionExists(f"execution {execution_id} already exists")
        if not seed:
            self.append_event(execution_id, ev.EXECUTION_CREATED, created, created_at)

    def _is_own_meta(self, execution_id: str, meta: Item) -> bool:
        try:
            stored = self.get_execution(execution_id)
        except ExecutionNotFound:
            return False
        return all(stored.get(k) == meta[k] for k in (LIST_SK, "originalRequest", "totalTasks"))

    def get_meta(self, execution_id: str) -> Item:
        out = self._db.get_item(TableName=self._table, Key=self._meta_key(execution_id), ConsistentRead=True)
        meta = from_item(out["Item"]) if "Item" in out else None
        if meta is None or is_gone(meta):  # past its expiry: gone as a whole, whatever TTL left
            raise ExecutionNotFound(execution_id)
        self.expiries.remember(execution_id, meta)
        return meta

    def execution_tenant(self, execution_id: str) -> str | None:
        """Whose the execution is (``default`` when META has no tenant); None when it is gone.
        Reads one attribute: META's counter sets are not paid for."""
        out = self._db.get_item(
            TableName=self._table, Key=self._meta_key(execution_id), ProjectionExpression="tenant"
        )
        return str(from_item(out["Item"]).get("tenant") or DEFAULT_SCOPE) if "Item" in out else None

    def get_execution(self, execution_id: str) -> Item:
        """META with ``originalRequest``: one consistent Query for both items (what views show;
        the orchestration's reads of META need no request, and ``get_meta`` reads none)."""
        items = {str(i["SK"]): i for i in self._query_partition(pk(execution_id), META_SK)}
        if META_SK not in items or is_gone(items[META_SK]):
            raise ExecutionNotFound(execution_id)
        return with_request(items[META_SK], items.get(REQUEST_SK))

    def list_executions(self, limit: int = 20, before: str | None = None) -> list[Item]:
        """The newest ``limit`` executions (created before the position ``before``), whole."""
        return self.listing.search(ListQuery(scope=DEFAULT_SCOPE), limit, before)[0]

    def set_execution_fields(self, execution_id: str, **fields: Any) -> None:
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        self._db.update_item(
            TableName=self._table,
            Key=self._meta_key(execution_id),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def finish_execution(self, execution_id: str, status: str, finished_at: int, **fields: Any) -> bool:
        """Move the execution from running to its final status; False if it was already final."""
        if "error" in fields:  # Step Functions' own causes among them: redacted, then cut, where written
            fields["error"] = cut_error(self.redactor.text(str(fields["error"])))
        names = {"#s": "status", "#fa": "finishedAt", **{f"#f{i}": k for i, k in enumerate(fields)}}
        values = {
            ":s": status,
            ":fa": finished_at,
            ":running": ExecutionStatus.RUNNING,
            **{f":v{i}": v for i, v in enumerate(fields.values())},
        }
        sets = ["#s = :s", "#fa = :fa", *(f"#f{i} = :v{i}" for i in range(len(fields)))]
        return (
            self._update_if(
                Key=self._meta_key(execution_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :running",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
            )
            is not None
        )

    def record_task_running(self, execution_id: str, task_id: int) -> None:
        """Count the task as running, unless it has already been counted as finished
        (``taskwrites.task_running``)."""
        self._update_if(**task_running(execution_id, task_id))

    def record_task_done(
        self, execution_id: str, task_id: int, status: str, error: str | None = None, stop: bool = False
    ) -> None:
        """Count a finished task (idempotently: the counters are sets of task ids).

        ``stop`` (a failFast failure): from now on no task starts (``stopping``)."""
        self._db.update_item(TableName=self._table, **task_done(execution_id, task_id, status, error, stop))

    def set_stopping(self, execution_id: str, reason: str) -> None:
        self._update_meta(
            execution_id,
            "SET stopping = :y, stopReason = if_not_exists(stopReason, :r)",
            {":y": True, ":r": reason},
        )

    # --- the per-execution concurrency limit: ``holding`` = tasks with a slot, ``queued`` = ready
    # tasks waiting for one. Both are sets, so every step is idempotent.

    def acquire_slot(self, execution_id: str, task_id: int, limit: int, from_queue: bool = False) -> bool:
        # Holding already counts as acquired: a retried call whose first answer was lost succeeds.
        free = "(attribute_not_exists(holding) OR size(holding) < :lim)"
        condition = f"contains(holding, :id) OR {free}"
        expression = "ADD holding :t"
        if from_queue:
            condition = f"contains(holding, :id) OR ({free} AND contains(queued, :id))"
            expression += " DELETE queued :t"
        return (
            self._update_if(
                Key=self._meta_key(execution_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item({":t": {task_id}, ":id": task_id, ":lim": limit}),
            )
            is not None
        )

    def queue_for_slot(self, execution_id: str, task_id: int) -> None:
        self._update_meta(execution_id, "ADD queued :t", {":t": {task_id}})

    def release_slot(self, execution_id: str, task_id: int) -> None:
        self._update_meta(execution_id, "DELETE holding :t", {":t": {task_id}})

    def _update_meta(self, execution_id: str, expression: str, values: dict[str, Any]) -> None:
        """Update META, reading nothing back: it holds every counter set, O(tasks) to return."""
        self._db.update_item(TableName=self._table, **meta_update(execution_id, expression, values))

    @staticmethod
    def _meta_key(execution_id: str) -> dict[str, Any]:
        return meta_key(execution_id)

    # ------------------------------------------------------------------ tasks

    def get_task(self, execution_id: str, task_id: int) -> Item:
        out = self._db.get_item(
            TableName=self._table, Key=self._task_key(execution_id, task_id), ConsistentRead=True
        )
        if "Item" not in out:
            raise StoreError(f"execution {execution_id} has no task {task_id}")
        return from_item(out["Item"])

    def get_task_and_meta(self, execution_id: str, task_id: int) -> tuple[Item, Item]:
        """The task and META in one consistent BatchGetItem (what a Run reads first)."""
        found = {str(i["SK"]): i for i in self._get_items(execution_id, [task_sk(task_id), META_SK])}
        meta = found.get(META_SK)
        if meta is None or is_gone(meta):
            raise ExecutionNotFound(execution_id)
        self.expiries.remember(execution_id, meta)
        if task_sk(task_id) not in found:
            raise StoreError(f"execution {execution_id} has no task {task_id}")
        return found[task_sk(task_id)], meta

    def get_tasks(self, execution_id: str) -> list[Item]:
        return list(self._query_prefix(execution_id, TASK_PREFIX))

    def get_results(self, execution_id: str, task_ids: Iterable[int]) -> dict[int, Any]:
        """Results of finished tasks (``resultJson`` decoded), keyed by task id."""
        out: dict[int, Any] = {}
        for task in self._get_items(execution_id, [task_sk(t) for t in task_ids]):
            text = self.result_json(execution_id, task)
            if text is not None:
                out[int(task["taskId"])] = json.loads(text)
        return out

    def _get_items(self, execution_id: str, sort_keys: list[str]) -> list[Item]:
        """Items of one execution by sort key (consistent); missing ones are left out."""
        keys = [to_item({"PK": pk(execution_id), "SK": sk}) for sk in sort_keys]
        return [from_item(i) for i in self._batch_get(keys)]

    def set_token(self, execution_id: str, task_id: int, token: str) -> Item:
        out = self._db.update_item(
            TableName=self._table,
            Key=self._task_key(execution_id, task_id),
            UpdateExpression="SET #t = :t",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#t": "token"},
            ExpressionAttributeValues=to_item({":t": token}),
            ReturnValues="ALL_NEW",
        )
        return from_item(out["Attributes"])

    def mark_dependency_done(self, execution_id: str, task_id: int, dependency: int, failed: bool) -> Item:
        expression = "ADD doneDeps :d, failedDeps :d" if failed else "ADD doneDeps :d"
        out = self._db.update_item(
            TableName=self._table,
            Key=self._task_key(execution_id, task_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=to_item({":d": {dependency}}),
            ReturnValues="ALL_NEW",
        )
        return from_item(out["Attributes"])

    def start_task(
        self, execution_id: str, task_id: int, attempt: int, started_at: int, token: str | None = None
    ) -> Item | None:
        """Start attempt ``attempt`` (keeping the first start time; ``token``: the one that released
        it, recorded as ``released``); None if the task has finished or is at another attempt (a
        stale duplicate invocation)."""
        return self._update_task(start_update(execution_id, task_id, attempt, started_at, token))

    def start_task_logged(
        self,
        execution_id: str,
        task_id: int,
        attempt: int,
        started_at: int,
        token: str | None,
        key: str,
        event: ev.Event,
    ) -> int | None:
        """``start_task``, ``record_task_running`` and the event that announces them, in one
        transaction; its seq, or None if nothing was written (then make them one by one)."""
        writes = [
            start_update(execution_id, task_id, attempt, started_at, token),
            task_running(execution_id, task_id),
        ]
        return self.event_log.append_with(execution_id, key, event, writes)

    def record_partial_text(
        self, execution_id: str, task_id: int, attempt: int, run: str, tail: str, length: int
    ) -> bool:
        """``PartialText.record``: False when this run may not write the attempt's progress."""
        return self.partial_text.record(execution_id, task_id, attempt, run, tail, length)

    def retry_task(self, execution_id: str, task_id: int, attempt: int, error: str) -> Item | None:
        """Attempt ``attempt`` failed and will be retried: running → retrying, attempt + 1."""
        return self._update_task(
            unfinished_task(
                execution_id,
                task_id,
                "SET #s = :retrying, #a = :next, lastError = :e",
                {"#s": "status", "#a": "attempt"},
                {":n": attempt, ":next": attempt + 1, ":e": error},
                "#s = :running AND #a = :n",
            )
        )

    def finish_task(
        self,
        execution_id: str,
        task_id: int,
        status: str,
        attempt: int | None = None,
        awaiting: bool = False,
        **fields: Any,
    ) -> Item | None:
        """An unfinished task → completed/failed/skipped/cancelled; None if it had finished (or, with
        ``attempt``, if it is at another attempt; with ``awaiting``, unless it awaits a decision)."""
        return self._update_task(finish_update(execution_id, task_id, status, attempt, fields, awaiting))

    def finish_task_logged(
        self, execution_id: str, task_id: int, done: TaskDone, key: str, event: ev.Event
    ) -> int | None:
        """``finish_task``, ``record_task_done`` and the event that announces them, in one
        transaction; its seq, or None if nothing was written (then make them one by one).
        ``execution.updated#<task>`` goes with it, written or queued in the same write."""
        writes = [
            finish_update(execution_id, task_id, done.status, done.attempt, done.fields),
            task_done(execution_id, task_id, done.status, done.error, done.stop),
        ]
        progress = Progress(
            f"execution.updated#{task_id}",
            functools.partial(counted_done, task_id=task_id, status=done.status),
        )
        return self.event_log.append_with(execution_id, key, event, writes, progress)

    def await_decision(
        self, execution_id: str, task_id: int, token: str, deadline: int, prompt: str
    ) -> Item | None:
        """An approval task parks on its decision token (stored, for the decision's sender); None if
        it has finished meanwhile (cancelled, timed out)."""
        return self._update_task(
            unfinished_task(
                execution_id,
                task_id,
                "SET #s = :awaiting, decisionToken = :t, prompt = :p,"
                " decisionDeadline = if_not_exists(decisionDeadline, :e)",
                {"#s": "status"},
                {":t": token, ":e": deadline, ":p": prompt},
                "#s IN (:waiting, :awaiting)",
            )
        )

    def _update_task(self, update: dict[str, Any]) -> Item | None:
        """A conditional update of a task; the task after it, or None if the condition failed."""
        out = self._update_if(**update, ReturnValues="ALL_NEW")
        return None if out is None else from_item(out["Attributes"])

    @staticmethod
    def _task_key(execution_id: str, task_id: int) -> dict[str, Any]:
        return task_key(execution_id, task_id)

    def _query_prefix(self, execution_id: str, prefix: str) -> Iterator[Item]:
        return self._query_partition(pk(execution_id), prefix)

    # ------------------------------------------------------------------ the event log

    def append_event(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> int | None:
        """``EventLog.append_event``: one event under an idempotency key; its seq (0 if refused)."""
        return self.event_log.append_event(execution_id, key, payload, timestamp, wait)

    def last_seq(self, execution_id: str) -> int:
        return self.event_log.last_seq(execution_id)

    def last_event(self, execution_id: str) -> Item | None:
        """The newest event item (``seq``, ``type``, ``data``), or None before the first."""
        return self.event_log.last_event(execution_id)

    def events_after(
        self, execution_id: str, after_seq: int, limit: int = 500, consistent: bool = True
    ) -> list[ev.Event]:
        """Events with seq > after_seq in order (at most ``limit``; ``EventLog.events_after``)."""
        return self.event_log.events_after(execution_id, after_seq, limit, consistent)
