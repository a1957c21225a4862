"""The DynamoDB adapter: executions, tasks and the per-execution event log in one table.

Key layout (``PK`` / ``SK``, all strings)::

    EXEC#<id>  META             the execution: status, totals, counters as number sets
    EXEC#<id>  TASK#<taskId>    one task: status, dependencies, callback token, result or error
    EXEC#<id>  RESULT#<t>#<run>#<n>  one chunk of a large task result (``run``: the task's
                                resultRun, so that two runs of one attempt never mix chunks)
    EXEC#<id>  EVT#<seq>        one event, stored exactly as clients receive it (``data``)
    EXEC#<id>  EVT~Q#<ticket>   an event waiting in the append queue (under contention only)
    EXEC#<id>  KEY#<eventKey>   idempotency marker: the seq that event key was given
    QUEUE#<id> TICKET | LEASE   the append queue's counter, and who drains it right now

Events get ``seq`` 1, 2, 3… with no gap and no duplicate, without transactions (see
``append_event``). Counters are number *sets* (``ADD completed :ids``) so that a retried Lambda
that records the same task twice cannot count it twice.

The adapter is handed its boto3 client; it never creates one. ``ClientError`` becomes a domain
error here and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .domain import events as ev
from .domain.errors import AppendContention, ExecutionExists, ExecutionNotFound, StoreError
from .redact import Redactor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

Item = dict[str, Any]
EXECUTIONS_INDEX = "GSI1"
EXECUTIONS_PARTITION = "EXECUTIONS"
_SEQ_WIDTH = 12
_TASK_WIDTH = 16
_LEASE_MS = 10_000
_CHUNK_CHARS = 100_000  # per RESULT# item: well under 400 KB even for 4-byte UTF-8 characters
INLINE_RESULT_CHARS = 32_768  # larger results go to RESULT# items
PROGRESS = "progress"  # append_event payload: execution.updated with the counters at write time
QUEUED_PREFIX = "EVT~Q#"  # a queued event: sorts after every EVT# item, matches no EVT# prefix


def pk(execution_id: str) -> str:
    return f"EXEC#{execution_id}"


def task_sk(task_id: int) -> str:
    return f"TASK#{task_id:0{_TASK_WIDTH}d}"


def result_sk(task_id: int, chunk: int, run: str = "") -> str:
    """``run`` empty: the layout before results had a run id (still read)."""
    prefix = f"RESULT#{task_id:0{_TASK_WIDTH}d}#"
    return f"{prefix}{run}#{chunk:04d}" if run else f"{prefix}{chunk:04d}"


def event_sk(seq: int) -> str:
    return f"EVT#{seq:0{_SEQ_WIDTH}d}"


def event_position(pk_value: str, sk_value: str) -> tuple[str, int | None]:
    """(execution id, seq) from an item's keys, the inverse of ``pk`` and ``event_sk``; seq is None
    unless the sort key is ``EVT#`` and ASCII digits (str.isdigit() also takes '²', int() does not)."""
    raw = sk_value.removeprefix("EVT#")
    seq = int(raw) if sk_value.startswith("EVT#") and raw.isascii() and raw.isdigit() else None
    return pk_value.removeprefix("EXEC#"), seq


_ser = TypeSerializer()
_de = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None and v != set()}


