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
from ..domain import previews
from ..domain.dag import Job
from ..domain.errors import (
    AlreadyDecided,
    AlreadyFinished,
    ExecutionNotFound,
    ExecutionRunning,
    NothingToRerun,
    StartFailed,
    StopFailed,
)
from ..domain.model import (
    APPROVAL_ACTION,
    FINISHED_TASK_STATUSES,
    SFN_ENDED_WITHOUT_FINALIZE,
    ExecutionStatus,
    Reason,
    SfnStatus,
    TaskStatus,
    now_ms,
)
from ..persistence.eventlog import PROGRESS
from ..persistence.executions import INLINE_RESULT_CHARS
from ..persistence.keys import TTL_ATTRIBUTE
from ..persistence.table import Item
from ..tenants import DEFAULT_TENANT, Tenants
from . import rerun as reruns
from .attempt import AttemptRunner, retry_asked
from .decisions import DECISION_TIMED_OUT, Decision, Decisions
from .outcome import all_completed, why_ended, why_failed
from .ports import OrchestrationStore, StateMachine
from .release import Releaser, tenant_of
from .results import final_text
from .submission import (
    DEFAULT_RETENTION_DAYS,
    execution_fields,
    labels,
    new_execution_id,
    sink_ids,
    state_machine_input,
    task_items,
)
from .tally import Tally
from .tenancy import Freed, Tenancy, TenantQuotaStore
from .views import build_snapshot, result_url, task_view, terminal_event, timeout_source

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
        event_preview_chars: int = previews.RESULT_PREVIEW_CHARS,
        ceiling_seconds: int = DEFAULT_CEILING_SECONDS,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        quotas: TenantQuotaStore | None = None,
        tenants: Tenants | None = None,
    ) -> None:
        self._store = store
        self._preview_chars = event_preview_chars
        self._state_machine = state_machine
        self._arn = state_machine_arn
        self._ceiling = ceiling_seconds
        self._retention_days = retention_days
        self._now = clock
        self._tally = Tally(store, event_preview_chars)
        self._attempts = AttemptRunner(store, clock, self._tally)
        self._releases = Releaser(
            store, state_machine, quotas, lambda t: self._tenancy.tenants.policy(t).maxRunningTasks
        )
        self._tenancy = Tenancy(quotas, tenants or Tenants(), self._releases)
        self._decisions = Decisions(store, clock)

    @property
    def tenants(self) -> Tenants:
        """The stage's tenant policies: their quotas and capabilities."""
        return self._tenancy.tenants

    @tenants.setter
    def tenants(self, tenants: Tenants) -> None:
        self._tenancy.tenants = tenants

    @property
    def quotas(self) -> TenantQuotaStore | None:
        """Where the tenants' counts are kept (None: no quotas)."""
        return self._tenancy.quotas

    # ------------------------------------------------------------------ submission

    def submit(self, job: Job, execution_id: str | None = None, tenant: str = DEFAULT_TENANT) -> str:
        """Store the execution (``tenant``'s), then start the state machine; the execution's id.

        QuotaExceeded when the tenant is at its submits per second or running executions (nothing
        stored). If Step Functions refuses, the stored execution is finalized as failed (reason
        ``startFailed``) and StartFailed is raised."""
        return self._start(job, execution_id or new_execution_id(), tenant=tenant)

    def rerun(self, source_id: str, forced: frozenset[int] = frozenset()) -> str:
        """A new execution of ``source_id``'s job that reuses what completed there (rerun.py);
        ExecutionRunning while it runs, NothingToRerun when nothing would run again."""
        meta = self._store.get_execution(source_id)
        if meta["status"] == ExecutionStatus.RUNNING:
            raise ExecutionRunning(source_id, "rerun it")
        plan = reruns.plan(source_id, meta, self._store.get_tasks(source_id), forced)
        if len(plan.reused) == len(plan.job.tasks):
            raise NothingToRerun(source_id)
        # the rerun is the original's tenant's (the API lets only the owner ask for it)
        return self._start(plan.job, new_execution_id(), plan, tenant=tenant_of(meta))

    def _start(
        self, job: Job, execution_id: str, plan: reruns.Rerun | None = None, tenant: str = DEFAULT_TENANT
    ) -> str:
        created = self._now()
        fields = execution_fields(job, created, self._ceiling, self._retention_days)
        tasks = task_items(job, self._store.redactor.text)
        seed = None
        if plan is not None:
            tasks = reruns.rerun_items(plan, tasks, execution_id)
            for task_id in plan.reused:  # large results: their chunks, copied before META exists
                if plan.reused[task_id].get("resultChunks"):
                    self._store.copy_result_chunks(
                        plan.source_id, execution_id, plan.reused[task_id], fields[TTL_ATTRIBUTE]
                    )
            seed = reruns.reused_events(plan, tasks, execution_id, self._preview_chars)
            fields.update(rerunOf=plan.source_id, completed=set(plan.reused))
        if tenant != DEFAULT_TENANT:
            fields["tenant"] = tenant
        self._tenancy.admit(tenant, execution_id, created)
        try:
            self._store.create_execution(
                execution_id,
                created_at=created,
                original_request=self._store.redactor.text(job.originalRequest),
                tasks=tasks,
                sink_ids=sink_ids(job),
                seed=seed,
                labels=labels(job, tenant, self._store.redactor),
                **fields,
            )
        except BaseException:
            self._tenancy.ended(tenant, execution_id)
            raise
        done = frozenset(plan.reused) if plan is not None else frozenset()
        try:
            arn = self._state_machine.start_execution(
                self._arn, execution_id, state_machine_input(execution_id, job, self._ceiling, done)
            )
        except StartFailed as exc:
            error = {"Error": StartFailed.__name__, "Cause": str(exc)}
            self._finalize({"executionId": execution_id, "error": error})
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
        if "decisionToken" in event:  # AwaitDecision: an approval task parks on its decision
            return self._decisions.park(execution_id, task_id, str(event["decisionToken"]))
        attempt = int(event.get("attempt", 1))
        task, meta = self._store.get_task_and_meta(execution_id, task_id)
        retry = retry_asked(task, attempt)
        if retry is not None:  # Step Functions ran this attempt's Run again after it asked for a retry
            return retry
        counted = progressed = False
        if task["status"] not in FINISHED_TASK_STATUSES and int(task.get("attempt", 1)) == attempt:
            not_started = self._attempts.why_not_start(meta, task)
            if not_started is not None:
                status, reason, error = not_started
                upstream = sorted(task.get("failedDeps", ())) if reason == Reason.UPSTREAM else None
                task, counted, progressed = self._attempts.finish(
                    execution_id,
                    task_id,
                    status,
                    upstream,
                    started=task,
                    meta=meta,
                    error=error,
                    reason=reason,
                )
            elif task["action"] == APPROVAL_ACTION:
                return self._decisions.wait_outcome(meta, task)
            else:
                outcome = self._attempts.run(execution_id, task, attempt, meta)
                if isinstance(outcome, dict):
                    return outcome
                if outcome is not None and outcome.counted:  # finished, counted and announced at once
                    task, counted, progressed = outcome
                else:
                    task = self._store.get_task(execution_id, task_id)
                    # Another invocation of this attempt (Lambda delivered it twice, or Step
                    # Functions retried a Run that was still going) failed it with retries left
                    # while this one ran it too: answer as it did. Returning the unfinished status
                    # instead would end the task's branch (TaskDone) with the task `retrying` —
                    # never run again, its dependents never released, the execution stuck for good.
                    retry = retry_asked(task, attempt)
                    if retry is not None:
                        return retry
        self._after_finished(execution_id, task, meta, counted, progressed)
        return {"taskId": task_id, "status": task["status"], "attempt": attempt, "waitSeconds": 0}

    def record_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Catch state: the task Lambda itself failed after its retries; fail the task cleanly."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        err = event.get("error") or {}
        cause = str(err.get("Cause", ""))
        with contextlib.suppress(ValueError, AttributeError):
            cause = str(json.loads(cause).get("errorMessage", cause))
        if err.get("Error") == DECISION_TIMED_OUT:
            task = self._decisions.time_out(execution_id, task_id)
            self._after_finished(execution_id, task)
            return {"taskId": task_id, "status": task["status"]}
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
        task = self._attempts.finish(execution_id, task_id, status, error=error, reason=reason).task
        self._after_finished(execution_id, task)
        return {"taskId": task_id, "status": task["status"]}

    def finalize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Last state: write execution.completed or execution.failed (once); the tenant's freed
        task slots go to its queued tasks."""
        answer, freed = self._finalize(event)
        self._tenancy.hand_on(freed)
        return answer

    def _finalize(self, event: Mapping[str, Any]) -> tuple[dict[str, Any], Freed | None]:
        execution_id = str(event["executionId"])
        meta = self._store.get_meta(execution_id)
        if meta["status"] == ExecutionStatus.RUNNING:
            now = self._now()
            err = event.get("error")
            if err or not all_completed(meta):
                self._fail(execution_id, meta, now, *why_failed(meta, err))
            else:
                self._complete(execution_id, meta, now)
            meta = self._store.get_meta(execution_id)
        freed = self._tenancy.ended(tenant_of(meta), execution_id)
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
        return {"executionId": execution_id, "status": meta["status"]}, freed

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
        self._tenancy.ended(tenant_of(meta), execution_id)
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
        return {"executionId": execution_id, "status": ExecutionStatus.CANCELLED}

    def decide(
        self, execution_id: str, task_id: int, decision: Decision, decided_by: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A person's decision on an approval task (decisions.py): the task finished with it,
        counted, announced, its dependents released, then its child ended (the decision token
        sent). A second decision raises AlreadyDecided (→ 409) after redoing those steps, which
        repairs a first one whose sender died before the token was sent."""
        try:
            task = self._decisions.decide(execution_id, task_id, decision, decided_by)
        except AlreadyDecided:
            self._settle_decided(execution_id, self._store.get_task(execution_id, task_id))
            raise
        self._settle_decided(execution_id, task)
        return task_view(task, execution_id)

    def _settle_decided(self, execution_id: str, task: Item) -> None:
        self._after_finished(execution_id, task)
        token = task.get("decisionToken")
        if token and task["status"] in FINISHED_TASK_STATUSES:
            self._state_machine.send_task_success(str(token), json.dumps({"decided": True}))

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
            # A cancel ends here: it freed the tenant's slots without handing them on (see
            # _ended_for_tenant); this hands them on.
            self._tenancy.hand_on(self._tenancy.ended(tenant_of(meta), execution_id))
            return {"executionId": execution_id, "status": meta["status"], "reconciled": False}
        if meta["status"] == ExecutionStatus.RUNNING:
            self._fail(execution_id, meta, self._now(), *why_ended(SfnStatus(detail["status"]), detail, meta))
            meta = self._store.get_meta(execution_id)
        if meta["status"] == ExecutionStatus.FAILED:  # a cancel settles nothing: its tasks show cancelled
            self._settle_tasks(execution_id, meta)
            meta = self._store.get_meta(execution_id)  # the counters the terminal event carries
        self._tenancy.hand_on(self._tenancy.ended(tenant_of(meta), execution_id))
        self._store.append_event(
            execution_id, "execution.terminal", terminal_event(meta, self._preview_chars)
        )
        return {"executionId": execution_id, "status": meta["status"], "reconciled": True}

    def _settle_tasks(self, execution_id: str, meta: Item) -> None:
        """Give every unfinished task its final status: a running one failed, the others skipped,
        with the execution's reason; counted and announced (its substep event and an update) once
        (sets, idempotency keys)."""
        reason = str(meta.get("reason", Reason.INTERNAL))
        for task in self._store.get_tasks(execution_id):
            if task["status"] in FINISHED_TASK_STATUSES:
                continue
            ran = task["status"] == TaskStatus.RUNNING
            status = TaskStatus.FAILED if ran else TaskStatus.SKIPPED
            error = f"{'ended' if ran else 'not started'}: {meta.get('error', 'the execution ended')}"
            done = self._attempts.finish(
                execution_id, int(task["taskId"]), status, error=error, reason=reason
            ).task
            if done["status"] in FINISHED_TASK_STATUSES:
                self._count_finished(execution_id, done, meta)
                # its update too, before the terminal event (no dependent runs any more: no release)
                self._append_update(execution_id, done)

    # ------------------------------------------------------------------ reads

    def snapshot(self, execution_id: str) -> dict[str, Any]:
        """The execution as one document: META, counters and every task (``seq`` = last event)."""
        seq = self._store.last_seq(execution_id)  # read before the state: state is never older
        meta = self._store.get_execution(execution_id)
        tasks = self._store.get_tasks(execution_id)
        return build_snapshot(meta, tasks, seq)

    # ------------------------------------------------------------------ internals

    def _fail(self, execution_id: str, meta: Item, now: int, message: str, reason: str) -> None:
        """Finish the execution as failed, with why."""
        self._store.finish_execution(
            execution_id,
            ExecutionStatus.FAILED,
            now,
            durationMs=now - int(meta["createdAt"]),
            error=message,
            reason=reason,
        )

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

    def _after_finished(
        self,
        execution_id: str,
        task: Item,
        meta: Item | None = None,
        counted: bool = False,
        progressed: bool = False,
    ) -> None:
        """Counters, events, slots and releases for a finished task; safe to repeat.

        ``meta``: read earlier by this step (what is used of it — maxConcurrency, failurePolicy —
        does not change); ``counted``: its counters and substep event were written with its finish;
        ``progressed``: its ``execution.updated`` was queued with them (else it is appended here,
        before the dependents are released: every finish has its update before the terminal)."""
        if task["status"] not in FINISHED_TASK_STATUSES:
            return
        if meta is None:
            meta = self._store.get_meta(execution_id)
        if not counted:
            self._count_finished(execution_id, task, meta)
        if not progressed:
            # Written with the finish when it could be (no call of its own). Otherwise appended
            # here, *before* the release: a dependent released first could run, finish and reach
            # Finalize, whose terminal event refuses every append after it, while this caller is
            # off the Map's path (an abandoned or duplicate invocation, a decision). wait=False is
            # enough: a queued event precedes every append that starts after it (eventlog.py), the
            # dependents' and the terminal one included. One per task: its key's marker.
            self._append_update(execution_id, task)
        self._releases.release_dependents(execution_id, task, meta)

    def _append_update(self, execution_id: str, task: Item) -> None:
        """The finished task's ``execution.updated``, when its finish did not write it: the same
        key as the finish's own (``finish_task_logged``), so a task has one whoever writes it."""
        self._store.append_event(execution_id, f"execution.updated#{task['taskId']}", PROGRESS, wait=False)

    def _count_finished(self, execution_id: str, task: Item, meta: Item) -> None:
        """The finished task's counters and its substep event."""
        self._tally.record(execution_id, task, meta)
