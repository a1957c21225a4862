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
from ..domain.errors import AlreadyFinished, ExecutionNotFound, StartFailed, StopFailed
from ..domain.model import (
    FINISHED_TASK_STATUSES,
    SFN_ENDED_WITHOUT_FINALIZE,
    ExecutionStatus,
    FailurePolicy,
    Reason,
    SfnStatus,
    TaskStatus,
    cut_error,
    now_ms,
)
from ..persistence.eventlog import PROGRESS
from ..persistence.executions import INLINE_RESULT_CHARS
from ..persistence.keys import DEFAULT_SCOPE
from ..persistence.table import Item
from .attempt import AttemptRunner, retry_asked
from .ports import OrchestrationStore, StateMachine
from .release import Releaser
from .results import final_text
from .submission import (
    execution_fields,
    labels,
    new_execution_id,
    sink_ids,
    state_machine_input,
    task_items,
)
from .views import build_snapshot, result_url, terminal_event, timeout_source

log = logging.getLogger(__name__)

DEFAULT_CEILING_SECONDS = 86_400  # Settings.execution_ceiling_seconds' default
# The error AwaitDependencies ends with when its TimeoutSecondsPath (the execution's deadline) passes.
_AWAIT_TIMED_OUT = "States.Timeout"


class Orchestrator:
    def __init__(
        self,
        store: OrchestrationStore,
        state_machine: StateMachine,
        state_machine_arn: str,
        clock: Callable[[], int] = now_ms,
        event_preview_chars: int = ev.RESULT_PREVIEW_CHARS,
        ceiling_seconds: int = DEFAULT_CEILING_SECONDS,
    ) -> None:
        self._store = store
        self._preview_chars = event_preview_chars
        self._state_machine = state_machine
        self._arn = state_machine_arn
        self._ceiling = ceiling_seconds
        self._now = clock
        self._attempts = AttemptRunner(store, clock)
        self._releases = Releaser(store, state_machine)

    # ------------------------------------------------------------------ submission

    def submit(self, job: Job, execution_id: str | None = None, scope: str = DEFAULT_SCOPE) -> str:
        """Store the execution, then start the state machine; the execution's id.

        ``scope``: whose lists it joins (the tenant). If Step Functions refuses, the stored
        execution is finalized as failed (reason ``startFailed``) and StartFailed is raised."""
        execution_id = execution_id or new_execution_id()
        created = self._now()
        self._store.create_execution(
            execution_id,
            created_at=created,
            original_request=self._store.redactor.text(job.originalRequest),
            tasks=task_items(job, self._store.redactor.text),
            sink_ids=sink_ids(job),
            labels=labels(job, scope, self._store.redactor),
            **execution_fields(job, created, self._ceiling),
        )
        try:
            arn = self._state_machine.start_execution(
                self._arn, execution_id, state_machine_input(execution_id, job, self._ceiling)
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
        if err.get("Error") == _AWAIT_TIMED_OUT:
            # AwaitDependencies' TimeoutSecondsPath: the execution's deadline passed while the task
            # waited (its dependencies still running, or its token lost). Past the deadline no task
            # starts, so it is skipped as run_task would skip it.
            meta = self._store.get_meta(execution_id)
            self._store.set_stopping(execution_id, Reason.TIMEOUT)
            status, reason = TaskStatus.SKIPPED, Reason.TIMEOUT
            error = (
                f"not started: the execution timed out after {meta.get('timeoutSeconds')}s while it"
                f" waited for its dependencies ({timeout_source(meta)})"
            )
        else:
            status, reason = TaskStatus.FAILED, Reason.ERROR
            error = f"task runner failed: {err.get('Error', 'Error')}: {cause}".rstrip(": ")
        task = self._attempts.finish(execution_id, task_id, status, error=error, reason=reason)
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
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
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
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
        return {"executionId": execution_id, "status": ExecutionStatus.CANCELLED}

    def reconcile(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Step Functions ended an execution itself (timed out, aborted, failed outside Finalize),
        so Finalize may never have run: fail it (reason from the status), settle every unfinished
        task, write the terminal event. ``detail`` is an EventBridge "Step Functions Execution
        Status Change" detail. Idempotent: once the terminal event exists it changes nothing, so
        the ordinary ends (Finalize's own ``DagFailed``, a cancel) cost one query."""
        ours = detail.get("stateMachineArn") == self._arn
        if not ours or detail.get("status") not in SFN_ENDED_WITHOUT_FINALIZE:
            return {"reconciled": False}  # another stage's state machine, a child, or not an end
        execution_id = str(detail["name"])
        try:
            meta = self._store.get_meta(execution_id)
        except ExecutionNotFound:
            return {"reconciled": False}
        tail = self._store.last_event(execution_id)
        if tail is not None and tail.get("type") in ev.TERMINAL_TYPES:
            return {"executionId": execution_id, "status": meta["status"], "reconciled": False}
        if meta["status"] == ExecutionStatus.RUNNING:
            message, reason = _why_ended(SfnStatus(detail["status"]), detail, meta)
            now = self._now()
            self._store.finish_execution(
                execution_id,
                ExecutionStatus.FAILED,
                now,
                durationMs=now - int(meta["createdAt"]),
                error=message,
                reason=reason,
            )
            meta = self._store.get_meta(execution_id)
        if meta["status"] == ExecutionStatus.FAILED:  # a cancel settles nothing: its tasks show cancelled
            self._settle_tasks(execution_id, meta)
            meta = self._store.get_meta(execution_id)  # the counters the terminal event carries
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
        return {"executionId": execution_id, "status": meta["status"], "reconciled": True}

    def _settle_tasks(self, execution_id: str, meta: Item) -> None:
        """Give every unfinished task its final status: a running one failed, the others skipped,
        with the execution's reason; counted and announced once (sets, idempotency keys)."""
        reason = str(meta.get("reason", Reason.INTERNAL))
        for task in self._store.get_tasks(execution_id):
            if task["status"] in FINISHED_TASK_STATUSES:
                continue
            ran = task["status"] == TaskStatus.RUNNING
            status = TaskStatus.FAILED if ran else TaskStatus.SKIPPED
            error = f"{'ended' if ran else 'not started'}: {meta.get('error', 'the execution ended')}"
            done = self._attempts.finish(
                execution_id, int(task["taskId"]), status, error=error, reason=reason
            )
            if done["status"] in FINISHED_TASK_STATUSES:
                self._count_finished(execution_id, done, meta)

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
        # Read in pieces: the sinks' results together have no size limit.
        text = final_text(self._store, execution_id, [int(t) for t in meta["sinks"]])
        fields: dict[str, Any] = {"durationMs": now - int(meta["createdAt"]), "finalResultBytes": text.bytes}
        if text.chars <= INLINE_RESULT_CHARS:
            fields["finalResultJson"] = text.read(0, text.chars)
        else:
            fields["finalResultPreview"] = json.dumps(text.preview(result_url(execution_id)))
        self._store.finish_execution(execution_id, ExecutionStatus.COMPLETED, now, **fields)

    def _after_finished(self, execution_id: str, task: Item) -> None:
        """Counters, events, slots and releases for a finished task; safe to repeat."""
        if task["status"] not in FINISHED_TASK_STATUSES:
            return
        meta = self._store.get_meta(execution_id)
        self._count_finished(execution_id, task, meta)
        # Dependents are released before the progress event is written: it is not on their
        # critical path (its counters are read when it is written, so it is never stale).
        self._releases.release_dependents(execution_id, task, meta)
        self._store.append_event(execution_id, f"execution.updated#{task['taskId']}", PROGRESS, wait=False)

    def _count_finished(self, execution_id: str, task: Item, meta: Item) -> None:
        """The finished task's counters and its substep event."""
        if task["status"] == TaskStatus.COMPLETED:
            self._record_completed(execution_id, task)
        else:
            self._record_not_completed(execution_id, task, meta)

    def _record_completed(self, execution_id: str, task: Item) -> None:
        task_id = int(task["taskId"])
        self._store.record_task_done(execution_id, task_id, TaskStatus.COMPLETED)
        if "resultPreview" in task:  # cut at RESULT_PREVIEW_CHARS when stored; events may cut shorter
            shown = ev.cut_preview(json.loads(task["resultPreview"]), self._preview_chars)
        else:  # inline (≤ 32 KB), but events carry at most event_preview_chars of it
            shown = ev.preview(
                str(task["resultJson"]), result_url(execution_id, task_id), self._preview_chars
            )
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


def _why_ended(status: SfnStatus, detail: Mapping[str, Any], meta: Item) -> tuple[str, Reason]:
    """(message, reason) of an execution Step Functions ended without Finalize."""
    said = f"{detail.get('error') or ''}: {detail.get('cause') or ''}".strip(": ")
    if status == SfnStatus.TIMED_OUT:
        return (
            "Step Functions timed out the execution (the state machine's TimeoutSeconds) before it "
            f"finished; its deadline was {meta.get('timeoutSeconds')}s ({timeout_source(meta)})",
            Reason.TIMEOUT,
        )
    if status == SfnStatus.ABORTED:
        return "Step Functions stopped the execution" + (f": {said}" if said else ""), Reason.ABORTED
    return "the state machine failed outside Finalize" + (f": {said}" if said else ""), Reason.INTERNAL


def _why_failed(meta: Item, err: Mapping[str, Any] | None) -> tuple[str, str]:
    """(message, reason) of an execution that did not complete: the state machine's own error if
    it reported one, else its deadline, else the first task error."""
    if err:
        message = cut_error(f"{err.get('Error', 'Error')}: {err.get('Cause', '')}".rstrip(": "))
        return message, Reason.START_FAILED if err.get("Error") == StartFailed.__name__ else Reason.INTERNAL
    if meta.get("stopReason") == Reason.TIMEOUT:
        return (
            f"the execution timed out after {meta.get('timeoutSeconds')}s ({timeout_source(meta)})",
            Reason.TIMEOUT,
        )
    return str(meta.get("firstError", "not every task completed")), Reason.TASK_FAILED
