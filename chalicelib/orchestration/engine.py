"""The Orchestrator: the steps the state machine's task Lambdas call (register, run,
record_failure, finalize) and the API's submit, cancel and snapshot.

The state machine (infra/statemachine/dag.asl.json) runs one Map iteration per task. Each
iteration first *waits* (``lambda:invoke.waitForTaskToken`` → ``register``) until the task's last
dependency has finished, then *runs* it (``run``). Whoever observes "token stored AND every
dependency done" — the registration or the finishing dependency — sends the token back
(release.py; no claim before the send, a second send of a used token is ignored), so a task
starts the moment its last dependency ends (exact DAG semantics, no waves).

Every step here is idempotent, because Step Functions and Lambda retry: task transitions are
conditional writes, counters are sets, events have idempotency keys. A retried step redoes its
remaining work and writes nothing twice.

Not here: running an attempt (attempt.py), releasing and slots (release.py), the shape of views
and terminal events (views.py), boto3 (the store and the Step Functions adapter, via ports.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..domain import events as ev
from ..domain.dag import Job
from ..domain.errors import AlreadyFinished, StartFailed, StopFailed
from ..domain.model import (
    FINISHED_TASK_STATUSES,
    ExecutionStatus,
    FailurePolicy,
    Reason,
    TaskStatus,
    now_ms,
)
from ..persistence.eventlog import PROGRESS
from ..persistence.executions import INLINE_RESULT_CHARS
from ..persistence.table import Item
from .attempt import AttemptRunner, retry_asked
from .ports import OrchestrationStore, StateMachine
from .release import Releaser
from .submission import execution_fields, new_execution_id, sink_ids, state_machine_input, task_items
from .views import build_snapshot, combine_sinks, result_url, terminal_event

log = logging.getLogger(__name__)


class Orchestrator:
    def __init__(
        self,
        store: OrchestrationStore,
        state_machine: StateMachine,
        state_machine_arn: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._state_machine = state_machine
        self._arn = state_machine_arn
        self._now = clock
        self._attempts = AttemptRunner(store, clock)
        self._releases = Releaser(store, state_machine)

    # ------------------------------------------------------------------ submission

    def submit(self, job: Job, execution_id: str | None = None) -> str:
        """Store the execution, then start the state machine; the execution's id.

        If Step Functions refuses, the stored execution is finalized as failed (reason
        ``startFailed``) and StartFailed is raised."""
        execution_id = execution_id or new_execution_id()
        created = self._now()
        self._store.create_execution(
            execution_id,
            created_at=created,
            original_request=job.originalRequest,
            tasks=task_items(job),
            sink_ids=sink_ids(job),
            **execution_fields(job, created),
        )
        try:
            arn = self._state_machine.start_execution(
                self._arn, execution_id, state_machine_input(execution_id, job)
            )
        except StartFailed as exc:
            error = {"Error": StartFailed.__name__, "Cause": str(exc)}
            self.finalize({"executionId": execution_id, "error": error})
            raise
        self._store.set_execution_fields(execution_id, stateMachineExecutionArn=arn)
        return execution_id

    # ------------------------------------------------------------------ state machine steps

    def register(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Wait state: store the callback token; release at once if every dependency is done."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        task = self._store.set_token(execution_id, task_id, str(event["token"]))
        self._releases.maybe_release(execution_id, task)
        return {"registered": True}

    def run(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Run state: run one attempt of the task and record its outcome.

        Returns ``status`` (a final status, or ``retry`` with ``attempt`` and ``waitSeconds`` for
        the state machine's Backoff/NextAttempt loop)."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        attempt = int(event.get("attempt", 1))
        task = self._store.get_task(execution_id, task_id)
        retry = retry_asked(task, attempt)
        if retry is not None:  # Step Functions ran this attempt's Run again after it asked for a retry
            return retry
        if task["status"] not in FINISHED_TASK_STATUSES and int(task.get("attempt", 1)) == attempt:
            meta = self._store.get_meta(execution_id)
            not_started = self._attempts.why_not_start(meta, task)
            if not_started is not None:
                status, reason, error = not_started
                upstream = sorted(task.get("failedDeps", ())) if reason == Reason.UPSTREAM else None
                task = self._attempts.finish(
                    execution_id, task_id, status, error=error, reason=reason, upstream=upstream
                )
            else:
                outcome = self._attempts.run(execution_id, task, attempt, meta)
                if outcome is not None:
                    return outcome
                task = self._store.get_task(execution_id, task_id)
                # Another invocation of this attempt (Lambda delivered it twice, or Step Functions
                # retried a Run that was still going) failed it with retries left while this one
                # ran it too: answer as it did. Returning the unfinished status instead would end
                # the task's branch (TaskDone) with the task `retrying` — never run again, its
                # dependents never released, the execution stuck for good.
                retry = retry_asked(task, attempt)
                if retry is not None:
                    return retry
        self._after_finished(execution_id, task)
        return {"taskId": task_id, "status": task["status"], "attempt": attempt, "waitSeconds": 0}

    def record_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Catch state: the task Lambda itself failed after its retries; fail the task cleanly."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        err = event.get("error") or {}
        cause = str(err.get("Cause", ""))
        with contextlib.suppress(ValueError, AttributeError):
            cause = str(json.loads(cause).get("errorMessage", cause))
        error = f"task runner failed: {err.get('Error', 'Error')}: {cause}".rstrip(": ")
        task = self._attempts.finish(
            execution_id, task_id, TaskStatus.FAILED, error=error, reason=Reason.ERROR
        )
        self._after_finished(execution_id, task)
        return {"taskId": task_id, "status": task["status"]}

    def finalize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Last state: write execution.completed or execution.failed (once)."""
        execution_id = str(event["executionId"])
        meta = self._store.get_meta(execution_id)
        if meta["status"] == ExecutionStatus.RUNNING:
            now = self._now()
            err = event.get("error")
            if err or not _all_completed(meta):
                message, reason = _why_failed(meta, err)
                self._store.finish_execution(
                    execution_id,
                    ExecutionStatus.FAILED,
                    now,
                    durationMs=now - int(meta["createdAt"]),
                    error=message,
                    reason=reason,
                )
            else:
                self._complete(execution_id, meta, now)
            meta = self._store.get_meta(execution_id)
        self._store.append_event(execution_id, "execution.terminal", terminal_event(meta))
        return {"executionId": execution_id, "status": meta["status"]}

    def cancel(self, execution_id: str) -> dict[str, Any]:
        """Stop the execution: ``execution.failed`` with status ``cancelled``. Idempotent; raises
        AlreadyFinished (→ 409) for an execution that completed or failed."""
        meta = self._store.get_meta(execution_id)
        if meta["status"] == ExecutionStatus.RUNNING:
            now = self._now()
            self._store.finish_execution(
                execution_id,
                ExecutionStatus.CANCELLED,
                now,
                durationMs=now - int(meta["createdAt"]),
                error="cancelled by request",
                reason=Reason.CANCELLED,
            )
            meta = self._store.get_meta(execution_id)
        if meta["status"] != ExecutionStatus.CANCELLED:
            raise AlreadyFinished(execution_id, str(meta["status"]))
        arn = meta.get("stateMachineExecutionArn")
        if arn:
            try:
                self._state_machine.stop_execution(str(arn), error="Cancelled", cause="cancelled by request")
            except StopFailed as exc:
                # Already stopped or gone, or the call failed: the execution is cancelled either
                # way, and every step the state machine still runs sees that and ends its task.
                log.info("%s", exc)
        self._store.append_event(execution_id, "execution.terminal", terminal_event(meta))
        return {"executionId": execution_id, "status": ExecutionStatus.CANCELLED}

    # ------------------------------------------------------------------ reads

    def snapshot(self, execution_id: str) -> dict[str, Any]:
        """The execution as one document: META, counters and every task (``seq`` = last event)."""
        seq = self._store.last_seq(execution_id)  # read before the state: state is never older
        meta = self._store.get_execution(execution_id)
        tasks = self._store.get_tasks(execution_id)
        return build_snapshot(meta, tasks, seq)

    # ------------------------------------------------------------------ internals

    def _complete(self, execution_id: str, meta: Item, now: int) -> None:
        """Finish the execution as completed with its final result (inline, or a preview)."""
        sinks = [int(t) for t in meta["sinks"]]
        final = combine_sinks(self._store.get_results(execution_id, sinks), sinks)
        text = json.dumps(final, ensure_ascii=False)
        fields: dict[str, Any] = {
            "durationMs": now - int(meta["createdAt"]),
            "finalResultBytes": len(text.encode()),
        }
        if len(text) <= INLINE_RESULT_CHARS:
            fields["finalResultJson"] = text
        else:
            fields["finalResultPreview"] = json.dumps(ev.preview(text, result_url(execution_id)))
        self._store.finish_execution(execution_id, ExecutionStatus.COMPLETED, now, **fields)

    def _after_finished(self, execution_id: str, task: Item) -> None:
        """Counters, events, slots and releases for a finished task; safe to repeat."""
        if task["status"] not in FINISHED_TASK_STATUSES:
            return
        meta = self._store.get_meta(execution_id)
        if task["status"] == TaskStatus.COMPLETED:
            self._record_completed(execution_id, task)
        else:
            self._record_not_completed(execution_id, task, meta)
        # Dependents are released before the progress event is written: it is not on their
        # critical path (its counters are read when it is written, so it is never stale).
        self._releases.release_dependents(execution_id, task, meta)
        self._store.append_event(execution_id, f"execution.updated#{task['taskId']}", PROGRESS, wait=False)

    def _record_completed(self, execution_id: str, task: Item) -> None:
        task_id = int(task["taskId"])
        self._store.record_task_done(execution_id, task_id, TaskStatus.COMPLETED)
        if "resultPreview" in task:
            shown = json.loads(task["resultPreview"])
        else:  # inline (≤ 32 KB), but events carry at most EVENT_RESULT_BYTES of it
            shown = ev.preview(str(task["resultJson"]), result_url(execution_id, task_id))
        self._store.append_event(
            execution_id,
            f"substep.completed#{task_id}",
            ev.substep_completed(task_id, int(task.get("durationMs", 0)), shown, int(task.get("attempt", 1))),
            wait=False,
        )

    def _record_not_completed(self, execution_id: str, task: Item, meta: Item) -> None:
        """A failed, skipped or cancelled task: counted, its error kept as the execution's
        firstError if there is none yet; under failFast a task that ran and failed stops the
        execution (no task starts after it)."""
        task_id, status = int(task["taskId"]), task["status"]
        error = str(task.get("error", "task failed"))
        reason = str(task.get("reason", Reason.ERROR))
        ran = reason in (Reason.ERROR, Reason.TIMEOUT)
        fail_fast = meta.get("failurePolicy", FailurePolicy.FAIL_FAST) == FailurePolicy.FAIL_FAST
        label = f"task {task_id}" + (f" ({task['description']})" if task.get("description") else "")
        self._store.record_task_done(
            execution_id,
            task_id,
            status,
            error=f"{label} failed: {error}",
            stop=ran and status == TaskStatus.FAILED and fail_fast,
        )
        self._store.append_event(
            execution_id,
            f"substep.failed#{task_id}",
            ev.substep_failed(
                task_id,
                error,
                task.get("durationMs"),
                task.get("upstreamTaskIds"),
                attempt=int(task.get("attempt", 1)) if ran else None,
                reason=reason,
            ),
            wait=False,
        )


def _all_completed(meta: Item) -> bool:
    return not (
        meta.get("failed") or meta.get("skipped") or len(meta.get("completed", ())) < int(meta["totalTasks"])
    )


def _why_failed(meta: Item, err: Mapping[str, Any] | None) -> tuple[str, str]:
    """(message, reason) of an execution that did not complete: the state machine's own error if
    it reported one, else its deadline, else the first task error."""
    if err:
        message = f"{err.get('Error', 'Error')}: {err.get('Cause', '')}".rstrip(": ")
        return message, Reason.START_FAILED if err.get("Error") == StartFailed.__name__ else Reason.INTERNAL
    if meta.get("stopReason") == Reason.TIMEOUT:
        return f"the execution timed out after {meta.get('timeoutSeconds')}s (timeoutSeconds)", Reason.TIMEOUT
    return str(meta.get("firstError", "not every task completed")), Reason.TASK_FAILED
