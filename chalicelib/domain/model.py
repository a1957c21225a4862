"""The words an execution's state is written in: statuses, reasons, policies, and the clock.

Every status a table item, an event, an API answer or the CLI shows is a member of an enum here;
no other module spells one as a bare string (tests/unit/test_code_shape.py looks for them). The
enums are ``StrEnum``s so they are the strings on the wire and in DynamoDB: ``json.dumps``,
boto3's serializer and pydantic all see a ``str``, and ``TaskStatus.COMPLETED == "completed"``.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Final


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    WAITING = "waiting"  # registered, dependencies not all done (or not yet registered)
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; the next one waits in the state machine's Backoff
    # an approval task parked on its decision token: counted as waiting, holds no maxConcurrency slot
    AWAITING_DECISION = "awaiting_decision"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not run: the execution was stopping (failFast) or past its deadline
    CANCELLED = "cancelled"  # not run: the execution was cancelled (shown, never stored on a task)


# An execution in one of these has ended; nothing is appended after its terminal event.
FINISHED_EXECUTION_STATUSES: Final = frozenset(ExecutionStatus) - {ExecutionStatus.RUNNING}

# A task in one of these has its final outcome; it never changes again.
FINISHED_TASK_STATUSES: Final = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)
# A task in one of these has not started its current attempt (cancel shows them as cancelled).
NOT_STARTED_TASK_STATUSES: Final = frozenset(
    {TaskStatus.WAITING, TaskStatus.RETRYING, TaskStatus.AWAITING_DECISION}
)


class Reason(StrEnum):
    """Why a task or an execution did not complete (``reason`` on events and views)."""

    ERROR = "error"  # the task ran and failed
    TIMEOUT = "timeout"  # the attempt or the execution ran out of time
    UPSTREAM = "upstream"  # under ``continue``: a dependency did not complete
    SKIPPED = "skipped"  # failFast: another task failed first
    CANCELLED = "cancelled"
    TASK_FAILED = "taskFailed"  # an execution failed because a task did
    START_FAILED = "startFailed"  # Step Functions refused to start the execution
    INTERNAL = "internal"  # the state machine itself failed (a Lambda that kept crashing, …)
    ABORTED = "aborted"  # Step Functions stopped the execution, not dagcast's cancel (console, CLI)
    REJECTED = "rejected"  # an approval task was rejected by a person (POST …/decision)


class FailurePolicy(StrEnum):
    FAIL_FAST = "failFast"
    CONTINUE = "continue"


class StepAnswer(StrEnum):
    """``status`` of run_task's answer that the state machine's ``Retry?`` Choice reads."""

    RETRY = "retry"
    AWAIT_DECISION = "awaitDecision"  # an approval task: park on AwaitDecision for waitSeconds


class SfnStatus(StrEnum):
    """A Step Functions execution's status, as DescribeExecution and EventBridge spell it: the
    ones that end it without Finalize are what the reconcile path handles."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"


# Ends in which Finalize may not have run: the EventBridge rule (app.py) and the local stack watch these.
SFN_ENDED_WITHOUT_FINALIZE: Final = (SfnStatus.TIMED_OUT, SfnStatus.ABORTED, SfnStatus.FAILED)


class DeliveryStatus(StrEnum):
    """A webhook delivery's state."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


# What an execution id may hold (a regex character class): the id of a job, the webhook filter's
# executionId and the replay route's check all use it.
EXECUTION_ID_CHARS: Final = "A-Za-z0-9_.:-"

# META's ``timeoutFrom`` when the execution's deadline is the stage's ceiling (the job set no timeoutSeconds).
TIMEOUT_FROM_CEILING: Final = "ceiling"
# What a rerun runs again unless it names tasks: every task that did not complete.
RERUN_FROM_FAILED: Final = "failed"

# The task kind a person decides (POST …/tasks/{taskId}/decision) instead of code.
APPROVAL_ACTION: Final = "approval"
# How long the approvals of one job may wait for their decisions, together (Step Functions' callback
# waits may last a year; a week keeps a forgotten approval from parking an execution for long).
MAX_DECISION_SECONDS: Final = 604_800

DEFAULT_TIMEOUT_SECONDS: Final = 300  # a task attempt's timeoutSeconds when the job gives none


def now_ms() -> int:
    """Wall-clock epoch milliseconds: every timestamp stored, sent or compared."""
    return int(time.time() * 1000)


# An error message is for people: its first 4,096 characters say what went wrong. Kept whole, a
# task's error (a provider's answer, a traceback of CJK text) could push the task item and the
# execution's META, which keeps the first one, past DynamoDB's 400 KB item limit.
ERROR_CHARS: Final = 4_096


def cut_error(message: str) -> str:
    """``message`` within ERROR_CHARS, saying how much was cut."""
    if len(message) <= ERROR_CHARS:
        return message
    return f"{message[:ERROR_CHARS]}… ({len(message) - ERROR_CHARS:,} more characters)"
