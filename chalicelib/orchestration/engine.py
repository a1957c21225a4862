"""The logic behind the state machine's task Lambdas, and execution submission.

The state machine (infra/statemachine/dag.asl.json) runs one Map iteration per task. Each
iteration first *waits* (``lambda:invoke.waitForTaskToken`` → ``register``) until the task's last
dependency has finished, then *runs* it (``run``). Whoever observes "token stored AND every
dependency done" first — the registration or the finishing dependency — claims the release with
a conditional write and sends the token back, so a task starts the moment its last dependency
ends (exact DAG semantics, no waves).

Every step here is idempotent, because Step Functions and Lambda retry: task transitions are
conditional writes, counters are sets, events have idempotency keys. A retried step redoes its
remaining work and writes nothing twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..domain import events as ev
from ..domain.dag import Job, RetryPolicy, dependents_of, sinks, topological_order
from ..domain.errors import AlreadyFinished, StartFailed, TaskFailed
from ..domain.templates import refs_in_value
from ..kinds import RunContext, run_kind
from ..store import INLINE_RESULT_CHARS, PROGRESS, DynamoStore, Item, error_code

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient
else:
    SFNClient = Any

log = logging.getLogger(__name__)

_GONE_TOKEN_ERRORS = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}
MAX_RESULT_BYTES = 4_000_000  # under Lambda's 6 MB response limit, so the API can return it
_FINISHED = ("completed", "failed", "skipped", "cancelled")
# Threads running task kinds; a timed-out attempt's thread is abandoned (its result is ignored).
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="dagcast-task")
# Threads releasing a finished task's dependents: a 500-wide fan-out is 500 × (mark, claim,
# SendTaskSuccess) — one after the other that would be seconds of a Lambda's time.
_RELEASE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="dagcast-release")


def new_execution_id() -> str:
    return f"dag-exec_{uuid.uuid4().hex}"


def combine_sinks(results: Mapping[int, Any], sinks: list[int]) -> Any:
    """The final result: the one sink's (or result task's) result, else one entry per sink."""
    return results[sinks[0]] if len(sinks) == 1 else {str(k): v for k, v in sorted(results.items())}


def retry_outcome(task_id: int, attempt: int, wait_seconds: int) -> dict[str, Any]:
    """What run returns to the state machine for another attempt (Retry? → Backoff → NextAttempt)."""
    return {"taskId": task_id, "status": "retry", "attempt": attempt + 1, "waitSeconds": wait_seconds}


def _retry_asked(task: Item, attempt: int) -> dict[str, Any] | None:
    """The retry outcome if attempt ``attempt`` has already failed with retries left (the task is
    ``retrying``, at the next attempt), else None."""
    if task["status"] == "retrying" and int(task["attempt"]) == attempt + 1:
        policy = RetryPolicy.model_validate_json(str(task["retriesJson"]))
        return retry_outcome(int(task["taskId"]), attempt, policy.wait_seconds(attempt))
    return None


def result_url(execution_id: str, task_id: int | None = None) -> str:
    base = f"/api/v1/dag-executions/{execution_id}"
    return f"{base}/tasks/{task_id}/result" if task_id is not None else f"{base}/result"


class Orchestrator:
    def __init__(
        self,
        store: DynamoStore,
        sfn: SFNClient,
        state_machine_arn: str,
        clock: Callable[[], int] = ev.now_ms,
    ) -> None:
        self._store = store
        self._sfn = sfn
        self._arn = state_machine_arn
        self._now = clock

    # ------------------------------------------------------------------ submission

    def submit(self, job: Job, execution_id: str | None = None) -> str:
        execution_id = execution_id or new_execution_id()
        dependents = dependents_of(job)
        tasks = [
            {
                "taskId": t.id,
                "description": t.description,
                "action": t.action,
                "paramsJson": json.dumps(t.params, ensure_ascii=False),
                "dependencies": list(t.dependencies),
                "dependents": dependents[t.id],
                "status": "waiting",
                "attempt": 1,
                "retriesJson": t.retry_policy.model_dump_json(),
                "timeoutSeconds": f"{t.timeoutSeconds:g}",
            }
            for t in job.tasks
        ]
        created = self._now()
        extra: dict[str, Any] = {"failurePolicy": job.failurePolicy}
        if job.maxConcurrency is not None:
            extra["maxConcurrency"] = job.maxConcurrency
        if job.timeoutSeconds is not None:
            extra["deadlineAt"] = created + int(job.timeoutSeconds * 1000)
            extra["timeoutSeconds"] = f"{job.timeoutSeconds:g}"
        self._store.create_execution(
            execution_id,
            created_at=created,
            original_request=job.originalRequest,
            tasks=tasks,
            sink_ids=[job.resultTask] if job.resultTask is not None else sinks(job),
            **extra,
        )
        try:
            out = self._sfn.start_execution(
                stateMachineArn=self._arn,
                name=execution_id,
                input=json.dumps({"executionId": execution_id, "taskIds": topological_order(job)}),
            )
        except ClientError as exc:
            message = f"Step Functions did not start the execution: {exc}"
            self.finalize({"executionId": execution_id, "error": {"Error": "StartFailed", "Cause": message}})
            raise StartFailed(message) from exc
        self._store.set_execution_fields(execution_id, stateMachineExecutionArn=out["executionArn"])
        return execution_id

    # ------------------------------------------------------------------ state machine steps

    def register(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Wait state: store the callback token; release at once if every dependency is done."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        task = self._store.set_token(execution_id, task_id, str(event["token"]))
        self._maybe_release(execution_id, task)
        return {"registered": True}

    def run(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Run state: run one attempt of the task and record its outcome.

        Returns ``status`` (a final status, or ``retry`` with ``attempt`` and ``waitSeconds`` for
        the state machine's Backoff/NextAttempt loop)."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        attempt = int(event.get("attempt", 1))
        task = self._store.get_task(execution_id, task_id)
        retry = _retry_asked(task, attempt)
        if retry is not None:  # Step Functions ran this attempt's Run again after it asked for a retry
            return retry
        if task["status"] not in _FINISHED and int(task.get("attempt", 1)) == attempt:
            meta = self._store.get_meta(execution_id)
            why_not = self._why_not_start(meta, task)
            if why_not is not None:
                status, reason, error = why_not
                upstream = sorted(task.get("failedDeps", ())) if reason == "upstream" else None
                task = self._finish(
                    execution_id, task_id, status, error=error, reason=reason, upstream=upstream
                )
            else:
                outcome = self._attempt(execution_id, task, attempt, meta)
                if outcome is not None:
                    return outcome
                task = self._store.get_task(execution_id, task_id)
                # Another invocation of this attempt (Lambda delivered it twice, or Step Functions
                # retried a Run that was still going) failed it with retries left while this one
                # ran it too: answer as it did. Returning the unfinished status instead would end
                # the task's branch (TaskDone) with the task `retrying` — never run again, its
                # dependents never released, the execution stuck for good.
                retry = _retry_asked(task, attempt)
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
        task = self._finish(execution_id, task_id, "failed", error=error, reason="error")
        self._after_finished(execution_id, task)
        return {"taskId": task_id, "status": task["status"]}

    def finalize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Last state: write execution.completed or execution.failed (once)."""
        execution_id = str(event["executionId"])
        meta = self._store.get_meta(execution_id)
        if meta["status"] == "running":
            now = self._now()
            duration = now - int(meta["createdAt"])
            err = event.get("error")
            if (
                err
                or meta.get("failed")
                or meta.get("skipped")
                or len(meta.get("completed", ())) < int(meta["totalTasks"])
            ):
                reason = "taskFailed"
                if err:
                    message = f"{err.get('Error', 'Error')}: {err.get('Cause', '')}".rstrip(": ")
                    reason = "startFailed" if err.get("Error") == "StartFailed" else "internal"
                elif meta.get("stopReason") == "timeout":
                    message = f"the execution timed out after {meta.get('timeoutSeconds')}s (timeoutSeconds)"
                    reason = "timeout"
                else:
                    message = str(meta.get("firstError", "not every task completed"))
                self._store.finish_execution(
                    execution_id, "failed", now, durationMs=duration, error=message, reason=reason
                )
            else:
                sinks = [int(t) for t in meta["sinks"]]
                final = combine_sinks(self._store.get_results(execution_id, sinks), sinks)
                text = json.dumps(final, ensure_ascii=False)
                fields: dict[str, Any] = {"durationMs": duration, "finalResultBytes": len(text.encode())}
                if len(text) <= INLINE_RESULT_CHARS:
                    fields["finalResultJson"] = text
                else:
                    fields["finalResultPreview"] = json.dumps(ev.preview(text, result_url(execution_id)))
                self._store.finish_execution(execution_id, "completed", now, **fields)
            meta = self._store.get_meta(execution_id)
        self._store.append_event(execution_id, "execution.terminal", terminal_event(meta))
        return {"executionId": execution_id, "status": meta["status"]}

    def cancel(self, execution_id: str) -> dict[str, Any]:
        """Stop the execution: ``execution.failed`` with status ``cancelled``. Idempotent; raises
        AlreadyFinished (→ 409) for an execution that completed or failed."""
        meta = self._store.get_meta(execution_id)
        if meta["status"] == "running":
            now = self._now()
            self._store.finish_execution(
                execution_id,
                "cancelled",
                now,
                durationMs=now - int(meta["createdAt"]),
                error="cancelled by request",
                reason="cancelled",
            )
            meta = self._store.get_meta(execution_id)
        if meta["status"] != "cancelled":
            raise AlreadyFinished(execution_id, str(meta["status"]))
        arn = meta.get("stateMachineExecutionArn")
        if arn:
            try:
                self._sfn.stop_execution(
                    executionArn=str(arn), error="Cancelled", cause="cancelled by request"
                )
            except ClientError as exc:  # already stopped or gone: the state machine is not running
                log.info("stop_execution %s: %s", arn, exc)
        self._store.append_event(execution_id, "execution.terminal", terminal_event(meta))
        return {"executionId": execution_id, "status": "cancelled"}

    # ------------------------------------------------------------------ internals

    def _why_not_start(self, meta: Item, task: Item) -> tuple[str, str, str] | None:
        """(status, reason, error) when the task must not run (now), else None."""
        if meta["status"] != "running":
            return "cancelled", "cancelled", f"the execution is {meta['status']}"
        deadline = meta.get("deadlineAt")
        if deadline is not None and self._now() >= int(deadline):
            self._store.set_stopping(str(meta["executionId"]), "timeout")
            return (
                "skipped",
                "timeout",
                f"not started: the execution timed out after {meta.get('timeoutSeconds')}s",
            )
        if meta.get("stopping") and task["status"] in ("waiting", "retrying"):
            return (
                "skipped",
                "skipped",
                "not started: " + str(meta.get("firstError", "the execution is stopping")),
            )
        if task.get("failedDeps"):
            upstream = sorted(task["failedDeps"])
            names = ", ".join(str(u) for u in upstream)
            return (
                "failed",
                "upstream",
                f"upstream task{'s' if len(upstream) > 1 else ''} {names} did not complete",
            )
        return None

    def _attempt(self, execution_id: str, task: Item, attempt: int, meta: Item) -> dict[str, Any] | None:
        """Run attempt ``attempt``; a ``retry`` outcome, or None once the task has finished."""
        task_id = int(task["taskId"])
        started = self._store.start_task(execution_id, task_id, attempt, self._now())
        if started is None:  # finished meanwhile, or another attempt (a stale duplicate invocation)
            return None
        self._store.record_task_running(execution_id, task_id)
        self._store.append_event(
            execution_id,
            f"substep.started#{task_id}#{attempt}",
            ev.substep_started(task_id, started.get("description", ""), attempt),
            wait=False,
        )
        timeout = float(started.get("timeoutSeconds", 300))
        reason = "error"
        deadline = meta.get("deadlineAt")
        if deadline is not None:
            timeout = min(timeout, max(0.0, (int(deadline) - self._now()) / 1000))
        try:
            result = self._run_with_timeout(execution_id, started, attempt, timeout)
            text = json.dumps(self._store.redactor.apply(result), ensure_ascii=False)
            size = len(text.encode())
            if size > MAX_RESULT_BYTES:
                raise TaskFailed(f"the result is {size} bytes; the limit is {MAX_RESULT_BYTES}")
        except TaskFailed as exc:
            error = str(exc)
            reason = "timeout" if isinstance(exc, _Timeout) else "error"
        except Exception as exc:  # user-level failure of the kind: the task fails, not the run
            log.exception("task %s of %s raised", task_id, execution_id)
            error = f"{type(exc).__name__}: {exc}"
        else:
            fields: dict[str, Any] = {"resultBytes": size}
            if len(text) <= INLINE_RESULT_CHARS:
                fields["resultJson"] = text
            else:
                # Chunks under this run's own id: another invocation running the same attempt (a
                # duplicate delivery, a retried Run still going) writes its — possibly different —
                # result beside them, never over the chunks of the result that was recorded.
                fields["resultRun"] = uuid.uuid4().hex[:16]
                fields["resultChunks"] = self._store.put_result_chunks(
                    execution_id, task_id, text, fields["resultRun"]
                )
                fields["resultPreview"] = json.dumps(ev.preview(text, result_url(execution_id, task_id)))
            done = self._finish(
                execution_id, task_id, "completed", attempt=attempt, started=started, **fields
            )
            if "resultRun" in fields and done.get("resultRun") != fields["resultRun"]:
                # another invocation finished the task first: our chunks are nobody's
                self._store.delete_result_chunks(
                    execution_id, task_id, fields["resultRun"], fields["resultChunks"]
                )
            return None
        if reason == "timeout" and deadline is not None and self._now() >= int(deadline):
            self._store.set_stopping(execution_id, "timeout")
        policy = RetryPolicy.model_validate_json(str(started.get("retriesJson", '{"count": 0}')))
        fresh = self._store.get_meta(execution_id)
        if attempt <= policy.count and fresh["status"] == "running" and not fresh.get("stopping"):
            wait = policy.wait_seconds(attempt)
            if self._store.retry_task(execution_id, task_id, attempt, error) is not None:
                self._store.append_event(
                    execution_id,
                    f"substep.failed#{task_id}#{attempt}",
                    ev.substep_failed(
                        task_id,
                        error,
                        self._now() - int(started["attemptStartedAt"]),
                        attempt=attempt,
                        reason=reason,
                        retry_in_seconds=wait,
                    ),
                    wait=False,
                )
            return retry_outcome(task_id, attempt, wait)
        self._finish(
            execution_id, task_id, "failed", attempt=attempt, started=started, error=error, reason=reason
        )
        return None

    def _run_with_timeout(self, execution_id: str, task: Item, attempt: int, timeout: float) -> Any:
        params = json.loads(task["paramsJson"])
        deps = [int(d) for d in task.get("dependencies", [])]
        wanted = set(deps) | {ref for _, ref in refs_in_value(params)}
        results = self._store.get_results(execution_id, sorted(wanted))
        inputs = {d: results.get(d) for d in deps}
        ctx = RunContext(execution_id, int(task["taskId"]), attempt, time.monotonic() + timeout)
        future = _POOL.submit(run_kind, str(task["action"]), params, inputs, results, ctx)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise _Timeout(f"timed out after {timeout:g}s (timeoutSeconds)") from None

    def _finish(
        self,
        execution_id: str,
        task_id: int,
        status: str,
        upstream: list[int] | None = None,
        attempt: int | None = None,
        started: Item | None = None,
        **fields: Any,
    ) -> Item:
        """``started``: the task as this invocation started it (saves reading it again)."""
        now = self._now()
        current = started if started is not None else self._store.get_task(execution_id, task_id)
        if current.get("startedAt") is not None:
            fields["durationMs"] = now - int(current["startedAt"])
        if upstream:
            fields["upstreamTaskIds"] = upstream
        done = self._store.finish_task(execution_id, task_id, status, attempt, finishedAt=now, **fields)
        return done if done is not None else self._store.get_task(execution_id, task_id)

    def _after_finished(self, execution_id: str, task: Item) -> None:
        """Counters, events, slots and releases for a finished task; safe to repeat."""
        task_id = int(task["taskId"])
        status = task["status"]
        if status not in _FINISHED:
            return
        attempt = int(task.get("attempt", 1))
        meta = self._store.get_meta(execution_id)
        if status == "completed":
            self._store.record_task_done(execution_id, task_id, "completed")
            if "resultPreview" in task:
                shown = json.loads(task["resultPreview"])
            else:  # inline (≤ 32 KB), but events carry at most EVENT_RESULT_BYTES of it
                shown = ev.preview(str(task["resultJson"]), result_url(execution_id, task_id))
            self._store.append_event(
                execution_id,
                f"substep.completed#{task_id}",
                ev.substep_completed(task_id, int(task.get("durationMs", 0)), shown, attempt),
                wait=False,
            )
        else:
            error = str(task.get("error", "task failed"))
            reason = str(task.get("reason", "error"))
            ran = reason in ("error", "timeout")
            label = f"task {task_id}" + (f" ({task['description']})" if task.get("description") else "")
            self._store.record_task_done(
                execution_id,
                task_id,
                status,
                error=f"{label} failed: {error}",
                stop=ran and status == "failed" and meta.get("failurePolicy", "failFast") == "failFast",
            )
            self._store.append_event(
                execution_id,
                f"substep.failed#{task_id}",
                ev.substep_failed(
                    task_id,
                    error,
                    task.get("durationMs"),
                    task.get("upstreamTaskIds"),
                    attempt=attempt if ran else None,
                    reason=reason,
                ),
                wait=False,
            )
        # Dependents are released before the progress event is written: it is not on their
        # critical path (its counters are read when it is written, so it is never stale).
        limit = meta.get("maxConcurrency")
        if limit:
            self._store.release_slot(execution_id, task_id)

        def release(dependent: int) -> None:
            item = self._store.mark_dependency_done(
                execution_id, dependent, task_id, failed=status != "completed"
            )
            self._maybe_release(execution_id, item, meta)

        dependents = [int(d) for d in task.get("dependents", [])]
        if len(dependents) == 1:
            release(dependents[0])
        else:
            list(_RELEASE_POOL.map(release, dependents))  # list(): re-raises the first error
        if limit:
            self._drain_slots(execution_id, int(limit))
        self._store.append_event(execution_id, f"execution.updated#{task_id}", PROGRESS, wait=False)

    def _maybe_release(self, execution_id: str, task: Item, meta: Item | None = None) -> None:
        ready = len(task.get("doneDeps", ())) >= len(task.get("dependencies", []))
        token = task.get("token")
        if not (ready and token) or task.get("released") == token:
            return
        if meta is None:
            meta = self._store.get_meta(execution_id)
        limit = meta.get("maxConcurrency")
        task_id = int(task["taskId"])
        if limit and not self._store.acquire_slot(execution_id, task_id, int(limit)):
            # Queue first, then look for a free slot: a slot freed meanwhile is not missed.
            self._store.queue_for_slot(execution_id, task_id)
            self._drain_slots(execution_id, int(limit))
            return
        self._release(execution_id, task_id, str(token))

    def _drain_slots(self, execution_id: str, limit: int) -> None:
        """Give free slots to queued ready tasks, lowest id first."""
        while True:
            meta = self._store.get_meta(execution_id)
            queued = sorted(set(meta.get("queued", ())))
            if not queued or len(meta.get("holding", ())) >= limit:
                return
            if self._store.acquire_slot(execution_id, queued[0], limit, from_queue=True):
                task = self._store.get_task(execution_id, queued[0])
                self._release(execution_id, queued[0], str(task["token"]))

    def _release(self, execution_id: str, task_id: int, token: str) -> None:
        """Send the task's callback token. No claim first: a claim won by a caller that then dies
        (or whose answer is lost) would leave the task parked for good, while a second
        SendTaskSuccess for the same token is harmless (the token is gone: ignored)."""
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps({"released": True}))
        except ClientError as exc:
            code = error_code(exc)
            if code not in _GONE_TOKEN_ERRORS:
                raise
            log.info("token of task %s in %s was already used (%s)", task_id, execution_id, code)
        self._store.mark_released(execution_id, task_id, token)

    # ------------------------------------------------------------------ reads

    def snapshot(self, execution_id: str) -> dict[str, Any]:
        """The execution as one document: META, counters and every task (``seq`` = last event)."""
        seq = self._store.last_seq(execution_id)  # read before the state: state is never older
        meta = self._store.get_meta(execution_id)
        tasks = self._store.get_tasks(execution_id)
        return build_snapshot(meta, tasks, seq)


