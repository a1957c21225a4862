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

import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import events as ev
from .actions import TaskFailed, run_action
from .dag import Job, dependents_of, sinks, template_refs, topological_order
from .store import PROGRESS, DynamoStore, Item

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient
else:
    SFNClient = Any

log = logging.getLogger(__name__)

_GONE_TOKEN_ERRORS = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}


class StartFailed(Exception):
    """The execution was stored but Step Functions refused to start it."""


def new_execution_id() -> str:
    return f"dag-exec_{uuid.uuid4().hex}"


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
                "paramsJson": json.dumps(t.params.model_dump(), ensure_ascii=False),
                "dependencies": list(t.dependencies),
                "dependents": dependents[t.id],
                "status": "waiting",
            }
            for t in job.tasks
        ]
        self._store.create_execution(
            execution_id,
            created_at=self._now(),
            original_request=job.originalRequest,
            tasks=tasks,
            sink_ids=sinks(job),
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
        """Run state: execute the task and record its outcome (or its upstream failure)."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        task = self._store.get_task(execution_id, task_id)
        if task["status"] == "waiting" and task.get("failedDeps"):
            upstream = sorted(task["failedDeps"])
            names = ", ".join(str(u) for u in upstream)
            error = f"upstream task{'s' if len(upstream) > 1 else ''} {names} failed"
            task = self._finish(execution_id, task_id, "failed", error=error, upstream=upstream)
        elif task["status"] in ("waiting", "running"):
            task = self._execute(execution_id, task_id)
        self._after_finished(execution_id, task)
        return {"taskId": task_id, "status": task["status"]}

    def record_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Catch state: the task Lambda itself failed after its retries; fail the task cleanly."""
        execution_id, task_id = str(event["executionId"]), int(event["taskId"])
        err = event.get("error") or {}
        cause = str(err.get("Cause", ""))
        with contextlib.suppress(ValueError, AttributeError):
            cause = str(json.loads(cause).get("errorMessage", cause))
        error = f"task runner failed: {err.get('Error', 'Error')}: {cause}".rstrip(": ")
        task = self._finish(execution_id, task_id, "failed", error=error)
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
            if err or meta.get("failed") or len(meta.get("completed", ())) < int(meta["totalTasks"]):
                if err:
                    message = f"{err.get('Error', 'Error')}: {err.get('Cause', '')}".rstrip(": ")
                else:
                    message = str(meta.get("firstError", "not every task completed"))
                self._store.finish_execution(execution_id, "failed", now, durationMs=duration, error=message)
            else:
                results = self._store.get_results(execution_id, meta["sinks"])
                final: Any = (
                    results[meta["sinks"][0]]
                    if len(meta["sinks"]) == 1
                    else {str(k): v for k, v in sorted(results.items())}
                )
                self._store.finish_execution(
                    execution_id,
                    "completed",
                    now,
                    durationMs=duration,
                    finalResultJson=json.dumps(final, ensure_ascii=False),
                )
            meta = self._store.get_meta(execution_id)
        if meta["status"] == "completed":
            terminal = ev.execution_completed(
                meta, int(meta["durationMs"]), json.loads(meta["finalResultJson"])
            )
        else:
            terminal = ev.execution_failed(meta, int(meta["durationMs"]), str(meta["error"]))
        self._store.append_event(execution_id, "execution.terminal", terminal)
        return {"executionId": execution_id, "status": meta["status"]}

    # ------------------------------------------------------------------ internals

    def _execute(self, execution_id: str, task_id: int) -> Item:
        task = self._store.start_task(execution_id, task_id, self._now())
        if task is None:  # finished meanwhile (a duplicate invocation won)
            return self._store.get_task(execution_id, task_id)
        self._store.record_task_running(execution_id, task_id)
        self._store.append_event(
            execution_id,
            f"substep.started#{task_id}",
            ev.substep_started(task_id, task.get("description", "")),
        )
        params = json.loads(task["paramsJson"])
        wanted = set(task.get("dependencies", []))
        for value in params.values():
            if isinstance(value, str):
                wanted.update(template_refs(value))
        try:
            results = self._store.get_results(execution_id, sorted(wanted))
            result = run_action(task["action"], params, results)
            json.dumps(result)
        except TaskFailed as exc:
            return self._finish(execution_id, task_id, "failed", error=str(exc))
        except Exception as exc:  # user-level failure of the action: the task fails, not the run
            log.exception("task %s of %s raised", task_id, execution_id)
            return self._finish(execution_id, task_id, "failed", error=f"{type(exc).__name__}: {exc}")
        result = self._store.redactor.apply(result)  # secrets never reach the table, the API or a stream
        return self._finish(
            execution_id, task_id, "completed", resultJson=json.dumps(result, ensure_ascii=False)
        )

    def _finish(
        self, execution_id: str, task_id: int, status: str, upstream: list[int] | None = None, **fields: Any
    ) -> Item:
        now = self._now()
        current = self._store.get_task(execution_id, task_id)
        started = current.get("startedAt")
        if started is not None:
            fields["durationMs"] = now - int(started)
        if upstream:
            fields["upstreamTaskIds"] = upstream
        done = self._store.finish_task(execution_id, task_id, status, finishedAt=now, **fields)
        return done if done is not None else self._store.get_task(execution_id, task_id)

    def _after_finished(self, execution_id: str, task: Item) -> None:
        """Counters, events and releases for a finished task; safe to repeat."""
        task_id = int(task["taskId"])
        status = task["status"]
        if status == "completed":
            self._store.record_task_done(execution_id, task_id, ok=True)
            self._store.append_event(
                execution_id,
                f"substep.completed#{task_id}",
                ev.substep_completed(task_id, int(task.get("durationMs", 0)), json.loads(task["resultJson"])),
            )
        elif status == "failed":
            error = str(task.get("error", "task failed"))
            label = f"task {task_id}" + (f" ({task['description']})" if task.get("description") else "")
            self._store.record_task_done(execution_id, task_id, ok=False, error=f"{label} failed: {error}")
            self._store.append_event(
                execution_id,
                f"substep.failed#{task_id}",
                ev.substep_failed(task_id, error, task.get("durationMs"), task.get("upstreamTaskIds")),
            )
        else:
            return
        self._store.append_event(
            execution_id,
            f"execution.updated#{task_id}",
            PROGRESS,
        )
        for dependent in task.get("dependents", []):
            item = self._store.mark_dependency_done(
                execution_id, dependent, task_id, failed=status != "completed"
            )
            self._maybe_release(execution_id, item)

    def _maybe_release(self, execution_id: str, task: Item) -> None:
        ready = len(task.get("doneDeps", ())) >= len(task.get("dependencies", []))
        if not (ready and task.get("token") and not task.get("released")):
            return
        if not self._store.claim_release(execution_id, int(task["taskId"])):
            return
        try:
            self._sfn.send_task_success(taskToken=str(task["token"]), output=json.dumps({"released": True}))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in _GONE_TOKEN_ERRORS:
                raise
            log.warning("token of task %s in %s is gone (%s)", task["taskId"], execution_id, code)

    # ------------------------------------------------------------------ reads

    def snapshot(self, execution_id: str) -> dict[str, Any]:
        """The execution as one document: META, counters and every task (``seq`` = last event)."""
        seq = self._store.last_seq(execution_id)  # read before the state: state is never older
        meta = self._store.get_meta(execution_id)
        tasks = self._store.get_tasks(execution_id)
        return build_snapshot(meta, tasks, seq)


def task_view(task: Item) -> dict[str, Any]:
    view: dict[str, Any] = {
        "taskId": task["taskId"],
        "subStepId": str(task["taskId"]),
        "description": task.get("description", ""),
        "action": task["action"],
        "dependencies": task.get("dependencies", []),
        "status": task["status"],
    }
    for key in ("startedAt", "finishedAt", "durationMs", "error", "upstreamTaskIds"):
        if key in task:
            view[key] = task[key]
    if "resultJson" in task:
        view["result"] = json.loads(task["resultJson"])
    return view


def execution_view(meta: Item) -> dict[str, Any]:
    view: dict[str, Any] = {
        "executionId": meta["executionId"],
        "status": meta["status"],
        "originalRequest": meta.get("originalRequest", ""),
        "createdAt": meta["createdAt"],
        **ev.counters(meta),
    }
    for key in ("finishedAt", "durationMs", "error"):
        if key in meta:
            view[key] = meta[key]
    if "finalResultJson" in meta:
        view["finalResult"] = json.loads(meta["finalResultJson"])
    return view


def build_snapshot(meta: Item, tasks: list[Item], seq: int) -> dict[str, Any]:
    return {
        **execution_view(meta),
        "seq": seq,
        "tasks": [task_view(t) for t in sorted(tasks, key=lambda t: int(t["taskId"]))],
    }
