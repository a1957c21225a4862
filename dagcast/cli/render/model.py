"""An execution's state as ``dagcast trace`` knows it: its SSE snapshot and events → ``TraceModel``.

Pure — events in, state out; no I/O and no clock (every time is passed in, in the server's
milliseconds since the epoch) — so a known event sequence always gives the same state. The views
(``live``, ``tables``) read it; ``follow`` applies the stream to it and takes the exit code from it.
Events are applied idempotently by ``seq``, so a replay after a reconnect changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_UPDATED,
    HEARTBEAT,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    SUBSTEP_PROGRESS,
    SUBSTEP_STARTED,
    SUBSTEP_WAITING,
    TERMINAL_TYPES,
)
from chalicelib.domain.model import (
    FINISHED_EXECUTION_STATUSES,
    FINISHED_TASK_STATUSES,
    ExecutionStatus,
    Reason,
    TaskStatus,
)

REPORTED_COUNTERS: Final = ("totalTasks", "completedTasks", "failedTasks", "skippedTasks", "runningTasks")


@dataclass
class TaskState:
    task_id: int
    description: str = ""
    action: str = ""
    dependencies: tuple[int, ...] = ()
    status: str = TaskStatus.WAITING  # a TaskStatus (a string, so one the CLI does not know shows as is)
    attempt: int = 1
    started_at: int | None = None  # the first attempt's start (ms)
    attempt_started_at: int | None = None  # the current attempt's start (ms)
    finished_at: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    reason: str | None = None  # a Reason: error | timeout | skipped | upstream | cancelled
    retry_at: int | None = None  # when the next attempt starts (retrying)
    upstream: tuple[int, ...] = ()
    has_result: bool = False
    result: Any = None
    result_truncated: bool = False
    result_url: str | None = None
    text: str = ""  # the running attempt's live text (substep.progress), placed by offset
    text_offset: int = 0  # where ``text`` starts in the attempt's text (a snapshot holds its end)
    prompt: str | None = None  # an approval task's question, once it awaits its decision

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_TASK_STATUSES


class Counters(NamedTuple):
    total: int
    completed: int
    failed: int
    skipped: int  # skipped and cancelled, as the API counts them
    running: int  # running and retrying
    waiting: int

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.skipped


@dataclass
class TraceModel:
    """An execution's state, from its SSE snapshot and events (applied idempotently by seq)."""

    execution_id: str = ""
    status: str = ""  # "" until the first snapshot or event; then an ExecutionStatus
    original_request: str = ""
    created_at: int | None = None
    finished_at: int | None = None
    duration_ms: int | None = None
    total: int = 0
    reported: dict[str, int] = field(default_factory=dict)  # the counters of the last execution.* event
    tasks: dict[int, TaskState] = field(default_factory=dict)
    structure_known: bool = False  # a snapshot gave every task and its dependencies
    seq: int = 0  # the last event applied
    has_final_result: bool = False
    final_result: Any = None
    final_truncated: bool = False
    final_bytes: int | None = None
    final_url: str | None = None
    error: str | None = None
    reason: str | None = None
    terminal_seen: bool = False
    last_heard: int | None = None  # server time (ms) of the last message, heartbeats included
    clock_offset: int | None = None  # local clock − server clock (ms), estimated from receipts
    connection: str = "connecting"  # connecting | live | reconnecting … | ended
    applied: int = 0
    ignored: int = 0

    # ---------------------------------------------------------------- applying events

    def apply(self, event: Mapping[str, Any], received_ms: int | None = None) -> bool:
        """Apply one SSE message; False if it changed nothing (a heartbeat, or a seq already seen)."""
        kind = str(event.get("type", ""))
        stamp = event.get("timestamp")
        if isinstance(stamp, int):
            self._heard(stamp, received_ms)
        if not self.execution_id and event.get("executionId"):
            self.execution_id = str(event["executionId"])
        if kind == HEARTBEAT:
            return False
        if event.get("snapshot"):
            self._apply_snapshot(event)
            self.applied += 1
            return True
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.seq:
            self.ignored += 1
            return False
        self.seq = seq
        self.applied += 1
        at = stamp if isinstance(stamp, int) else None
        if kind == EXECUTION_CREATED:
            self._apply_created(event, at)
        elif kind == SUBSTEP_STARTED:
            self._apply_started(self._task(event), event, at)
        elif kind == SUBSTEP_COMPLETED:
            self._apply_completed(self._task(event), event, at)
        elif kind == SUBSTEP_FAILED:
            self._apply_failed(self._task(event), event, at)
        elif kind == SUBSTEP_PROGRESS:
            _place_text(self._task(event), event)
        elif kind == SUBSTEP_WAITING:
            task = self._task(event)
            task.status, task.prompt = TaskStatus.AWAITING_DECISION, str(event.get("prompt", ""))
        elif kind == EXECUTION_UPDATED:
            self._report(event)
            self.status = str(event.get("status", self.status or ExecutionStatus.RUNNING))
        elif kind in TERMINAL_TYPES:
            self._apply_terminal(kind, event, at)
        return True

    def _heard(self, stamp: int, received_ms: int | None) -> None:
        # The smallest receipt delay seen is the best estimate of the clock offset: a message
        # is never received before it was sent, only later.
        if received_ms is not None:
            sample = received_ms - stamp
            self.clock_offset = sample if self.clock_offset is None else min(self.clock_offset, sample)
        self.last_heard = stamp if self.last_heard is None else max(self.last_heard, stamp)

    def _apply_created(self, event: Mapping[str, Any], at: int | None) -> None:
        self.total = int(event.get("totalTasks", self.total))
        self.original_request = str(event.get("originalRequest", self.original_request))
        if self.created_at is None:
            self.created_at = at
        self.status = self.status or ExecutionStatus.RUNNING

    def _apply_started(self, task: TaskState, event: Mapping[str, Any], at: int | None) -> None:
        task.status = TaskStatus.RUNNING
        task.attempt = int(event.get("attempt", task.attempt))
        task.attempt_started_at = at
        task.started_at = task.started_at if task.started_at is not None else at
        task.retry_at = None
        task.text, task.text_offset = "", 0  # a new attempt's text starts again
        self.status = self.status or ExecutionStatus.RUNNING

    def _apply_completed(self, task: TaskState, event: Mapping[str, Any], at: int | None) -> None:
        task.status = TaskStatus.COMPLETED
        task.attempt = int(event.get("attempt", task.attempt))
        task.finished_at = at
        task.duration_ms = _int(event.get("durationMs"))
        task.retry_at = None
        task.error = None
        _result_into(task, event)

    def _apply_failed(self, task: TaskState, event: Mapping[str, Any], at: int | None) -> None:
        reason = str(event.get("reason", Reason.ERROR))
        task.reason = reason
        task.error = str(event.get("error", ""))
        if "attempt" in event:
            task.attempt = int(event["attempt"])
        if event.get("willRetry"):
            task.status = TaskStatus.RETRYING
            wait = event.get("retryInSeconds")
            task.retry_at = (
                at + int(wait * 1000) if at is not None and isinstance(wait, int | float) else None
            )
            return
        task.retry_at = None
        task.finished_at = at
        task.duration_ms = _int(event.get("durationMs"))
        task.upstream = tuple(int(u) for u in event.get("upstreamTaskIds", ()))
        if reason == Reason.SKIPPED or (reason == Reason.TIMEOUT and task.error.startswith("not started")):
            task.status = TaskStatus.SKIPPED
        elif reason == Reason.CANCELLED:
            task.status = TaskStatus.CANCELLED
        else:  # error, timeout (it ran), upstream
            task.status = TaskStatus.FAILED

    def _apply_terminal(self, kind: str, event: Mapping[str, Any], at: int | None) -> None:
        self._report(event)
        self.terminal_seen = True
        completed = kind == EXECUTION_COMPLETED
        default = ExecutionStatus.COMPLETED if completed else ExecutionStatus.FAILED
        self.status = str(event.get("status", default))
        self.duration_ms = _int(event.get("durationMs"))
        self.finished_at = at
        if completed:
            self._final_result_from(event)
        else:
            self.error = event.get("error")
            self.reason = event.get("reason")

    def _apply_snapshot(self, snap: Mapping[str, Any]) -> None:
        seq = snap.get("seq")
        if isinstance(seq, int):
            self.seq = max(self.seq, seq)
        self.execution_id = str(snap.get("executionId", self.execution_id))
        self.status = str(snap.get("status", self.status))
        self.original_request = str(snap.get("originalRequest", self.original_request))
        self.created_at = _int(snap.get("createdAt")) or self.created_at
        self.finished_at = _int(snap.get("finishedAt"))
        self.duration_ms = _int(snap.get("durationMs"))
        self.error = snap.get("error")
        self.reason = snap.get("reason")
        self._report(snap)
        self._final_result_from(snap)
        if "tasks" in snap:
            self.tasks = {}
            for view in snap["tasks"]:
                task = task_from_view(view)
                self.tasks[task.task_id] = task
            self.structure_known = True
            self.total = max(self.total, len(self.tasks))

    def _report(self, event: Mapping[str, Any]) -> None:
        for key in REPORTED_COUNTERS:
            if isinstance(event.get(key), int):
                self.reported[key] = int(event[key])
        if "totalTasks" in self.reported:
            self.total = self.reported["totalTasks"]

    def _final_result_from(self, event: Mapping[str, Any]) -> None:
        if "finalResult" in event:
            self.has_final_result = True
            self.final_result = event["finalResult"]
            self.final_truncated = bool(event.get("finalResultTruncated"))
            self.final_bytes = _int(event.get("finalResultBytes"))
            self.final_url = event.get("finalResultUrl")

    def _task(self, event: Mapping[str, Any]) -> TaskState:
        task_id = int(event["taskId"])
        task = self.tasks.get(task_id)
        if task is None:  # no snapshot told us about it (dependencies unknown)
            task = self.tasks[task_id] = TaskState(task_id)
        if event.get("description") and not task.description:
            task.description = str(event["description"])
        return task

    # ---------------------------------------------------------------- reading the state

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_EXECUTION_STATUSES

    def counters(self) -> Counters:
        """From the tasks when every task is known, else from the last reported counters."""
        total = max(self.total, len(self.tasks))
        by = [t.status for t in self.tasks.values()]
        completed, failed = by.count(TaskStatus.COMPLETED), by.count(TaskStatus.FAILED)
        skipped = by.count(TaskStatus.SKIPPED) + by.count(TaskStatus.CANCELLED)
        running = by.count(TaskStatus.RUNNING) + by.count(TaskStatus.RETRYING)
        if self.tasks and len(self.tasks) >= total:
            return Counters(
                total, completed, failed, skipped, running, total - completed - failed - skipped - running
            )
        # Not every task is known (no snapshot): what the tasks seen say, or the last counters the
        # server reported if they say more; the tasks not seen yet are waiting.
        r = self.reported
        completed = max(r.get("completedTasks", 0), completed)
        failed = max(r.get("failedTasks", 0), failed)
        skipped = max(r.get("skippedTasks", 0), skipped)
        running = running if by else r.get("runningTasks", 0)
        waiting = max(0, total - completed - failed - skipped - running)
        return Counters(total, completed, failed, skipped, running, waiting)

    def levels(self) -> list[list[int]]:
        """Task ids by dependency level: 0 = no dependencies, n = 1 + the deepest dependency's level."""
        ids = sorted(self.tasks)
        deps = {t: [d for d in self.tasks[t].dependencies if d in self.tasks] for t in ids}
        children: dict[int, list[int]] = {t: [] for t in ids}
        pending = {t: len(set(deps[t])) for t in ids}
        for t in ids:
            for d in set(deps[t]):
                children[d].append(t)
        level = {t: 0 for t in ids if pending[t] == 0}
        queue = [t for t in ids if pending[t] == 0]
        for t in queue:  # Kahn: a task is placed once all its dependencies are
            for c in children[t]:
                level[c] = max(level.get(c, 0), level[t] + 1)
                pending[c] -= 1
                if pending[c] == 0:
                    queue.append(c)
        deepest = max(level.values(), default=-1)
        out: list[list[int]] = [[] for _ in range(deepest + 1)]
        for t in ids:
            if t in level and pending[t] == 0:
                out[level[t]].append(t)
        leftover = [t for t in ids if pending[t] != 0]  # only on a cycle, which jobs cannot have
        if leftover:
            out.append(leftover)
        return out

    def server_now(self, local_ms: int) -> int:
        """The server's clock now, by the offset seen on receipts (local clock if none yet)."""
        return local_ms - (self.clock_offset or 0)

    def exit_code(self) -> int:
        return 0 if self.status == ExecutionStatus.COMPLETED else 1


