"""Approval tasks: parked on a decision token until a person decides or their own timeout passes.

The state machine (infra/statemachine/dag.asl.json) releases an approval like any other task, but
Run does not run it: it answers ``awaitDecision`` with the seconds to wait, and AwaitDecision
(``lambda:invoke.waitForTaskToken`` → run_task with the token) parks it — the token stored on the
task, its status ``awaiting_decision``, ``substep.waiting`` appended. The dependency token is spent
by then, which is why the wait has a token, a state and a timeout of its own (up to 7 days; an
attempt's 840 s do not apply: nothing runs while a person thinks).

A decision finishes the task with one conditional write (the task must be ``awaiting_decision``), so
of two decisions, or a decision and the timeout, exactly one wins; the loser is told (409) or does
nothing. The engine then counts the task, announces it and releases its dependents, and sends the
decision token, which ends the child. If the sender dies in between, a repeated decision (409)
redoes those steps, and otherwise the child's timeout does (it finds the task finished).

Not here: the counting, events and releases of a finished task (engine.py), the route (http/api.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..domain import events as ev
from ..domain.errors import AlreadyDecided, NotAnApproval, NotAwaitingDecision, StoreError, TaskNotFound
from ..domain.model import APPROVAL_ACTION, ExecutionStatus, Reason, StepAnswer, TaskStatus, cut_error
from ..domain.templates import refs_in_value
from ..kinds import ApprovalParams, render_params
from ..persistence.table import Item
from .ports import OrchestrationStore

# The error AwaitDecision's timeout reaches record_failure with (the DecisionTimedOut Pass state).
DECISION_TIMED_OUT = "DecisionTimedOut"
MAX_DECISION_DATA_BYTES = 16_384  # the decision is the task's result: kept inline (≤ 32,768 chars)


class Decision(BaseModel):
    """The body of ``POST …/tasks/{taskId}/decision``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    approve: bool
    comment: str = Field(default="", max_length=2_000)
    data: JsonValue = None


