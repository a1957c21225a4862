"""Every error the domain raises, in one place.

Adapters turn their clients' failures into these (a DynamoDB ``ConditionalCheckFailed`` into
``ExecutionExists``, a Step Functions refusal into ``StartFailed``, …); the HTTP surfaces ask
``chalicelib.http.errors`` which status each gets. Messages are written for the user: they say
what is wrong and, where it helps, what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import ExecutionStatus


class DagcastError(Exception):
    """Base class of every domain error."""


# --- the request --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a job is invalid: where (a path into the body) and what is wrong there."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidJob(DagcastError, ValueError):
    """A job that cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


class InvalidWebhook(DagcastError, ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidTypeFilter(DagcastError, ValueError):
    """``types=`` names no event type, or uses a pattern other than ``prefix.*``."""


class BadRequest(DagcastError, ValueError):
    """A request body or parameter that cannot be read (a resume point that is not a seq, a body
    that is not JSON, a limit out of range, …)."""


class InvalidCursor(BadRequest):
    """A list cursor that is not a ``nextCursor`` of the same search (changed, cut, other filters)."""


class IdempotencyKeyReused(DagcastError):
    """An Idempotency-Key sent again with another body: the first request is not repeated."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key[:80]!r} was used with another body within 24 hours; "
            "nothing was started: use a new key for a new job"
        )


class IdempotencyInProgress(DagcastError):
    """The first request with this Idempotency-Key is still creating its execution."""

    retry_after = 1

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with Idempotency-Key {key[:80]!r} is still being created; "
            "send it again in a moment to get its answer"
        )


class BodyTooLarge(DagcastError, ValueError):
    """A request body over the route's size limit."""


class MethodNotAllowed(DagcastError):
    """A route asked with a method it does not answer; ``allow`` lists the ones it does."""

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class NoRoute(DagcastError):
    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"no route {method} {path}")


# who is asking: stream tokens (one execution's events) and API keys (the REST API)


class TokenError(DagcastError):
    """A stream token that does not grant streaming the execution asked for."""


class TokenInvalid(TokenError):
    """No token, or one that is malformed, forged or expired: who is asking is not known."""


class TokenForAnotherExecution(TokenError):
    """A valid token, scoped to another execution: known, but not allowed this one."""

    def __init__(self) -> None:
        super().__init__("the stream token was issued for another execution")


class TokenForAnotherQuery(TokenError):
    """A valid token, but not for this many-run stream: issued for another ``tag`` query, or for
    one execution's stream (POST /api/v1/stream-tokens gives one for the query)."""

    def __init__(self) -> None:
        super().__init__(
            "the stream token was issued for another query; get one from POST /api/v1/stream-tokens"
        )


class ApiKeyMissing(DagcastError):
    def __init__(self) -> None:
        super().__init__("an API key is required: send 'Authorization: Bearer <key>' (or 'X-Api-Key: <key>')")


class ApiKeyInvalid(DagcastError):
    def __init__(self) -> None:
        super().__init__("the API key is not valid for this API (check DAGCAST_API_KEY)")


# how often: the caller may try again after ``retry_after`` seconds


class Throttled(DagcastError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Throttled):
    """More REST requests from one client than its rate allows."""

    def __init__(self, client: str, rate: float, burst: int, retry_after: int) -> None:
        super().__init__(
            f"too many requests from {client}: slow down (limit {rate:g}/s, bursts of {burst}); retry "
            "after the Retry-After seconds",
            retry_after,
        )


class TooManyStreams(Throttled):
    """More concurrent streams from one client, or for one execution, than this process allows."""


class QuotaExceeded(Throttled):
    """A tenant is at one of its quotas (chalicelib/tenants.py): the message names it. Nothing is
    queued: the caller tries again after Retry-After."""

    def __init__(self, tenant: str, quota: str, limit: float, retry_after: int) -> None:
        super().__init__(
            f"tenant {tenant!r} is at its quota {quota} ({limit:g}); nothing was started, retry after "
            "the Retry-After seconds",
            retry_after,
        )
        self.quota = quota


