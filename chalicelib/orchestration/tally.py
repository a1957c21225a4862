"""What a finished task records: its counter on META (and, for a failure, the execution's
``firstError`` and, under failFast, ``stopping``) and its substep event (``substep.completed`` or
``substep.failed``), built from the task as finished.

``Tally.of`` says what to record; ``Tally.record`` records it with one call each, idempotently (a
set, an idempotency key), for a task someone finished before. The attempt runner records the same
thing *with* the finish, in one transaction (``AttemptRunner.finish``).

Not here: finishing the task (attempt.py), releasing its dependents (release.py).
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..domain import events as ev
from ..domain import previews
from ..domain.model import FailurePolicy, Reason, TaskStatus
from ..persistence.table import Item
from .ports import OrchestrationStore
from .views import result_url


class Counted(NamedTuple):
    """A finished task's record: META's part (``error`` for firstError, ``stop``) and its event."""

    error: str | None
    stop: bool
    key: str
    event: ev.Event


class Tally:
    def __init__(self, store: OrchestrationStore, preview_chars: int) -> None:
        self._store = store
        self._preview_chars = preview_chars

    def record(self, execution_id: str, task: Item, meta: Item) -> None:
        """The finished task's counter, then its substep event (a call each)."""
        counted = self.of(execution_id, task, meta)
        task_id, status = int(task["taskId"]), str(task["status"])
        self._store.record_task_done(execution_id, task_id, status, error=counted.error, stop=counted.stop)
        self._store.append_event(execution_id, counted.key, counted.event, wait=False)

    def of(self, execution_id: str, task: Item, meta: Item) -> Counted:
        """What the finished ``task`` records (``meta``: its failure policy)."""
        if task["status"] == TaskStatus.COMPLETED:
            return self._completed(execution_id, task)
        return self._not_completed(task, meta)

    def _completed(self, execution_id: str, task: Item) -> Counted:
        task_id = int(task["taskId"])
        if "resultPreview" in task:  # cut at RESULT_PREVIEW_CHARS when stored; events may cut shorter
            shown = previews.cut_preview(json.loads(task["resultPreview"]), self._preview_chars)
        else:  # inline (≤ 32 KB), but events carry at most event_preview_chars of it
            shown = previews.preview(
                str(task["resultJson"]), result_url(execution_id, task_id), self._preview_chars
            )
        event = ev.substep_completed(
            task_id, int(task.get("durationMs", 0)), shown, int(task.get("attempt", 1))
        )
        return Counted(None, False, f"substep.completed#{task_id}", event)

    def _not_completed(self, task: Item, meta: Item) -> Counted:
        """A failed, skipped or cancelled task: counted, its error kept as the execution's
        firstError if there is none yet; under failFast a task that ran and failed stops the
        execution (no task starts after it)."""
        task_id, status = int(task["taskId"]), task["status"]
        error = str(task.get("error", "task failed"))
        reason = str(task.get("reason", Reason.ERROR))
        ran = reason in (Reason.ERROR, Reason.TIMEOUT, Reason.REJECTED)  # a rejection is a failure
        fail_fast = meta.get("failurePolicy", FailurePolicy.FAIL_FAST) == FailurePolicy.FAIL_FAST
        label = f"task {task_id}" + (f" ({task['description']})" if task.get("description") else "")
        event = ev.substep_failed(
            task_id,
            error,
            task.get("durationMs"),
            task.get("upstreamTaskIds"),
            attempt=int(task.get("attempt", 1)) if ran else None,
            reason=reason,
        )
        stop = ran and status == TaskStatus.FAILED and fail_fast
        return Counted(f"{label} failed: {error}", stop, f"substep.failed#{task_id}", event)