def task_view(task: Item, execution_id: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "taskId": task["taskId"],
        "subStepId": str(task["taskId"]),
        "description": task.get("description", ""),
        "action": task["action"],
        "dependencies": task.get("dependencies", []),
        "status": task["status"],
    }
    for key in ("attempt", "startedAt", "finishedAt", "durationMs", "error", "reason", "upstreamTaskIds"):
        if key in task:
            view[key] = task[key]
    if "resultPreview" in task:
        view.update(json.loads(task["resultPreview"]))
    elif "resultJson" in task:
        view.update(ev.preview(task["resultJson"], result_url(execution_id, int(task["taskId"]))))
    return view


def execution_view(meta: Item) -> dict[str, Any]:
    view: dict[str, Any] = {
        "executionId": meta["executionId"],
        "status": meta["status"],
        "originalRequest": meta.get("originalRequest", ""),
        "createdAt": meta["createdAt"],
        **ev.counters(meta),
    }
    for key in ("finishedAt", "durationMs", "error", "reason", "failurePolicy", "maxConcurrency"):
        if key in meta:
            view[key] = meta[key]
    if "finalResultJson" in meta:
        view["finalResult"] = json.loads(meta["finalResultJson"])
    elif "finalResultPreview" in meta:
        view.update(
            {"final" + k[0].upper() + k[1:]: v for k, v in json.loads(meta["finalResultPreview"]).items()}
        )
    return view


