"""One attempt of a task: whether it may start at all, running its kind in a thread under the
attempt's timeout, recording the result, and on failure the retry decision.

Every transition is conditional on the attempt number (the store's ``start_task``, ``retry_task``,
``finish_task``), so a late or duplicate invocation changes nothing that another one recorded.
Not here: counting the finished task, its events and releasing its dependents (engine.py and
release.py), nor what a kind does (chalicelib/kinds.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from ..domain import events as ev
from ..domain import previews
from ..domain.dag import RetryPolicy
from ..domain.errors import TaskFailed
from ..domain.model import DEFAULT_TIMEOUT_SECONDS, ExecutionStatus, Reason, StepAnswer, TaskStatus, cut_error
from ..domain.templates import refs_in_value
from ..kinds import RunContext, run_kind
from ..persistence.executions import INLINE_RESULT_CHARS
from ..persistence.table import Item
from ..persistence.taskwrites import TaskDone
from ..progress import Coalescing
from ..redact import Redactor
from .ports import OrchestrationStore
from .streaming import attempt_emitter
from .tally import Tally
from .views import result_url, timeout_source

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 4_000_000  # under Lambda's 6 MB response limit, so the API can return it

# Threads running task kinds, shared by every runner in the process: a timed-out attempt's thread
# is abandoned (it runs on, its result ignored), so no runner could shut a pool of its own down,
# and a pool per runner would keep idle threads for each Orchestrator the tests and the local
# stack build. The executor starts its threads on first use, not at import.
_TASK_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="dagcast-task")


def retry_outcome(task_id: int, attempt: int, wait_seconds: int) -> dict[str, Any]:
    """What run returns to the state machine for another attempt (Retry? → Backoff → NextAttempt)."""
    return {
        "taskId": task_id,
        "status": StepAnswer.RETRY,
        "attempt": attempt + 1,
        "waitSeconds": wait_seconds,
    }


def retry_asked(task: Item, attempt: int) -> dict[str, Any] | None:
    """The retry outcome if attempt ``attempt`` has already failed with retries left (the task is
    ``retrying``, at the next attempt), else None."""
    if task["status"] == TaskStatus.RETRYING and int(task["attempt"]) == attempt + 1:
        policy = RetryPolicy.model_validate_json(str(task["retriesJson"]))
        return retry_outcome(int(task["taskId"]), attempt, policy.wait_seconds(attempt))
    return None


class NotStarted(NamedTuple):
    """How a task that must not run is recorded instead."""

    status: TaskStatus
    reason: Reason
    error: str


class _Result(NamedTuple):
    text: str  # the redacted result as JSON
    size: int  # its UTF-8 bytes


class _Failure(NamedTuple):
    error: str
    reason: Reason


class _KindCall(NamedTuple):
    """What the task's kind is run with: its params, its inputs (the dependencies' results) and
    every result its params refer to."""

    action: str
    params: Any
    inputs: dict[int, Any]
    results: dict[int, Any]


class _Timeout(TaskFailed):
    """An attempt ran out of time."""


class Finished(NamedTuple):
    """A task finished (by this call or before it), whether this call also counted and announced
    it (its META counter and substep event, in the same write), and whether its
    ``execution.updated`` went in that write too."""

    task: Item
    counted: bool
    progressed: bool = False


class AttemptRunner:
    def __init__(self, store: OrchestrationStore, clock: Callable[[], int], tally: Tally) -> None:
        self._store = store
        self._now = clock
        self.coalescing = Coalescing()  # how the attempts' live output is written (chalicelib/progress.py)
        self._tally = tally

    def why_not_start(self, meta: Item, task: Item) -> NotStarted | None:
        """How to record the task instead of running it (now), or None if it may run."""
        if meta["status"] != ExecutionStatus.RUNNING:
            return NotStarted(TaskStatus.CANCELLED, Reason.CANCELLED, f"the execution is {meta['status']}")
        deadline = meta.get("deadlineAt")
        if deadline is not None and self._now() >= int(deadline):
            self._store.set_stopping(str(meta["executionId"]), Reason.TIMEOUT)
            return NotStarted(
                TaskStatus.SKIPPED,
                Reason.TIMEOUT,
                f"not started: the execution timed out after {meta.get('timeoutSeconds')}s"
                + ("" if meta.get("timeoutFrom") is None else f" ({timeout_source(meta)})"),
            )
        if meta.get("stopping") and task["status"] in (TaskStatus.WAITING, TaskStatus.RETRYING):
            return NotStarted(
                TaskStatus.SKIPPED,
                Reason.SKIPPED,
                "not started: " + str(meta.get("firstError", "the execution is stopping")),
            )
        if task.get("failedDeps"):
            upstream = sorted(task["failedDeps"])
            names = ", ".join(str(u) for u in upstream)
            return NotStarted(
                TaskStatus.FAILED,
                Reason.UPSTREAM,
                f"upstream task{'s' if len(upstream) > 1 else ''} {names} did not complete",
            )
        return None

    def run(
        self, execution_id: str, task: Item, attempt: int, meta: Item
    ) -> dict[str, Any] | Finished | None:
        """Run attempt ``attempt``; a ``retry`` outcome, the task as this run finished it, or None
        if it did not start (finished meanwhile, or at another attempt)."""
        started = self._start(execution_id, task, attempt)
        if started is None:  # finished meanwhile, or another attempt (a stale duplicate invocation)
            return None
        deadline = meta.get("deadlineAt")
        outcome = self._execute(execution_id, started, attempt, self._time_budget(started, deadline))
        if isinstance(outcome, _Failure):
            return self._after_failure(execution_id, started, attempt, deadline, outcome, meta)
        return self._record_result(execution_id, started, attempt, outcome, meta)

    def finish(
        self,
        execution_id: str,
        task_id: int,
        status: TaskStatus,
        upstream: list[int] | None = None,
        attempt: int | None = None,
        started: Item | None = None,
        meta: Item | None = None,
        **fields: Any,
    ) -> Finished:
        """Record the task's final status; the task as stored after (whoever finished it).

        ``started``: the task as this invocation read or started it (saves reading it again).
        ``meta`` (its failure policy): count and announce the task in the same transaction as
        its finish; if that cannot be (events queued, a race, the task finished already), the
        finish is written alone and ``counted`` is False: the caller counts it (``Tally.record``)."""
        now = self._now()
        current = started if started is not None else self._store.get_task(execution_id, task_id)
        if current.get("startedAt") is not None:
            fields["durationMs"] = now - int(current["startedAt"])
        if upstream:
            fields["upstreamTaskIds"] = upstream
        if "error" in fields:  # also errors from Step Functions (record_failure) and the engine
            fields["error"] = cut_error(self._store.redactor.text(str(fields["error"])))
        fields["finishedAt"] = now
        if meta is not None:
            done = {**current, **fields, "status": status}
            c = self._tally.of(execution_id, done, meta)
            logged = TaskDone(status, attempt, fields, c.error, c.stop)
            if self._store.finish_task_logged(execution_id, task_id, logged, c.key, c.event):
                return Finished(done, True, True)
        stored = self._store.finish_task(execution_id, task_id, status, attempt, **fields)
        return Finished(stored if stored is not None else self._store.get_task(execution_id, task_id), False)

    def _start(self, execution_id: str, task: Item, attempt: int) -> Item | None:
        """Mark the attempt running, counted and announced (in one transaction if it can be);
        the task as started, or None."""
        now, task_id = self._now(), int(task["taskId"])
        key = f"substep.started#{task_id}#{attempt}"
        event = ev.substep_started(task_id, task.get("description", ""), attempt)
        token = task.get("token")
        if self._store.start_task_logged(execution_id, task_id, attempt, now, token, key, event):
            status = {"status": TaskStatus.RUNNING, "attemptStartedAt": now, "released": token}
            return {**task, "startedAt": task.get("startedAt", now), **status}
        started = self._store.start_task(execution_id, task_id, attempt, now, token)
        if started is not None:
            self._store.record_task_running(execution_id, task_id)
            self._store.append_event(execution_id, key, event, wait=False)
        return started

    def _time_budget(self, started: Item, deadline: Any) -> float:
        """The attempt's timeoutSeconds, cut to what is left before the execution's deadline."""
        timeout = float(started.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        if deadline is not None:
            timeout = min(timeout, max(0.0, (int(deadline) - self._now()) / 1000))
        return timeout

    def _execute(self, execution_id: str, started: Item, attempt: int, timeout: float) -> _Result | _Failure:
        """Run the kind: its result as redacted JSON within MAX_RESULT_BYTES, or why it failed
        (redacted). Redacted here, where the attempt's resolved secrets are known: nothing written
        after this point — task item, events, webhooks, EventBridge — ever needs them.

        The attempt's live output is closed before this returns: written out on success (the last
        delta comes before the outcome), abandoned otherwise (a timed-out thread runs on, mute)."""
        task_id = int(started["taskId"])
        # Read before the kind runs, outside the handler of the kind's own failures below: a store
        # error here (a throttle botocore gave up on) is the Run's to retry, not the task's failure.
        call = self._kind_call(execution_id, started)
        holder: list[RunContext] = []
        output = attempt_emitter(
            self._store, execution_id, task_id, attempt, lambda: self._redactor(holder[0]), self.coalescing
        )
        ctx = RunContext(execution_id, task_id, attempt, time.monotonic() + timeout, output=output)
        holder.append(ctx)
        try:
            result = self._run_with_timeout(call, ctx, timeout)
            streamed = output.finish()
            if isinstance(result, str) and output.raw and result == output.raw:
                # the text its deltas showed, redacted by the same redactor chunk by chunk: they
                # add up to it (a second pass could redact a shape the window did not see whole)
                text = json.dumps(streamed, ensure_ascii=False)
            else:
                text = json.dumps(self._redactor(ctx).apply(result), ensure_ascii=False)
            size = len(text.encode())
            if size > MAX_RESULT_BYTES:
                raise TaskFailed(f"the result is {size} bytes; the limit is {MAX_RESULT_BYTES}")
        except TaskFailed as exc:
            output.abandon()
            reason = Reason.TIMEOUT if isinstance(exc, _Timeout) else Reason.ERROR
            return _Failure(self._redactor(ctx).text(str(exc)), reason)
        except Exception as exc:  # user-level failure of the kind: the task fails, not the run
            output.abandon()
            redactor = self._redactor(ctx)
            # the traceback is logged redacted with the attempt's secrets (the log records'
            # own redaction knows only shapes)
            log.error(
                "task %s of %s raised: %s",
                started["taskId"],
                execution_id,
                redactor.text(traceback.format_exc()),
            )
            return _Failure(redactor.text(f"{type(exc).__name__}: {exc}"), Reason.ERROR)
        return _Result(text, size)

    def _redactor(self, ctx: RunContext) -> Redactor:
        return self._store.redactor.with_values(ctx.secrets)

    def _kind_call(self, execution_id: str, task: Item) -> _KindCall:
        params = json.loads(task["paramsJson"])
        deps = [int(d) for d in task.get("dependencies", [])]
        wanted = set(deps) | {ref for _, ref in refs_in_value(params)}
        results = self._store.get_results(execution_id, sorted(wanted))
        return _KindCall(str(task["action"]), params, {d: results.get(d) for d in deps}, results)

    def _run_with_timeout(self, call: _KindCall, ctx: RunContext, timeout: float) -> Any:
        future = _TASK_POOL.submit(run_kind, call.action, call.params, call.inputs, call.results, ctx)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise _Timeout(f"timed out after {timeout:g}s (timeoutSeconds)") from None

    def _record_result(
        self, execution_id: str, started: Item, attempt: int, result: _Result, meta: Item
    ) -> Finished:
        task_id = int(started["taskId"])
        fields: dict[str, Any] = {"resultBytes": result.size}
        if len(result.text) <= INLINE_RESULT_CHARS:
            fields["resultJson"] = result.text
        else:
            # Chunks under this run's own id: another invocation running the same attempt (a
            # duplicate delivery, a retried Run still going) writes its — possibly different —
            # result beside them, never over the chunks of the result that was recorded.
            fields["resultRun"] = uuid.uuid4().hex[:16]
            fields["resultChunks"] = self._store.put_result_chunks(
                execution_id, task_id, result.text, fields["resultRun"]
            )
            fields["resultPreview"] = json.dumps(
                previews.preview(result.text, result_url(execution_id, task_id))
            )
        finished = self.finish(
            execution_id, task_id, TaskStatus.COMPLETED, attempt=attempt, started=started, meta=meta, **fields
        )
        if "resultRun" in fields and finished.task.get("resultRun") != fields["resultRun"]:
            # another invocation finished the task first: our chunks are nobody's
            self._store.delete_result_chunks(
                execution_id, task_id, fields["resultRun"], fields["resultChunks"]
            )
        return finished

    def _after_failure(
        self, execution_id: str, started: Item, attempt: int, deadline: Any, failure: _Failure, meta: Item
    ) -> dict[str, Any] | Finished:
        """Retry while the policy has attempts left and the execution goes on (a ``retry``
        outcome); else the task fails."""
        task_id = int(started["taskId"])
        if failure.reason == Reason.TIMEOUT and deadline is not None and self._now() >= int(deadline):
            self._store.set_stopping(execution_id, Reason.TIMEOUT)
        policy = RetryPolicy.model_validate_json(str(started.get("retriesJson", '{"count": 0}')))
        fresh = self._store.get_meta(execution_id)
        if (
            attempt <= policy.count
            and fresh["status"] == ExecutionStatus.RUNNING
            and not fresh.get("stopping")
        ):
            wait = policy.wait_seconds(attempt)
            if self._store.retry_task(execution_id, task_id, attempt, failure.error) is not None:
                self._store.append_event(
                    execution_id,
                    f"substep.failed#{task_id}#{attempt}",
                    ev.substep_failed(
                        task_id,
                        failure.error,
                        self._now() - int(started["attemptStartedAt"]),
                        attempt=attempt,
                        reason=failure.reason,
                        retry_in_seconds=wait,
                    ),
                    wait=False,
                )
            return retry_outcome(task_id, attempt, wait)
        return self.finish(
            execution_id,
            task_id,
            TaskStatus.FAILED,
            attempt=attempt,
            started=started,
            meta=meta,
            error=failure.error,
            reason=failure.reason,
        )
