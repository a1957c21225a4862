"""The one map from domain errors to HTTP answers (chalicelib/http/errors.py): every error a
client can cause has its status, body and headers here, and a new domain error cannot slip past
the map unnoticed."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from chalicelib.domain import errors as domain
from chalicelib.http.errors import INTERNAL_ERROR, RULES, answer_for

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dagcast"'}

# Errors that are not the caller's to fix: the surfaces answer them as a crash (500, logged).
NOT_ANSWERED = {
    domain.DagcastError,
    domain.StoreError,
    domain.ExecutionExists,
    domain.AppendContention,
    domain.TaskFailed,
    domain.StopFailed,  # cancel logs it: the execution is cancelled in the table either way
    domain.TokenError,  # a base: verify raises one of its two subclasses
}


def test_every_domain_error_is_mapped_or_named_as_not_the_callers():
    classes = {
        c
        for _, c in inspect.getmembers(domain, inspect.isclass)
        if issubclass(c, domain.DagcastError) and c.__module__ == domain.__name__
    }
    answered = {c for c in classes if any(base in RULES for base in c.__mro__)}
    assert classes - answered == NOT_ANSWERED, "map the new error in chalicelib/http/errors.py"


@pytest.mark.parametrize(
    ("error", "status", "body", "headers"),
    [
        (domain.BadRequest("since must be a seq"), 400, {"error": "since must be a seq"}, {}),
        (domain.InvalidTypeFilter("types: 'x'"), 400, {"error": "types: 'x'"}, {}),
        (
            domain.InvalidJob([domain.Problem("tasks[0].id", "missing")]),
            400,
            {
                "error": "the job is invalid (1 problem); nothing was started",
                "problems": [{"path": "tasks[0].id", "message": "missing"}],
            },
            {},
        ),
        (
            domain.InvalidWebhook(["url: not https"]),
            400,
            {"error": "the webhook is invalid; nothing was saved", "problems": ["url: not https"]},
            {},
        ),
        (domain.BodyTooLarge("too big"), 413, {"error": "too big"}, {}),
        (domain.MethodNotAllowed("use GET", allow="GET"), 405, {"error": "use GET"}, {"Allow": "GET"}),
        (domain.TokenInvalid("the stream token is malformed"), 401, None, CHALLENGE),
        (domain.ApiKeyMissing(), 401, None, CHALLENGE),
        (domain.ApiKeyInvalid(), 401, None, CHALLENGE),
        (
            domain.TokenForAnotherExecution(),
            403,
            {"error": "the stream token was issued for another execution"},
            {},
        ),
        (domain.RateLimited("1.2.3.4", 0.5, 2, 3), 429, None, {"Retry-After": "3"}),
        (domain.TooManyStreams("too many", 5), 429, {"error": "too many"}, {"Retry-After": "5"}),
        (domain.NoRoute("GET", "/x"), 404, {"error": "no route GET /x"}, {}),
        (domain.ExecutionNotFound("e1"), 404, {"error": "no execution with id 'e1'"}, {}),
        (domain.TaskNotFound("e1", 9), 404, {"error": "execution e1 has no task 9"}, {}),
        (
            domain.NoTaskResult(2, "failed"),
            404,
            {"error": "task 2 has no result (status: failed)", "taskStatus": "failed"},
            {},
        ),
        (
            domain.NoFinalResult("running"),
            404,
            {"error": "no final result (status: running)", "executionStatus": "running"},
            {},
        ),
        (domain.WebhookNotFound("wh_1"), 404, {"error": "no webhook with id 'wh_1'"}, {}),
        (domain.DeliveryNotFound("wh_1", "e1:1"), 404, {"error": "webhook wh_1 has no delivery 'e1:1'"}, {}),
        (domain.StreamTokensOff(), 404, None, {}),
        (
            domain.AlreadyFinished("e1", "completed"),
            409,
            {
                "error": "execution e1 has already finished (completed); nothing to cancel",
                "status": "completed",
            },
            {},
        ),
        (domain.TooManyWebhooks(100), 409, None, {}),
        (domain.StartFailed("Step Functions refused"), 503, {"error": "Step Functions refused"}, {}),
        (domain.WebhooksOff(), 503, None, {}),
    ],
)
def test_each_error_gets_its_status_body_and_headers(
    error: Exception, status: int, body: dict[str, Any] | None, headers: dict[str, str]
):
    answer = answer_for(error)
    assert answer is not None
    assert answer.status == status
    expected = body if body is not None else {"error": str(error)}
    assert list(answer.body.items()) == list(expected.items())  # key order too: it is the JSON's
    assert answer.headers == headers


def test_errors_that_are_not_the_callers_get_no_answer_of_their_own():
    for error in (domain.StoreError("throttled"), domain.ExecutionExists("e1"), RuntimeError("bug")):
        assert answer_for(error) is None
    assert INTERNAL_ERROR.status == 500
    assert INTERNAL_ERROR.body == {"error": "internal error; the request was not completed"}