def terminal_event(meta: Item) -> ev.Event:
    if meta["status"] == "completed":
        if "finalResultJson" in meta:
            shown = ev.preview(str(meta["finalResultJson"]), result_url(str(meta["executionId"])))
        else:
            shown = json.loads(meta["finalResultPreview"])
        return ev.execution_completed(meta, int(meta["durationMs"]), shown)
    return ev.execution_failed(
        meta,
        int(meta["durationMs"]),
        str(meta["error"]),
        str(meta["status"]),
        str(meta.get("reason", "taskFailed")),
    )


class _Timeout(TaskFailed):
    """An attempt ran out of time."""


# Tasks that will never run once their execution is cancelled: Step Functions stops at once
# (StopExecution), so nothing records them; the snapshot shows them as what they are.
_NEVER_RUN_AFTER_CANCEL = ("waiting", "retrying")


def build_snapshot(meta: Item, tasks: list[Item], seq: int) -> dict[str, Any]:
    view = {
        **execution_view(meta),
        "seq": seq,
        "tasks": [
            task_view(t, str(meta["executionId"])) for t in sorted(tasks, key=lambda t: int(t["taskId"]))
        ],
    }
    if meta["status"] == "cancelled":
        for task in view["tasks"]:
            if task["status"] in _NEVER_RUN_AFTER_CANCEL:
                task.update(
                    status="cancelled", reason="cancelled", error="not run: the execution was cancelled"
                )
        # Counted from the tasks as shown (skippedTasks counts skipped and cancelled, docs/api.md).
        shown = Counter(str(t["status"]) for t in view["tasks"])
        view.update(
            completedTasks=shown["completed"],
            failedTasks=shown["failed"],
            skippedTasks=shown["skipped"] + shown["cancelled"],
            runningTasks=shown["running"],
            waitingTasks=0,
        )
    return view
