"""Event names, one model per event type, and the builders every producer makes events with.

Payload fields follow the system dagcast replaces (camelCase, ``subStepId`` as a string and
``taskId`` as a number). ``executionId``, ``timestamp`` and ``seq`` are added by the store when the
event is appended, because only the store knows the next sequence number.

Each model declares its fields in the order they go on the wire (``wire.WireModel``); a builder
returns the model's ``wire()`` dict, so the JSON stored and sent is what the model says
(tests/unit/test_events.py holds it byte for byte). docs/events.schema.json is generated from these
models (``make schema``); docs/compatibility.md says how they may change. How an event is framed
for SSE is ``wire``'s business.

Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import Discriminator, Tag, TypeAdapter

from .model import ExecutionStatus, FailurePolicy, Reason, TaskStatus
from .wire import SetByStore, Sometimes, WireModel


class EventType(StrEnum):
    EXECUTION_CREATED = "execution.created"
    EXECUTION_UPDATED = "execution.updated"
    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    SUBSTEP_STARTED = "substep.started"
    SUBSTEP_COMPLETED = "substep.completed"
    SUBSTEP_FAILED = "substep.failed"
    SUBSTEP_PROGRESS = "substep.progress"
    SUBSTEP_WAITING = "substep.waiting"
    HEARTBEAT = "heartbeat"


EXECUTION_CREATED: Final = EventType.EXECUTION_CREATED
EXECUTION_UPDATED: Final = EventType.EXECUTION_UPDATED
EXECUTION_COMPLETED: Final = EventType.EXECUTION_COMPLETED
EXECUTION_FAILED: Final = EventType.EXECUTION_FAILED
SUBSTEP_STARTED: Final = EventType.SUBSTEP_STARTED
SUBSTEP_COMPLETED: Final = EventType.SUBSTEP_COMPLETED
SUBSTEP_FAILED: Final = EventType.SUBSTEP_FAILED
SUBSTEP_PROGRESS: Final = EventType.SUBSTEP_PROGRESS
SUBSTEP_WAITING: Final = EventType.SUBSTEP_WAITING
HEARTBEAT: Final = EventType.HEARTBEAT

TERMINAL_TYPES: Final = frozenset({EXECUTION_COMPLETED, EXECUTION_FAILED})
ALL_TYPES: Final = tuple(EventType)

Event = dict[str, Any]
# ------------------------------------------------------------------------------------- the models


class ExecutionCreated(WireModel):
    """The job was accepted (always seq 1)."""

    type: Literal[EventType.EXECUTION_CREATED] = EventType.EXECUTION_CREATED
    totalTasks: int
    originalRequest: str
    tags: Sometimes[list[str]] = None  # the job's tags, when it has any
    metadata: Sometimes[dict[str, Any]] = None  # the job's metadata object, when it has one
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class SubstepStarted(WireModel):
    """An attempt of a task begins (1, 2, … with retries)."""

    type: Literal[EventType.SUBSTEP_STARTED] = EventType.SUBSTEP_STARTED
    subStepId: str
    taskId: int
    description: str
    attempt: int
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class SubstepCompleted(WireModel):
    """A task succeeded. A result whose JSON is too long is cut: ``result`` is the start of that JSON
    text, with ``resultTruncated``, ``resultBytes`` and ``resultUrl``."""

    type: Literal[EventType.SUBSTEP_COMPLETED] = EventType.SUBSTEP_COMPLETED
    subStepId: str
    taskId: int
    durationMs: int
    attempt: int
    result: Any
    resultTruncated: Sometimes[bool] = None
    resultBytes: Sometimes[int] = None
    resultUrl: Sometimes[str] = None
    # A rerun's task that completed in the execution it reruns: its result is that one, not run
    # again (written before any task of the rerun runs; ``durationMs`` and ``attempt`` are the
    # original's).
    reused: Sometimes[bool] = None
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class SubstepFailed(WireModel):
    """An attempt failed (``willRetry: true``, then ``retryInSeconds``), or the task failed or will
    never run (``willRetry: false``). ``attempt`` and ``durationMs`` when it ran."""

    type: Literal[EventType.SUBSTEP_FAILED] = EventType.SUBSTEP_FAILED
    subStepId: str
    taskId: int
    error: str
    reason: Reason
    willRetry: bool
    attempt: Sometimes[int] = None
    retryInSeconds: Sometimes[int] = None
    durationMs: Sometimes[int] = None
    upstreamTaskIds: Sometimes[list[int]] = None
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class Progress(WireModel):
    """How far a task says it is: ``done`` of ``total`` (either may be absent), and a message."""

    done: Sometimes[float] = None
    total: Sometimes[float] = None
    message: Sometimes[str] = None


class SubstepProgress(WireModel):
    """A running attempt's partial output: ``delta``, the text appended since its previous progress
    event, placed at ``offset`` (UTF-16 code units of the attempt's text before it, as JavaScript
    counts a string's length); and/or ``progress``. An attempt's deltas, concatenated, are the text
    of its result (redacted alike). Coalesced: a few per second per task (docs/events.md)."""

    type: Literal[EventType.SUBSTEP_PROGRESS] = EventType.SUBSTEP_PROGRESS
    subStepId: str
    taskId: int
    attempt: int
    delta: Sometimes[str] = None
    offset: Sometimes[int] = None
    progress: Sometimes[Progress] = None
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class SubstepWaiting(WireModel):
    """An approval task waits for a person's decision (``POST …/tasks/{taskId}/decision``) until
    ``decisionDeadline`` (epoch ms); its status is ``awaiting_decision``. ``prompt``: its params'
    prompt, its ``{{N}}`` references filled in."""

    type: Literal[EventType.SUBSTEP_WAITING] = EventType.SUBSTEP_WAITING
    subStepId: str
    taskId: int
    description: str
    prompt: str
    timeoutSeconds: int
    decisionDeadline: int
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class ExecutionUpdated(WireModel):
    """The counters, after every task that finishes (not after a retried attempt)."""

    type: Literal[EventType.EXECUTION_UPDATED] = EventType.EXECUTION_UPDATED
    status: ExecutionStatus
    totalTasks: int
    completedTasks: int
    failedTasks: int
    skippedTasks: int
    runningTasks: int
    waitingTasks: int
    snapshot: Sometimes[Literal[False]] = None  # never sent: only the snapshot carries it (true)
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class ExecutionCompleted(WireModel):
    """The last event of a successful run; a long final result is cut like ``substep.completed``'s."""

    type: Literal[EventType.EXECUTION_COMPLETED] = EventType.EXECUTION_COMPLETED
    status: Literal[ExecutionStatus.COMPLETED] = ExecutionStatus.COMPLETED
    completedTasks: int
    failedTasks: int
    totalTasks: int
    durationMs: int
    finalResult: Any
    finalResultTruncated: Sometimes[bool] = None
    finalResultBytes: Sometimes[int] = None
    finalResultUrl: Sometimes[str] = None
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


# Why an execution failed or was cancelled.
ExecutionFailureReason = Literal[
    Reason.TASK_FAILED,
    Reason.TIMEOUT,
    Reason.CANCELLED,
    Reason.START_FAILED,
    Reason.INTERNAL,
    Reason.ABORTED,
]


class ExecutionFailed(WireModel):
    """The last event of a failed or cancelled run."""

    type: Literal[EventType.EXECUTION_FAILED] = EventType.EXECUTION_FAILED
    status: Literal[ExecutionStatus.FAILED, ExecutionStatus.CANCELLED]
    reason: ExecutionFailureReason
    completedTasks: int
    failedTasks: int
    skippedTasks: int
    totalTasks: int
    durationMs: int
    error: str
    executionId: SetByStore[str] = None
    timestamp: SetByStore[int] = None
    seq: SetByStore[int] = None


class Heartbeat(WireModel):
    """The stream was idle for the heartbeat interval; never stored, so no ``seq`` (and no SSE id)."""

    type: Literal[EventType.HEARTBEAT] = EventType.HEARTBEAT
    executionId: str
    timestamp: int


class TaskView(WireModel):
    """A task as the snapshot and ``GET …/tasks`` show it."""

    taskId: int
    subStepId: str
    description: str
    action: str
    dependencies: list[int]
    status: TaskStatus
    attempt: Sometimes[int] = None
    startedAt: Sometimes[int] = None
    finishedAt: Sometimes[int] = None
    durationMs: Sometimes[int] = None
    error: Sometimes[str] = None
    reason: Sometimes[Reason] = None
    upstreamTaskIds: Sometimes[list[int]] = None
    prompt: Sometimes[str] = None  # an approval task's, once it waits for its decision
    decisionDeadline: Sometimes[int] = None  # when an approval task stops waiting (epoch ms)
    decision: Sometimes[dict[str, Any]] = None  # an approval task's, once decided
    reused: Sometimes[bool] = None  # a rerun's task that completed in the execution it reruns
    result: Any = None  # once completed (and it may be null)
    resultTruncated: Sometimes[bool] = None
    resultBytes: Sometimes[int] = None
    resultUrl: Sometimes[str] = None
    # A running attempt's text so far: its last SNAPSHOT_TEXT_CHARS at most (``textTruncated``),
    # starting at ``textOffset`` of ``textLength`` (UTF-16 code units, as ``substep.progress``).
    text: Sometimes[str] = None
    textOffset: Sometimes[int] = None
    textLength: Sometimes[int] = None
    textTruncated: Sometimes[bool] = None


class ExecutionSnapshot(WireModel):
    """The first message of a fresh SSE connection: the execution's view and every task, as of
    ``seq`` (also its SSE id). An ``execution.updated`` with ``snapshot: true``."""

    executionId: str
    status: ExecutionStatus
    originalRequest: str
    createdAt: int
    totalTasks: int
    completedTasks: int
    failedTasks: int
    skippedTasks: int
    runningTasks: int
    waitingTasks: int
    finishedAt: Sometimes[int] = None
    durationMs: Sometimes[int] = None
    error: Sometimes[str] = None
    reason: Sometimes[ExecutionFailureReason] = None
    failurePolicy: Sometimes[FailurePolicy] = None
    maxConcurrency: Sometimes[int] = None
    rerunOf: Sometimes[str] = None  # the execution this one reruns (POST …/{id}/rerun)
    finalResult: Any = None  # once completed (and it may be null)
    finalResultTruncated: Sometimes[bool] = None
    finalResultBytes: Sometimes[int] = None
    finalResultUrl: Sometimes[str] = None
    seq: int
    tasks: list[TaskView]
    type: Literal[EventType.EXECUTION_UPDATED] = EventType.EXECUTION_UPDATED
    snapshot: Literal[True] = True
    timestamp: int


def _kind(event: Any) -> str:
    """The union's tag: the type, and ``snapshot`` for the snapshot form of ``execution.updated``."""
    if isinstance(event, Mapping):
        kind, snapshot = event.get("type"), event.get("snapshot")
    else:
        kind, snapshot = getattr(event, "type", None), getattr(event, "snapshot", None)
    return "snapshot" if kind == EXECUTION_UPDATED and snapshot else str(kind)


AnyEvent = Annotated[
    Annotated[ExecutionCreated, Tag(EXECUTION_CREATED)]
    | Annotated[ExecutionUpdated, Tag(EXECUTION_UPDATED)]
    | Annotated[ExecutionSnapshot, Tag("snapshot")]
    | Annotated[ExecutionCompleted, Tag(EXECUTION_COMPLETED)]
    | Annotated[ExecutionFailed, Tag(EXECUTION_FAILED)]
    | Annotated[SubstepStarted, Tag(SUBSTEP_STARTED)]
    | Annotated[SubstepCompleted, Tag(SUBSTEP_COMPLETED)]
    | Annotated[SubstepFailed, Tag(SUBSTEP_FAILED)]
    | Annotated[SubstepProgress, Tag(SUBSTEP_PROGRESS)]
    | Annotated[SubstepWaiting, Tag(SUBSTEP_WAITING)]
    | Annotated[Heartbeat, Tag(HEARTBEAT)],
    Discriminator(_kind),
]
EVENTS: Final[TypeAdapter[AnyEvent]] = TypeAdapter(AnyEvent)


def parse_event(event: Mapping[str, Any]) -> WireModel:
    """The model of an event as stored or sent (pydantic's ValidationError when it is none)."""
    parsed: WireModel = EVENTS.validate_python(event)
    return parsed


# ----------------------------------------------------------------------------------- the builders


def execution_created(
    total_tasks: int,
    original_request: str,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Event:
    return ExecutionCreated(
        totalTasks=total_tasks, originalRequest=original_request, tags=tags or None, metadata=metadata
    ).wire()


def substep_started(task_id: int, description: str, attempt: int = 1) -> Event:
    return SubstepStarted(
        subStepId=str(task_id), taskId=task_id, description=description, attempt=attempt
    ).wire()


def substep_waiting(
    task_id: int, description: str, prompt: str, timeout_seconds: int, deadline: int
) -> Event:
    return SubstepWaiting(
        subStepId=str(task_id),
        taskId=task_id,
        description=description,
        prompt=prompt,
        timeoutSeconds=timeout_seconds,
        decisionDeadline=deadline,
    ).wire()


def substep_completed(
    task_id: int, duration_ms: int, result: Mapping[str, Any], attempt: int = 1, reused: bool = False
) -> Event:
    """``result``: the fields from ``preview`` (the result itself, or its truncated form);
    ``reused``: a rerun took it from the execution it reruns."""
    return SubstepCompleted(
        subStepId=str(task_id),
        taskId=task_id,
        durationMs=duration_ms,
        attempt=attempt,
        reused=True if reused else None,
        **result,
    ).wire()


def substep_failed(
    task_id: int,
    error: str,
    duration_ms: int | None = None,
    upstream: list[int] | None = None,
    *,
    attempt: int | None = None,
    reason: str | None = None,
    retry_in_seconds: int | None = None,
) -> Event:
    """``reason``: a ``Reason``; upstream when ``upstream`` lists tasks, else error by default. A
    failed attempt that will be retried carries ``willRetry: true`` and ``retryInSeconds``; the task
    is not failed yet."""
    return SubstepFailed(
        subStepId=str(task_id),
        taskId=task_id,
        error=error,
        reason=reason or (Reason.UPSTREAM if upstream else Reason.ERROR),
        willRetry=retry_in_seconds is not None,
        attempt=attempt,
        retryInSeconds=retry_in_seconds,
        durationMs=duration_ms,
        upstreamTaskIds=upstream or None,
    ).wire()


def substep_progress(
    task_id: int,
    attempt: int,
    delta: str | None = None,
    offset: int | None = None,
    progress: Mapping[str, Any] | None = None,
) -> Event:
    """``delta`` at ``offset`` and/or ``progress`` ({done, total, message})."""
    return SubstepProgress(
        subStepId=str(task_id),
        taskId=task_id,
        attempt=attempt,
        delta=delta,
        offset=offset if delta is not None else None,
        progress=Progress.model_validate(progress) if progress is not None else None,
    ).wire()


def counters(meta: Mapping[str, Any]) -> dict[str, int]:
    """The execution's counters from its META item (number sets of task ids)."""
    total = int(meta["totalTasks"])
    completed = len(meta.get("completed", ()))
    failed = len(meta.get("failed", ()))
    skipped = len(meta.get("skipped", ()))
    running = len(meta.get("running", ()))
    return {
        "totalTasks": total,
        "completedTasks": completed,
        "failedTasks": failed,
        "skippedTasks": skipped,
        "runningTasks": running,
        "waitingTasks": max(0, total - completed - failed - skipped - running),
    }


def execution_updated(meta: Mapping[str, Any]) -> Event:
    return ExecutionUpdated(status=meta["status"], **counters(meta)).wire()


def final_fields(preview_fields: Mapping[str, Any]) -> dict[str, Any]:
    """``preview`` fields named as an execution's final result: result → finalResult, …"""
    return {"final" + k[0].upper() + k[1:]: v for k, v in preview_fields.items()}


def execution_completed(meta: Mapping[str, Any], duration_ms: int, final_result: Mapping[str, Any]) -> Event:
    """``final_result``: ``preview`` fields, renamed finalResult…"""
    c = counters(meta)
    return ExecutionCompleted(
        completedTasks=c["completedTasks"],
        failedTasks=c["failedTasks"],
        totalTasks=c["totalTasks"],
        durationMs=duration_ms,
        **final_fields(final_result),
    ).wire()


def execution_failed(
    meta: Mapping[str, Any],
    duration_ms: int,
    error: str,
    status: str = ExecutionStatus.FAILED,
    reason: str = Reason.TASK_FAILED,
) -> Event:
    """``status``: failed | cancelled; ``reason``: see ``ExecutionFailureReason``."""
    c = counters(meta)
    return ExecutionFailed(
        status=status,
        reason=reason,
        completedTasks=c["completedTasks"],
        failedTasks=c["failedTasks"],
        skippedTasks=c["skippedTasks"],
        totalTasks=c["totalTasks"],
        durationMs=duration_ms,
        error=error,
    ).wire()


def heartbeat(execution_id: str, timestamp: int) -> Event:
    return Heartbeat(executionId=execution_id, timestamp=timestamp).wire()