def from_item(item: Mapping[str, Any]) -> Item:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _type_of(payload: ev.Event | str) -> str:
    return str(payload["type"]) if isinstance(payload, dict) else ev.EXECUTION_UPDATED


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ClientError ('' if it has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


class CallCounter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1


class Table:
    """One DynamoDB table through a low-level client, with the retrying batch helpers."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def _update_if(self, **kwargs: Any) -> dict[str, Any] | None:
        """UpdateItem with a ConditionExpression; its response, or None when the condition fails."""
        try:
            return dict(self._db.update_item(TableName=self._table, **kwargs))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise

    def _query_partition(self, partition: str, prefix: str = "") -> Iterator[Item]:
        """Every item of ``partition`` whose sort key starts with ``prefix`` (consistent, all pages)."""
        values = {":p": partition, ":s": prefix} if prefix else {":p": partition}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :s)" if prefix else "PK = :p",
            "ExpressionAttributeValues": to_item(values),
            "ConsistentRead": True,
        }
        while True:
            out = self._db.query(**kwargs)
            for item in out.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in out:
                return
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25 (DynamoDB's limit), retrying unprocessed items."""
        for start in range(0, len(requests), 25):
            pending: Any = {self._table: requests[start : start + 25]}
            for attempt in range(10):
                out = self._db.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StoreError("DynamoDB kept items unprocessed after 10 attempts")

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchGetItem (consistent) in chunks of 100, retrying unprocessed keys; raw items."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(10):
                out = self._db.batch_get_item(RequestItems=request)
                found += out.get("Responses", {}).get(self._table, [])
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StoreError(f"DynamoDB left {len(request[self._table]['Keys'])} keys unprocessed")
        return found


class DynamoStore(Table):
    def __init__(self, client: DynamoDBClient, table_name: str, redactor: Redactor | None = None) -> None:
        super().__init__(client, table_name)
        self.redactor = redactor or Redactor()

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
        **fields: Any,
    ) -> None:
        """Write the task items, then the META item, then ``execution.created``.

        META goes last: until it exists the execution is invisible (404), so a crash halfway
        leaves nothing a client can see.
        """
        for start in range(0, len(tasks), 25):
            requests = [
                {"PutRequest": {"Item": to_item({"PK": pk(execution_id), "SK": task_sk(t["taskId"]), **t})}}
                for t in tasks[start : start + 25]
            ]
            self._batch_write(requests)
        meta = {
            "PK": pk(execution_id),
            "SK": "META",
            "executionId": execution_id,
            "status": "running",
            "totalTasks": len(tasks),
            "originalRequest": original_request,
            "createdAt": created_at,
            "sinks": sink_ids,
            **fields,
            "GSI1PK": EXECUTIONS_PARTITION,
            "GSI1SK": f"{created_at:015d}#{execution_id}",
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_item(meta),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            if not self._is_own_meta(execution_id, meta):
                raise ExecutionExists(f"execution {execution_id} already exists") from exc
            # Our own write: it landed and its answer was lost, then botocore retried it.
        self.append_event(
            execution_id, ev.EXECUTION_CREATED, ev.execution_created(len(tasks), original_request), created_at
        )

    def _is_own_meta(self, execution_id: str, meta: Item) -> bool:
        try:
            stored = self.get_meta(execution_id)
        except ExecutionNotFound:
            return False
        return all(stored.get(k) == meta[k] for k in ("GSI1SK", "originalRequest", "totalTasks"))

    def get_meta(self, execution_id: str) -> Item:
        out = self._db.get_item(
            TableName=self._table, Key=to_item({"PK": pk(execution_id), "SK": "META"}), ConsistentRead=True
        )
        if "Item" not in out:
            raise ExecutionNotFound(execution_id)
        return from_item(out["Item"])

    def list_executions(self, limit: int = 20) -> list[Item]:
        out = self._db.query(
            TableName=self._table,
            IndexName=EXECUTIONS_INDEX,
            KeyConditionExpression="GSI1PK = :p",
            ExpressionAttributeValues=to_item({":p": EXECUTIONS_PARTITION}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_item(i) for i in out.get("Items", [])]

    def set_execution_fields(self, execution_id: str, **fields: Any) -> None:
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": pk(execution_id), "SK": "META"}),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def finish_execution(self, execution_id: str, status: str, finished_at: int, **fields: Any) -> bool:
        """Move the execution from running to its final status; False if it was already final."""
        names = {"#s": "status", "#fa": "finishedAt", **{f"#f{i}": k for i, k in enumerate(fields)}}
        values = {
            ":s": status,
            ":fa": finished_at,
            ":running": "running",
            **{f":v{i}": v for i, v in enumerate(fields.values())},
        }
        sets = ["#s = :s", "#fa = :fa", *(f"#f{i} = :v{i}" for i in range(len(fields)))]
        return (
            self._update_if(
                Key=to_item({"PK": pk(execution_id), "SK": "META"}),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :running",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
            )
            is not None
        )

    def record_task_running(self, execution_id: str, task_id: int) -> None:
        """Count the task as running, unless it has already been counted as finished: a duplicate
        run that started the attempt just before another run finished it must not put it back
        into ``running`` (it would stay there if that duplicate then died, and the counters in
        between would be wrong: ``waitingTasks`` going back up)."""
        self._update_if(
            Key=to_item({"PK": pk(execution_id), "SK": "META"}),
            UpdateExpression="ADD running :t",
            ConditionExpression=(
                "attribute_exists(PK) AND NOT contains(completed, :id) AND NOT contains(failed, :id)"
                " AND NOT contains(skipped, :id)"
            ),
            ExpressionAttributeValues=to_item({":t": {task_id}, ":id": task_id}),
        )

    def record_task_done(
        self, execution_id: str, task_id: int, status: str, error: str | None = None, stop: bool = False
    ) -> None:
        """Count a finished task (idempotently: the counters are sets of task ids).

        ``stop`` (a failFast failure): from now on no task starts (``stopping``)."""
        if status == "completed":
            self._update_meta(execution_id, "ADD completed :t DELETE running :t", {":t": {task_id}})
            return
        counter = "skipped" if status in ("skipped", "cancelled") else "failed"
        expression = f"ADD {counter} :t DELETE running :t SET firstError = if_not_exists(firstError, :e)"
        if stop:
            expression += ", stopping = :y"
        values: dict[str, Any] = {":t": {task_id}, ":e": error or "task failed"}
        if stop:
            values[":y"] = True
        self._update_meta(execution_id, expression, values)

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
                Key=to_item({"PK": pk(execution_id), "SK": "META"}),
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

    def _update_meta(self, execution_id: str, expression: str, values: Mapping[str, Any]) -> None:
        """Update META, reading nothing back: it holds every counter set, O(tasks) to return."""
        self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": pk(execution_id), "SK": "META"}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=to_item(values),
        )

    # ------------------------------------------------------------------ tasks

    def get_task(self, execution_id: str, task_id: int) -> Item:
        out = self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
            ConsistentRead=True,
        )
        if "Item" not in out:
            raise StoreError(f"execution {execution_id} has no task {task_id}")
        return from_item(out["Item"])

    def get_tasks(self, execution_id: str) -> list[Item]:
        return list(self._query_prefix(execution_id, "TASK#"))

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
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
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
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=to_item({":d": {dependency}}),
            ReturnValues="ALL_NEW",
        )
        return from_item(out["Attributes"])

    def mark_released(self, execution_id: str, task_id: int, token: str) -> None:
        """Remember which callback token was sent (so later callers skip a needless resend)."""
        self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
            UpdateExpression="SET released = :t",
            ExpressionAttributeValues=to_item({":t": token}),
        )

    def start_task(self, execution_id: str, task_id: int, attempt: int, started_at: int) -> Item | None:
        """Start attempt ``attempt`` (keeping the first start time); None if the task has finished
        or is at another attempt (a stale duplicate invocation)."""
        return self._update_unfinished_task(
            execution_id,
            task_id,
            "SET #s = :running, startedAt = if_not_exists(startedAt, :now), attemptStartedAt = :now",
            {"#s": "status", "#a": "attempt"},
            {":running": "running", ":now": started_at, ":n": attempt},
            "#a = :n",
        )

    def retry_task(self, execution_id: str, task_id: int, attempt: int, error: str) -> Item | None:
        """Attempt ``attempt`` failed and will be retried: running → retrying, attempt + 1."""
        return self._update_unfinished_task(
            execution_id,
            task_id,
            "SET #s = :retrying, #a = :next, lastError = :e",
            {"#s": "status", "#a": "attempt"},
            {
                ":retrying": "retrying",
                ":running": "running",
                ":n": attempt,
                ":next": attempt + 1,
                ":e": error,
            },
            "#s = :running AND #a = :n",
        )

    def finish_task(
        self, execution_id: str, task_id: int, status: str, attempt: int | None = None, **fields: Any
    ) -> Item | None:
        """An unfinished task → completed/failed/skipped/cancelled; None if it had finished (or, with
        ``attempt``, if it is at another attempt)."""
        names = {"#s": "status", **{f"#f{i}": k for i, k in enumerate(fields)}}
        values = {":s": status, **{f":v{i}": v for i, v in enumerate(fields.values())}}
        sets = ["#s = :s", *(f"#f{i} = :v{i}" for i in range(len(fields)))]
        extra = None
        if attempt is not None:
            names["#a"] = "attempt"
            values[":n"] = attempt
            extra = "#a = :n"
        return self._update_unfinished_task(
            execution_id, task_id, "SET " + ", ".join(sets), names, values, extra
        )

    def put_result_chunks(self, execution_id: str, task_id: int, text: str, run: str) -> int:
        """Store a large result as ``RESULT#<task>#<run>#<n>`` items (DynamoDB items stop at 400 KB);
        the task item's ``resultRun`` names the run whose chunks are the result."""
        chunks = [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]
        for n, chunk in enumerate(chunks):
            self._db.put_item(
                TableName=self._table,
                Item=to_item({"PK": pk(execution_id), "SK": result_sk(task_id, n, run), "data": chunk}),
            )
        return len(chunks)

    def delete_result_chunks(self, execution_id: str, task_id: int, run: str, chunks: int) -> None:
        """Delete a run's chunks that did not become the task's result."""
        self._batch_write(
            [
                {
                    "DeleteRequest": {
                        "Key": to_item({"PK": pk(execution_id), "SK": result_sk(task_id, n, run)})
                    }
                }
                for n in range(chunks)
            ]
        )

    def result_json(self, execution_id: str, task: Item) -> str | None:
        """The task's full result as JSON text (inline or chunked); None if it has none."""
        if "resultJson" in task:
            return str(task["resultJson"])
        chunks = int(task.get("resultChunks", 0))
        if not chunks:
            return None
        parts = []
        for n in range(chunks):
            out = self._db.get_item(
                TableName=self._table,
                Key=to_item(
                    {
                        "PK": pk(execution_id),
                        "SK": result_sk(int(task["taskId"]), n, str(task.get("resultRun", ""))),
                    }
                ),
                ConsistentRead=True,
            )
            parts.append(str(from_item(out["Item"])["data"]))
        return "".join(parts)

    def _update_unfinished_task(
        self,
        execution_id: str,
        task_id: int,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any],
        extra_condition: str | None = None,
    ) -> Item | None:
        """Apply ``expression`` if the task has not finished; None if it has."""
        condition = "#s IN (:waiting, :running, :retrying)"
        if extra_condition:
            condition += f" AND {extra_condition}"
        values = {":waiting": "waiting", ":running": "running", ":retrying": "retrying", **values}
        out = self._update_if(
            Key=to_item({"PK": pk(execution_id), "SK": task_sk(task_id)}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_NEW",
        )
        return None if out is None else from_item(out["Attributes"])

    # ------------------------------------------------------------------ events

    def append_event(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | Callable[[], ev.Event] | str,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> int | None:
        """Append one event under an idempotency ``key``; return its seq (0 if refused).

        Appending the same key twice returns the first seq and writes nothing. Without
        transactions this holds because of one invariant: *every event below the tail has a
        KEY# marker*. Each writer first writes the marker of the current tail (helping whoever
        wrote it), then conditionally puts ``EVT#<tail+1>``. So a key is already taken iff its
        marker exists or it is the tail's key.

        ``payload`` may be a callable, called after the tail is read: a payload built from state
        read *after* the tail is then monotonic in seq. ``PROGRESS`` stands for
        ``execution.updated`` with the counters read at write time.

        Nothing is appended after the terminal event (a cancelled execution's late task Lambdas
        are refused: 0 is returned).

        Under contention (many task Lambdas of one execution finishing at once) a writer whose
        put loses the race — or who finds events already queued — *queues* its event (``EVT~Q#``
        items, ordered by a per-execution ticket) and, if no one holds the execution's append
        lease, takes it and writes every queued event in queue order. Correctness never depends
        on the lease: every write goes through the same conditional put.

        Order: an append that returned (queued or written) comes before any append that starts
        after it, because a writer never puts directly while events are queued. So ``wait=False``
        may return as soon as the event is queued — ``None`` then, unless this writer drained
        it — and the event is still written before anything its writer does next. Someone always
        drains it: a lease holder looks at the queue again after releasing the lease. Only a
        holder that dies leaves the queue until its lease expires and the next append; so the
        last event of an execution (the terminal one) is appended with ``wait=True``, which waits
        for it to be written, taking over an expired lease.
        """
        seq = self._try_append(execution_id, key, payload, timestamp, 1, behind_queue=True)
        if seq is not None:
            return seq
        if callable(payload):
            payload = payload()
        # A queued event keeps the time it happened (progress events: when they are written).
        if timestamp is None and payload != PROGRESS:
            timestamp = ev.now_ms()
        self._enqueue(execution_id, key, payload, timestamp)
        written = self._drain_while_free(execution_id)
        if key in written:
            return written[key]
        if not wait:
            return None
        marker_key = to_item({"PK": pk(execution_id), "SK": f"KEY#{key}"})
        lease_key = to_item({"PK": f"QUEUE#{execution_id}", "SK": "LEASE"})
        pause = 0.05
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # One read per round: is our event written (its marker), and is anyone draining?
            found = {str(i["SK"]): i for i in map(from_item, self._batch_get([marker_key, lease_key]))}
            if f"KEY#{key}" in found:
                return int(found[f"KEY#{key}"]["seq"])
            lease = found.get("LEASE")
            if lease is None or "holder" not in lease or int(lease["expires"]) < time.time() * 1000:
                written = self._drain_while_free(execution_id)
                if key in written:
                    return written[key]
                continue
            # Someone is draining (our event too): wait, backing off so waiters do not crowd the table.
            time.sleep(random.uniform(pause, 2 * pause))
            pause = min(1.0, pause * 1.5)
        raise AppendContention(f"could not append {key!r} to {execution_id}")

    def _try_append(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | Callable[[], ev.Event] | str,
        timestamp: int | None,
        attempts: int,
        behind_queue: bool = False,
    ) -> int | None:
        """The conditional-put protocol; the seq, or None after ``attempts`` lost races.

        ``behind_queue``: give up (None) if events are queued — they go first.
        """
        marker_key = to_item({"PK": pk(execution_id), "SK": f"KEY#{key}"})
        for _ in range(attempts):
            # Tail first, marker second: if our key is below the tail we read, its marker was
            # written before that tail event, so the (consistent) marker read must see it.
            tail = self._top(execution_id) if behind_queue else self._tail(execution_id)
            if tail is not None and str(tail["SK"]).startswith(QUEUED_PREFIX):
                return None
            n = 0
            if tail is not None:
                n = int(tail["seq"])
                if tail["idemKey"] == key:
                    return n
                marker = self._db.get_item(TableName=self._table, Key=marker_key, ConsistentRead=True)
                if "Item" in marker:
                    return int(from_item(marker["Item"])["seq"])
                if tail["type"] in ev.TERMINAL_TYPES:
                    return 0  # nothing after the terminal event
                self._db.put_item(
                    TableName=self._table,
                    Item=to_item({"PK": pk(execution_id), "SK": f"KEY#{tail['idemKey']}", "seq": n}),
                )
            seq = self._put_event(execution_id, key, payload, timestamp, n + 1)
            if seq is not None:
                return seq
        return None

    def _put_event(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | Callable[[], ev.Event] | str,
        timestamp: int | None,
        seq: int,
    ) -> int | None:
        """Put ``EVT#<seq>`` if that seq is free; ``seq``, or None if another writer has it."""
        if payload == PROGRESS:
            body = ev.execution_updated(self.get_meta(execution_id))
        elif callable(payload):
            body = dict(payload())
        else:
            assert isinstance(payload, dict)
            body = dict(payload)
        # Secrets never reach the log: redacted here, before the event is stored.
        body = self.redactor.apply(body)
        body["executionId"] = execution_id
        body["timestamp"] = timestamp if timestamp is not None else ev.now_ms()
        body["seq"] = seq
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_item(
                    {
                        "PK": pk(execution_id),
                        "SK": event_sk(seq),
                        "seq": seq,
                        "type": body["type"],
                        "idemKey": key,
                        "data": ev.dumps(body),
                    }
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        return seq

    # The append queue: EVT~Q#<ticket> items in the execution's partition, sorting just after its
    # EVT# items, so that one query (``_top``) tells a writer the tail *and* whether anything is
    # queued. Tickets come from an atomic counter: queue order is the order appends began in.

    def _enqueue(self, execution_id: str, key: str, payload: ev.Event | str, timestamp: int | None) -> None:
        out = self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": f"QUEUE#{execution_id}", "SK": "TICKET"}),
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues=to_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        ticket = int(from_item(out["Attributes"])["n"])
        item = {
            "PK": pk(execution_id),
            "SK": f"{QUEUED_PREFIX}{ticket:0{_SEQ_WIDTH}d}",
            "idemKey": key,
            "payload": payload if isinstance(payload, str) else ev.dumps(dict(payload)),
            "timestamp": timestamp,
        }
        self._db.put_item(TableName=self._table, Item=to_item(item))

    def _queued(self, execution_id: str, limit: int) -> list[Item]:
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND begins_with(SK, :q)",
            ExpressionAttributeValues=to_item({":p": pk(execution_id), ":q": QUEUED_PREFIX}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(i) for i in out.get("Items", [])]

    def _drain_while_free(self, execution_id: str) -> dict[str, int]:
        """Drain the queue while no one else holds the lease; the seqs this caller wrote, by key.

        After releasing the lease the holder looks at the queue once more: an event queued by a
        writer that found the lease taken is then either seen here or by the next holder."""
        written: dict[str, int] = {}
        while True:
            holder = self._acquire_lease(execution_id)
            if holder is None:
                return written
            try:
                written.update(self._drain(execution_id, holder))
            finally:
                self._release_lease(execution_id, holder)
            if not self._queued(execution_id, 1):
                return written

    def _acquire_lease(self, execution_id: str) -> str | None:
        holder = uuid.uuid4().hex
        now = int(time.time() * 1000)
        acquired = self._update_if(
            Key=to_item({"PK": f"QUEUE#{execution_id}", "SK": "LEASE"}),
            UpdateExpression="SET holder = :h, expires = :e",
            ConditionExpression="attribute_not_exists(holder) OR expires < :now",
            ExpressionAttributeValues=to_item({":h": holder, ":e": now + _LEASE_MS, ":now": now}),
        )
        return holder if acquired is not None else None

    def _renew_lease(self, execution_id: str, holder: str) -> float | None:
        """Extend our lease; the time (time.time()) until which it is ours, or None if it is not."""
        until = time.time() + _LEASE_MS / 1000
        renewed = self._update_if(
            Key=to_item({"PK": f"QUEUE#{execution_id}", "SK": "LEASE"}),
            UpdateExpression="SET expires = :e",
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=to_item({":h": holder, ":e": int(until * 1000)}),
        )
        return until if renewed is not None else None

    def _release_lease(self, execution_id: str, holder: str) -> None:
        with contextlib.suppress(ClientError):  # lost the lease meanwhile: nothing to release
            self._db.delete_item(
                TableName=self._table,
                Key=to_item({"PK": f"QUEUE#{execution_id}", "SK": "LEASE"}),
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=to_item({":h": holder}),
            )

    def _drain(self, execution_id: str, holder: str) -> dict[str, int]:
        """Append queued events in queue order, mark and dequeue them; their seqs by key.

        A chunk of up to 100 queued events costs about one call per event: one BatchGetItem for
        the markers of the whole chunk, one conditional put per event (the tail is known: we
        just wrote it), then the chunk's markers and its dequeue in batches of 25. Until its
        markers are written, the chunk's events below the tail are unmarked — harmless, because
        direct writers do not write while the chunk is queued (they see it, ``_top``), and no
        other drainer runs while our lease lasts: it is renewed before each chunk, and a chunk
        stops 3 s before the lease would run out. A put that loses a race (a direct writer that
        looked before the chunk was queued) falls back to the full protocol for that event.
        """
        written: dict[str, int] = {}
        tail: Item | None = None
        while True:
            lease_until = self._renew_lease(execution_id, holder)
            if lease_until is None:
                return written
            items = self._queued(execution_id, 100)
            if not items:
                return written
            # Tail first, markers second (as in _try_append): an event below the tail we read was
            # marked before that tail was written, so the marker read sees it.
            if tail is None:
                tail = self._marked_tail(execution_id)
            keys = {str(i["idemKey"]) for i in items}
            marked = {
                str(m["SK"])[4:]: int(m["seq"])
                for m in map(
                    from_item,
                    self._batch_get(
                        [to_item({"PK": pk(execution_id), "SK": f"KEY#{k}"}) for k in sorted(keys)]
                    ),
                )
            }
            if tail is not None:  # the tail itself may be one of ours (a put whose answer was lost)
                marked.setdefault(str(tail["idemKey"]), int(tail["seq"]))
            done: list[Item] = []  # queue items handled (a prefix of ``items``)
            chunk: dict[str, int] = {}  # key → seq, to mark
            i = 0
            while i < len(items) and time.time() < lease_until - 3:
                item = items[i]
                raw = str(item["payload"])
                payload: ev.Event | str = raw if raw == PROGRESS else json.loads(raw)
                # A run of queued progress events becomes one: each would read the same counters
                # now (every task they stand for recorded its counters before queueing).
                run = [item]
                while raw == PROGRESS and i + 1 < len(items) and items[i + 1]["payload"] == PROGRESS:
                    i += 1
                    run.append(items[i])
                i += 1
                key = str(item["idemKey"])
                seq = self._append_known(
                    execution_id, key, payload, item.get("timestamp"), tail, marked, chunk
                )
                if seq is None:  # lost a race: mark what we wrote, then the full protocol
                    self._put_markers(execution_id, chunk)
                    marked.update(chunk)
                    chunk = {}
                    seq = self._try_append(execution_id, key, payload, item.get("timestamp"), 50)
                    while seq is None:
                        seq = self._try_append(execution_id, key, payload, item.get("timestamp"), 50)
                    tail = self._marked_tail(execution_id)
                    if tail is not None:
                        marked.setdefault(str(tail["idemKey"]), int(tail["seq"]))
                elif seq and seq == (int(tail["seq"]) + 1 if tail else 1):
                    tail = {"seq": seq, "idemKey": key, "type": _type_of(payload)}
                for r in run:
                    chunk[str(r["idemKey"])] = seq
                done += run
            # The writers waiting for these keys read their markers (seq 0: refused, after the end).
            self._put_markers(execution_id, chunk)
            written.update(chunk)
            self._batch_write(
                [{"DeleteRequest": {"Key": to_item({"PK": d["PK"], "SK": d["SK"]})}} for d in done]
            )
            if len(done) < len(items):  # the lease is running out: let the caller release it
                return written

    def _marked_tail(self, execution_id: str) -> Item | None:
        """The tail, read from the table, with its marker written (helping its writer): every
        event we put above it then leaves it marked, as the invariant requires."""
        tail = self._tail(execution_id)
        if tail is not None:
            self._put_markers(execution_id, {str(tail["idemKey"]): int(tail["seq"])})
        return tail

    def _append_known(
        self,
        execution_id: str,
        key: str,
        payload: ev.Event | str,
        timestamp: int | None,
        tail: Item | None,
        marked: Mapping[str, int],
        chunk: Mapping[str, int],
    ) -> int | None:
        """One event of a drained chunk, the tail and the markers known: its seq, 0 if refused,
        None if another writer took the next seq first."""
        if key in chunk:
            return chunk[key]
        if key in marked:
            return marked[key]
        if tail is not None and tail["idemKey"] == key:
            return int(tail["seq"])
        if tail is not None and tail["type"] in ev.TERMINAL_TYPES:
            return 0
        n = int(tail["seq"]) if tail is not None else 0
        return self._put_event(execution_id, key, payload, timestamp, n + 1)

    def _put_markers(self, execution_id: str, seqs: Mapping[str, int]) -> None:
        self._batch_write(
            [
                {"PutRequest": {"Item": to_item({"PK": pk(execution_id), "SK": f"KEY#{k}", "seq": seq})}}
                for k, seq in seqs.items()
            ]
        )

    def _top(self, execution_id: str) -> Item | None:
        """The last queued event if any (EVT~Q#), else the tail event (EVT#), else None."""
        return self._last_between(execution_id, "EVT#", QUEUED_PREFIX + "9" * _SEQ_WIDTH)

    def _tail(self, execution_id: str) -> Item | None:
        return self._last_between(execution_id, "EVT#", "EVT#" + "9" * _SEQ_WIDTH)

    def _last_between(self, execution_id: str, lo: str, hi: str) -> Item | None:
        """The execution's item with the greatest sort key in [lo, hi] (consistent), or None."""
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_item({":p": pk(execution_id), ":lo": lo, ":hi": hi}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = out.get("Items", [])
        return from_item(items[0]) if items else None

    def last_seq(self, execution_id: str) -> int:
        tail = self._tail(execution_id)
        return int(tail["seq"]) if tail else 0

    def last_event(self, execution_id: str) -> Item | None:
        """The newest event item (``seq``, ``type``, ``data``), or None before the first."""
        return self._tail(execution_id)

    def events_after(self, execution_id: str, after_seq: int, limit: int = 500) -> list[ev.Event]:
        """Events with seq > after_seq in order (at most ``limit``)."""
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_item(
                {":p": pk(execution_id), ":lo": event_sk(after_seq + 1), ":hi": "EVT#" + "9" * _SEQ_WIDTH}
            ),
            ConsistentRead=True,
            Limit=limit,
        )
        return [json.loads(from_item(i)["data"]) for i in out.get("Items", [])]

    def _query_prefix(self, execution_id: str, prefix: str) -> Iterator[Item]:
        return self._query_partition(pk(execution_id), prefix)


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; template.yaml declares the same table for AWS (a test compares them)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "GSI1PK", "AttributeType": "S"},
            {"AttributeName": "GSI1SK", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": EXECUTIONS_INDEX,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    }