def task_from_view(view: Mapping[str, Any]) -> TaskState:
    """A task of the snapshot (GET /api/v1/dag-executions/{id}, the SSE snapshot)."""
    task = TaskState(
        task_id=int(view["taskId"]),
        description=str(view.get("description", "")),
        action=str(view.get("action", "")),
        dependencies=tuple(int(d) for d in view.get("dependencies", ())),
        status=str(view.get("status", TaskStatus.WAITING)),
        attempt=int(view.get("attempt", 1)),
        started_at=_int(view.get("startedAt")),
        finished_at=_int(view.get("finishedAt")),
        duration_ms=_int(view.get("durationMs")),
        error=view.get("error"),
        reason=view.get("reason"),
        upstream=tuple(int(u) for u in view.get("upstreamTaskIds", ())),
        prompt=view.get("prompt"),
    )
    task.attempt_started_at = task.started_at if task.attempt == 1 else None
    task.text, task.text_offset = str(view.get("text", "")), int(view.get("textOffset", 0))
    _result_into(task, view)
    return task


def _place_text(task: TaskState, event: Mapping[str, Any]) -> None:
    """A delta at its offset (UTF-16 units, counted here as characters: the CLI shows only the last
    line, where a misplaced surrogate pair would at worst shift a character)."""
    delta, offset = event.get("delta"), event.get("offset")
    if not isinstance(delta, str) or int(event.get("attempt", task.attempt)) != task.attempt:
        return
    at = int(offset) - task.text_offset if isinstance(offset, int) else len(task.text)
    if at < 0 or at > len(task.text):  # before what we hold, or after a gap: start again there
        task.text, task.text_offset = delta, int(offset or 0)
        return
    task.text = task.text[:at] + delta + task.text[at + len(delta) :]


def _result_into(task: TaskState, fields: Mapping[str, Any]) -> None:
    if "result" in fields:
        task.has_result = True
        task.result = fields["result"]
        task.result_truncated = bool(fields.get("resultTruncated"))
        task.result_url = fields.get("resultUrl")


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
