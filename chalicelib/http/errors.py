"""THE map from domain errors (chalicelib/domain/errors.py) to HTTP answers.

An answer is a status, a JSON body ``{"error": "<what is wrong, what to do>", ...}`` and the
headers its status calls for (``WWW-Authenticate`` on 401, ``Retry-After`` on 429, ``Allow`` on
405). The Chalice routes (``api.respond``), the front gate (app.py's middleware) and the SSE
endpoint (chalicelib/stream/endpoint.py) all ask ``answer_for``; no other module chooses a status
for an error. Each surface serialises the body and adds its own CORS headers.

An error missing from ``RULES`` is not the caller's to fix (the table is unavailable, a bug, …):
``answer_for`` gives None and the surface answers as it does for any crash: the REST routes with
``INTERNAL_ERROR`` (and a log line with the trace), the SSE endpoint by letting it reach the server.
Clients never see a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..domain.errors import (
    AlreadyDecided,
    AlreadyFinished,
    ApiKeyInvalid,
    ApiKeyMissing,
    BadRequest,
    BodyTooLarge,
    DagcastError,
    DeliveryNotFound,
    ExecutionNotFound,
    ExecutionRunning,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidJob,
    InvalidTypeFilter,
    InvalidWebhook,
    MethodNotAllowed,
    NoFinalResult,
    NoRoute,
    NotAnApproval,
    NoTaskResult,
    NotAwaitingDecision,
    NothingToRerun,
    StartFailed,
    StreamTokensOff,
    TaskNotFound,
    Throttled,
    TokenForAnotherExecution,
    TokenForAnotherQuery,
    TokenInvalid,
    TooManyWebhooks,
    WebhookNotFound,
    WebhooksOff,
)


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


INTERNAL_ERROR: Final = ErrorAnswer(500, {"error": "internal error; the request was not completed"})


def _message(exc: Any) -> dict[str, Any]:
    return {"error": str(exc)}


def _none(exc: Any) -> dict[str, str]:
    return {}


def _challenge(exc: Any) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="dagcast"'}


def _retry_after(exc: Throttled) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after)}


def _allow(exc: MethodNotAllowed) -> dict[str, str]:
    return {"Allow": exc.allow}


def _invalid_job(exc: InvalidJob) -> dict[str, Any]:
    count = len(exc.problems)
    return {
        "error": f"the job is invalid ({count} problem{'s' if count != 1 else ''}); nothing was started",
        "problems": [p.as_dict() for p in exc.problems],
    }


def _invalid_webhook(exc: InvalidWebhook) -> dict[str, Any]:
    return {"error": "the webhook is invalid; nothing was saved", "problems": exc.problems}


@dataclass(frozen=True)
class Rule:
    """How one error class is answered: ``body`` and ``headers`` read the error's fields."""

    status: int
    body: Callable[[Any], dict[str, Any]] = _message
    headers: Callable[[Any], dict[str, str]] = _none


# An error is answered by the rule of its class, or else of the nearest base class that has one.
RULES: Final[Mapping[type[DagcastError], Rule]] = {
    # the request cannot be read: fix it and send it again
    BadRequest: Rule(400),
    InvalidTypeFilter: Rule(400),
    InvalidJob: Rule(400, _invalid_job),
    InvalidWebhook: Rule(400, _invalid_webhook),
    BodyTooLarge: Rule(413),
    MethodNotAllowed: Rule(405, headers=_allow),
    # who is asking: unknown (401, with the scheme to use) or not allowed this (403)
    TokenInvalid: Rule(401, headers=_challenge),
    ApiKeyMissing: Rule(401, headers=_challenge),
    ApiKeyInvalid: Rule(401, headers=_challenge),
    TokenForAnotherExecution: Rule(403),
    TokenForAnotherQuery: Rule(403),
    # how often: try again after Retry-After seconds
    Throttled: Rule(429, headers=_retry_after),
    # what the request names does not exist, or is turned off in this deployment
    NoRoute: Rule(404),
    ExecutionNotFound: Rule(404),
    TaskNotFound: Rule(404),
    NoTaskResult: Rule(404, lambda e: {"error": str(e), "taskStatus": e.task_status}),
    NoFinalResult: Rule(404, lambda e: {"error": str(e), "executionStatus": e.execution_status}),
    WebhookNotFound: Rule(404),
    DeliveryNotFound: Rule(404),
    StreamTokensOff: Rule(404),
    # the state does not allow it
    AlreadyFinished: Rule(409, lambda e: {"error": str(e), "status": e.status}),
    ExecutionRunning: Rule(409, lambda e: {"error": str(e), "status": e.status}),
    NothingToRerun: Rule(409),
    TooManyWebhooks: Rule(409),
    NotAnApproval: Rule(409),
    NotAwaitingDecision: Rule(409, lambda e: {"error": str(e), "status": e.status}),
    AlreadyDecided: Rule(409, lambda e: {"error": str(e), "decision": e.decision}),
    IdempotencyInProgress: Rule(
        409,
        lambda e: {"error": str(e), "retryAfterSeconds": e.retry_after},
        lambda e: {"Retry-After": str(e.retry_after)},
    ),
    # understood, but it contradicts what was sent before
    IdempotencyKeyReused: Rule(422),
    # a service this one depends on refused, or is not configured
    StartFailed: Rule(503),
    WebhooksOff: Rule(503),
}


def answer_for(exc: BaseException) -> ErrorAnswer | None:
    """The answer to ``exc``, or None when it is not the caller's to fix (see the module doc)."""
    for cls in type(exc).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            return ErrorAnswer(rule.status, rule.body(exc), rule.headers(exc))
    return None
