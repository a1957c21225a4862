"""Every error the domain raises, in one place.

Adapters turn their clients' failures into these (a DynamoDB ``ConditionalCheckFailed`` into
``ExecutionExists``, a Step Functions refusal into ``StartFailed``, …); the HTTP surfaces ask
``chalicelib.http.errors`` which status each gets. Messages are written for the user: they say
what is wrong and, where it helps, what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    """A request parameter that cannot be read (a resume point that is not a seq, …)."""


class TokenError(DagcastError):
    """A stream token that does not grant access; ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


class TaskFailed(DagcastError):
    """The task ran and failed; the message is shown to users as the task's error."""
