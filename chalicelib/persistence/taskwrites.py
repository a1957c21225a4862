"""The conditional updates of a task's transitions and of META's counters, as UpdateItem arguments.

Each is made either alone (``DynamoStore``'s ``start_task``, ``finish_task``, ``record_task_running``,
``record_task_done``) or inside the transaction that appends the event announcing it
(``EventLog.append_with``): one builder, so both ways write exactly the same thing.

It calls nothing: it only builds ``Key``, ``UpdateExpression``, ``ConditionExpression`` and the
expression's names and values (no ``TableName``, no ``ReturnValues``).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from ..domain.model import TaskStatus
from .keys import META_SK, pk, task_sk
from .table import to_item

Update = dict[str, Any]

# META's counters: number sets of task ids (their sizes are the counts events and views show).
COMPLETED_IDS: Final = "completed"
FAILED_IDS: Final = "failed"
SKIPPED_IDS: Final = "skipped"  # skipped and cancelled tasks
RUNNING_IDS: Final = "running"


class TaskDone(NamedTuple):
    """A task's finish: its status, the attempt it finishes (None: whichever), the fields it sets,
    and what META records: the error (for ``firstError``) and whether it stops the execution."""

    status: str
    attempt: int | None
    fields: dict[str, Any]
    error: str | None = None
    stop: bool = False


def meta_key(execution_id: str) -> dict[str, Any]:
    return to_item({"PK": pk(execution_id), "SK": META_SK})


def task_key(execution_id: str, task_id: int) -> dict[str, Any]:
    return to_item({"PK": pk(execution_id), "SK": task_sk(task_id)})


def unfinished_task(
    execution_id: str,
    task_id: int,
    expression: str,
    names: dict[str, str],
    values: dict[str, Any],
    extra_condition: str | None = None,
) -> Update:
    """``expression`` on the task, if it has not finished (and ``extra_condition`` holds)."""
    condition = "#s IN (:waiting, :running, :retrying, :awaiting)"
    if extra_condition:
        condition += f" AND {extra_condition}"
    values = {
        ":waiting": TaskStatus.WAITING,
        ":running": TaskStatus.RUNNING,
        ":retrying": TaskStatus.RETRYING,
        ":awaiting": TaskStatus.AWAITING_DECISION,
        **values,
    }
    return {
        "Key": task_key(execution_id, task_id),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item(values),
    }


def start_task(
    execution_id: str, task_id: int, attempt: int, started_at: int, token: str | None = None
) -> Update:
    """Attempt ``attempt`` running (the first start time kept), if it is the task's attempt.
    ``token``: the callback token that released it, recorded as ``released`` here rather than in
    a write of its own after the send (a later caller skips resending it; one that comes before
    the start resends it, which is harmless: the token is used)."""
    expression = "SET #s = :running, startedAt = if_not_exists(startedAt, :now), attemptStartedAt = :now"
    values: dict[str, Any] = {":now": started_at, ":n": attempt}
    if token is not None:
        expression += ", released = :tok"
        values[":tok"] = token
    return unfinished_task(
        execution_id, task_id, expression, {"#s": "status", "#a": "attempt"}, values, "#a = :n"
    )


def finish_task(
    execution_id: str,
    task_id: int,
    status: str,
    attempt: int | None,
    fields: dict[str, Any],
    awaiting: bool = False,
) -> Update:
    """An unfinished task → ``status`` with ``fields`` (with ``attempt``: only at that attempt; with
    ``awaiting``: only if it awaits a decision)."""
    names = {"#s": "status", **{f"#f{i}": k for i, k in enumerate(fields)}}
    values = {":s": status, **{f":v{i}": v for i, v in enumerate(fields.values())}}
    sets = ["#s = :s", *(f"#f{i} = :v{i}" for i in range(len(fields)))]
    extra = None
    if attempt is not None:
        names["#a"] = "attempt"
        values[":n"] = attempt
        extra = "#a = :n"
    if awaiting:  # a decision: exactly one of the POSTs (or the timeout) finishes the task
        extra = "#s = :awaiting"
    return unfinished_task(execution_id, task_id, "SET " + ", ".join(sets), names, values, extra)


def task_running(execution_id: str, task_id: int) -> Update:
    """Count the task as running, unless it has already been counted as finished: a duplicate
    run that started the attempt just before another run finished it must not put it back
    into ``running`` (it would stay there if that duplicate then died)."""
    return {
        "Key": meta_key(execution_id),
        "UpdateExpression": f"ADD {RUNNING_IDS} :t",
        "ConditionExpression": (
            f"attribute_exists(PK) AND NOT contains({COMPLETED_IDS}, :id)"
            f" AND NOT contains({FAILED_IDS}, :id) AND NOT contains({SKIPPED_IDS}, :id)"
        ),
        "ExpressionAttributeValues": to_item({":t": {task_id}, ":id": task_id}),
    }


def task_done(
    execution_id: str, task_id: int, status: str, error: str | None = None, stop: bool = False
) -> Update:
    """Count a finished task (a set: twice counts once); ``stop`` (a failFast failure): no task
    starts from now on."""
    if status == TaskStatus.COMPLETED:
        return meta_update(execution_id, f"ADD {COMPLETED_IDS} :t DELETE {RUNNING_IDS} :t", {":t": {task_id}})
    counter = _counter_of(status)
    expression = f"ADD {counter} :t DELETE {RUNNING_IDS} :t SET firstError = if_not_exists(firstError, :e)"
    values: dict[str, Any] = {":t": {task_id}, ":e": error or "task failed"}
    if stop:
        expression += ", stopping = :y"
        values[":y"] = True
    return meta_update(execution_id, expression, values)


def counted_done(meta: dict[str, Any], task_id: int, status: str) -> dict[str, Any]:
    """META's counter sets as ``task_done`` leaves them (what an ``execution.updated`` written in
    the same transaction shows)."""
    counter = COMPLETED_IDS if status == TaskStatus.COMPLETED else _counter_of(status)
    return {
        **meta,
        counter: set(meta.get(counter, ())) | {task_id},
        RUNNING_IDS: set(meta.get(RUNNING_IDS, ())) - {task_id},
    }


def _counter_of(status: str) -> str:
    return SKIPPED_IDS if status in (TaskStatus.SKIPPED, TaskStatus.CANCELLED) else FAILED_IDS


def meta_update(execution_id: str, expression: str, values: dict[str, Any]) -> Update:
    return {
        "Key": meta_key(execution_id),
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(PK)",
        "ExpressionAttributeValues": to_item(values),
    }