class Decisions:
    def __init__(self, store: OrchestrationStore, clock: Callable[[], int]) -> None:
        self._store = store
        self._now = clock

    def wait_outcome(self, meta: Item, task: Item) -> dict[str, Any]:
        """What Run answers for an approval: park on AwaitDecision for ``waitSeconds`` — its
        timeoutSeconds, or less when the execution's deadline comes first."""
        return {
            "taskId": int(task["taskId"]),
            "status": StepAnswer.AWAIT_DECISION,
            "attempt": int(task.get("attempt", 1)),
            "waitSeconds": self._wait_seconds(meta, task),
        }

    def park(self, execution_id: str, task_id: int, token: str) -> dict[str, Any]:
        """AwaitDecision: store the token, mark the task awaiting its decision, say so (once)."""
        meta = self._store.get_meta(execution_id)
        task = self._store.get_task(execution_id, task_id)
        seconds = self._wait_seconds(meta, task)
        prompt = self._prompt(execution_id, task)
        deadline = self._now() + seconds * 1000
        parked = self._store.await_decision(execution_id, task_id, token, deadline, prompt)
        if parked is None:  # finished meanwhile (cancelled, timed out): nothing waits
            return {"taskId": task_id, "parked": False}
        self._store.append_event(
            execution_id,
            f"substep.waiting#{task_id}",
            ev.substep_waiting(
                task_id, str(parked.get("description", "")), prompt, seconds, int(parked["decisionDeadline"])
            ),
            wait=False,
        )
        return {"taskId": task_id, "parked": True}

    def decide(
        self, execution_id: str, task_id: int, decision: Decision, decided_by: Mapping[str, Any]
    ) -> Item:
        """Finish the approval task with ``decision``: completed (the decision is its result) or
        failed (reason ``rejected``, no retries). The task as finished; 4xx errors otherwise."""
        meta = self._store.get_meta(execution_id)  # ExecutionNotFound
        task = self._task(execution_id, task_id)
        if task["action"] != APPROVAL_ACTION:
            raise NotAnApproval(execution_id, task_id, str(task["action"]))
        self._check_waiting(meta, task)
        now = self._now()
        # Redacted as any result is (the decider names no secret: a digest's start).
        record = {
            **self._store.redactor.apply(decision.model_dump()),
            "decidedBy": dict(decided_by),
            "decidedAt": now,
        }
        text = json.dumps(record, ensure_ascii=False)
        if decision.approve:
            fields: dict[str, Any] = {"resultJson": text, "resultBytes": len(text.encode())}
            status = TaskStatus.COMPLETED
        else:
            said = self._store.redactor.text(decision.comment)
            error = cut_error("rejected" + (f": {said}" if said else ""))
            fields = {"error": error, "reason": Reason.REJECTED}
            status = TaskStatus.FAILED
        done = self._store.finish_task(
            execution_id, task_id, status, awaiting=True, finishedAt=now, decisionJson=text, **fields
        )
        if done is None:  # another decision, or the timeout, came first
            self._check_waiting(meta, self._task(execution_id, task_id))
            raise NotAwaitingDecision(task_id, TaskStatus.AWAITING_DECISION, "it changed meanwhile")
        return done

    def time_out(self, execution_id: str, task_id: int) -> Item:
        """AwaitDecision timed out: the task fails (reason ``timeout``) unless it was decided first.
        The task as stored after, either way."""
        task = self._task(execution_id, task_id)
        if self._store.get_meta(execution_id)["status"] != ExecutionStatus.RUNNING:
            return task  # cancelled: the task shows cancelled (in AWS the stop ended this wait)
        own = ApprovalParams.model_validate_json(str(task["paramsJson"])).timeoutSeconds
        done = self._store.finish_task(
            execution_id,
            task_id,
            TaskStatus.FAILED,
            finishedAt=self._now(),
            error=f"no decision in time: an approval waits {own}s (its timeoutSeconds) at most, and"
            " never past the execution's deadline",
            reason=Reason.TIMEOUT,
        )
        return done if done is not None else self._task(execution_id, task_id)

    # ------------------------------------------------------------------ internals

    def _task(self, execution_id: str, task_id: int) -> Item:
        try:
            return self._store.get_task(execution_id, task_id)
        except StoreError:
            raise TaskNotFound(execution_id, task_id) from None

    @staticmethod
    def _check_waiting(meta: Item, task: Item) -> None:
        """Raise unless ``task`` awaits its decision in a running execution."""
        task_id, status = int(task["taskId"]), str(task["status"])
        if "decisionJson" in task:
            raise AlreadyDecided(task_id, json.loads(str(task["decisionJson"])))
        if meta["status"] != ExecutionStatus.RUNNING:
            raise NotAwaitingDecision(task_id, str(meta["status"]), f"the execution is {meta['status']}")
        if status != TaskStatus.AWAITING_DECISION:
            why = {
                TaskStatus.WAITING: "it waits for its dependencies; decide once it is awaiting_decision",
            }.get(TaskStatus(status), f"its status is {status}")
            raise NotAwaitingDecision(task_id, status, why)

    def _wait_seconds(self, meta: Item, task: Item) -> int:
        own = ApprovalParams.model_validate_json(str(task["paramsJson"])).timeoutSeconds
        deadline = meta.get("deadlineAt")
        if deadline is None:
            return own
        return max(1, min(own, math.ceil((int(deadline) - self._now()) / 1000)))

    def _prompt(self, execution_id: str, task: Item) -> str:
        """The params' prompt with its ``{{N}}`` references filled in (as a kind's params are)."""
        params = json.loads(str(task["paramsJson"]))
        wanted = sorted({ref for _, ref in refs_in_value(params)})
        results = self._store.get_results(execution_id, wanted) if wanted else {}
        prompt = render_params(params, results).get("prompt", "")
        return self._store.redactor.text(prompt if isinstance(prompt, str) else json.dumps(prompt))
