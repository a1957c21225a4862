"""What a submitted job becomes: the execution's id, its task items, its META fields and the state
machine's input.

Pure: the engine writes what these return (Orchestrator.submit) and starts the state machine. The
job is already validated (chalicelib/domain/dag.py); nothing here checks it again.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from ..domain.dag import Job, decision_seconds, dependents_of, metadata_json, sinks, topological_order
from ..domain.model import TIMEOUT_FROM_CEILING, TaskStatus
from ..persistence.expiry import expires_at
from ..persistence.keys import TTL_ATTRIBUTE
from ..persistence.listing import Labels
from ..persistence.table import Item
from ..redact import Redactor

DEFAULT_RETENTION_DAYS = 30  # Settings.retention_days' default


def new_execution_id() -> str:
    return f"dag-exec_{uuid.uuid4().hex}"


def task_items(job: Job, redact: Callable[[str], str] = str) -> list[Item]:
    """One item per task, waiting at attempt 1, with its dependents (who to release when it ends).

    ``redact``: for the description, which events and views show. The params stay as given: the
    task runs with them (docs/security.md says what that leaves in the table)."""
    dependents = dependents_of(job)
    return [
        {
            "taskId": t.id,
            "description": redact(t.description),
            "action": t.action,
            "paramsJson": json.dumps(t.params, ensure_ascii=False),
            "dependencies": list(t.dependencies),
            "dependents": dependents[t.id],
            "status": TaskStatus.WAITING,
            "attempt": 1,
            "retriesJson": t.retry_policy.model_dump_json(),
            "timeoutSeconds": f"{t.timeoutSeconds:g}",
        }
        for t in job.tasks
    ]


def labels(job: Job, scope: str, redactor: Redactor) -> Labels:
    """The job's tags and metadata as stored. Metadata is the caller's free-form text, so it is
    redacted like the request (secret-looking keys and values); tags are kept as given: lists are
    keyed by them, and a redacted tag would find nothing (docs/jobs.md: no secrets in tags)."""
    meta = None if job.metadata is None else metadata_json(redactor.apply(job.metadata))
    return Labels(scope=scope, tags=tuple(job.tags), metadata_json=meta)


def execution_seconds(job: Job, ceiling_seconds: int) -> float:
    """How long the execution may run: the job's ``timeoutSeconds``, else the stage's ceiling, plus
    the time its approvals may wait for their decisions (dag.decision_seconds)."""
    base = job.timeoutSeconds if job.timeoutSeconds is not None else float(ceiling_seconds)
    return base + decision_seconds(job)


def execution_fields(
    job: Job, created_at: int, ceiling_seconds: int, retention_days: int = DEFAULT_RETENTION_DAYS
) -> dict[str, Any]:
    """The job's policies as META fields; the deadline is absolute, counted from ``created_at``.

    Every execution has one: a job without ``timeoutSeconds`` gets the stage's ceiling
    (``timeoutFrom`` says which, for the error messages). Its items expire ``retention_days``
    after it (``TTL_ATTRIBUTE``, persistence/expiry.py)."""
    fields: dict[str, Any] = {"failurePolicy": job.failurePolicy}
    if job.maxConcurrency is not None:
        fields["maxConcurrency"] = job.maxConcurrency
    seconds = execution_seconds(job, ceiling_seconds)
    fields["deadlineAt"] = created_at + int(seconds * 1000)
    fields["timeoutSeconds"] = f"{seconds:g}"
    if job.timeoutSeconds is None:
        fields["timeoutFrom"] = TIMEOUT_FROM_CEILING
    fields[TTL_ATTRIBUTE] = expires_at(fields["deadlineAt"], retention_days)
    return fields


def sink_ids(job: Job) -> list[int]:
    """The tasks whose results make the final result: the result task if the job names one."""
    return [job.resultTask] if job.resultTask is not None else sinks(job)


def state_machine_input(
    execution_id: str, job: Job, ceiling_seconds: int, done: frozenset[int] = frozenset()
) -> str:
    """The state machine's input: the Map runs one iteration per task, in topological order.

    ``done``: tasks stored as completed already (a rerun's reused tasks): the Map has no iteration
    for them, so nothing runs them; their dependents find them in ``doneDeps``.

    ``deadlineSeconds`` bounds each task's wait for its dependencies (AwaitDependencies'
    TimeoutSecondsPath, whole seconds): a child starts after the execution was created, so its wait
    ends at the deadline or later, never before (run_task decides what the deadline means)."""
    deadline = max(1, math.ceil(execution_seconds(job, ceiling_seconds)))
    return json.dumps(
        {
            "executionId": execution_id,
            "taskIds": [t for t in topological_order(job) if t not in done],
            "deadlineSeconds": deadline,
        }
    )