# what a request names that does not exist (ExecutionNotFound: the store's, below), or is turned off


class TaskNotFound(DagcastError):
    def __init__(self, execution_id: str, task_id: int) -> None:
        super().__init__(f"execution {execution_id} has no task {task_id}")


class NoTaskResult(DagcastError):
    """The task exists but has no result (yet, or ever: it failed, was skipped, …)."""

    def __init__(self, task_id: int, task_status: str) -> None:
        super().__init__(f"task {task_id} has no result (status: {task_status})")
        self.task_status = task_status


class NoFinalResult(DagcastError):
    """The execution has not completed (yet, or ever), so it has no final result."""

    def __init__(self, execution_status: str) -> None:
        super().__init__(f"no final result (status: {execution_status})")
        self.execution_status = execution_status


class WebhookNotFound(DagcastError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"no webhook with id {webhook_id!r}")


class DeliveryNotFound(DagcastError):
    def __init__(self, webhook_id: str, delivery_id: str) -> None:
        super().__init__(f"webhook {webhook_id} has no delivery {delivery_id!r}")


class TooManyWebhooks(DagcastError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"there are already {limit} webhooks (the limit); delete one first")


class StreamTokensOff(DagcastError):
    def __init__(self) -> None:
        super().__init__("stream tokens are not used: auth is off (DAGCAST_AUTH=off)")


class WebhooksOff(DagcastError):
    def __init__(self) -> None:
        super().__init__(
            "webhooks are off: set DAGCAST_WEBHOOK_KMS_KEY (the KMS key that encrypts their secrets)"
        )


# --- the store ----------------------------------------------------------------------------------


class StoreError(DagcastError):
    """The store could not do what was asked (the table is unavailable, throttled, …)."""


class ExecutionNotFound(StoreError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id {execution_id!r}")
        self.execution_id = execution_id


class ExecutionExists(StoreError):
    pass


class AppendContention(StoreError):
    """Too many concurrent writers kept taking the next seq; the caller's retry will try again."""


# --- orchestration ------------------------------------------------------------------------------


class StartFailed(DagcastError):
    """The execution was stored but Step Functions refused to start it."""


class StopFailed(DagcastError):
    """Step Functions did not stop an execution (it had ended, is unknown, or the call failed)."""


class AlreadyFinished(DagcastError):
    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id} has already finished ({status}); nothing to cancel")
        self.status = status


class ExecutionRunning(DagcastError):
    """A rerun or a deletion of an execution that has not finished yet."""

    def __init__(self, execution_id: str, what: str) -> None:
        super().__init__(
            f"execution {execution_id} is still running; {what} once it has finished (or cancel it)"
        )
        self.status = str(ExecutionStatus.RUNNING)


class NothingToRerun(DagcastError):
    """A rerun from failure of an execution every task of which completed."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"every task of execution {execution_id} completed: nothing to rerun from failure; name the "
            'tasks to run again: {"tasks": [ids]}'
        )


class TaskFailed(DagcastError):
    """The task ran and failed; the message is shown to users as the task's error."""


# --- approvals ----------------------------------------------------------------------------------


class NotAnApproval(DagcastError):
    """A decision was sent for a task of another kind."""

    def __init__(self, execution_id: str, task_id: int, action: str) -> None:
        super().__init__(
            f"task {task_id} of {execution_id} is not an approval (its action is {action!r});"
            " only approval tasks take decisions"
        )


class NotAwaitingDecision(DagcastError):
    """The approval task does not wait for a decision now: not yet (its dependencies run), or no
    longer (the execution ended, the task timed out). ``status``: the task's, or the execution's."""

    def __init__(self, task_id: int, status: str, why: str) -> None:
        super().__init__(f"task {task_id} is not waiting for a decision: {why}")
        self.status = status


class AlreadyDecided(DagcastError):
    """A second decision for one approval task; ``decision`` is the first one."""

    def __init__(self, task_id: int, decision: dict[str, object]) -> None:
        verdict = "approved" if decision.get("approve") else "rejected"
        super().__init__(f"task {task_id} was already decided ({verdict}); a decision is final")
        self.decision = decision
