"""Stream tokens, redaction of secrets, and the SSE request parsing (filters, resume points, limits)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from chalicelib.domain.errors import (
    BadRequest,
    TokenError,
    TokenForAnotherExecution,
    TokenInvalid,
    TooManyStreams,
)
from chalicelib.domain.events import (
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    HEARTBEAT,
    SUBSTEP_COMPLETED,
    SUBSTEP_STARTED,
)
from chalicelib.domain.typefilter import TypeFilter
from chalicelib.http.errors import answer_for
from chalicelib.redact import REDACTED, Redactor
from chalicelib.stream.auth import TokenSigner, redact_query
from chalicelib.stream.endpoint import resume_point
from chalicelib.stream.limits import Limits

SECRET = "s" * 32


def status(exc: Exception) -> int:
    answer = answer_for(exc)
    assert answer is not None, exc
    return answer.status


def test_a_token_grants_its_execution_until_it_expires():
    signer = TokenSigner(SECRET, ttl_seconds=60)
    issued = signer.issue("dag-exec_a", now=1000)
    assert issued.expires_at == 1060
    signer.verify(issued.token, "dag-exec_a", now=1059)
    with pytest.raises(TokenInvalid) as expired:
        signer.verify(issued.token, "dag-exec_a", now=1060)
    assert status(expired.value) == 401 and "expired" in str(expired.value)
    answer = answer_for(expired.value)
    assert answer is not None and answer.headers == {"WWW-Authenticate": 'Bearer realm="dagcast"'}
    with pytest.raises(TokenForAnotherExecution) as other:
        signer.verify(issued.token, "dag-exec_b", now=1000)
    assert status(other.value) == 403 and isinstance(other.value, TokenError)


@pytest.mark.parametrize("token", [None, "", "garbage", "v1.a.b", "v2.x.y"])
def test_missing_or_malformed_tokens_are_401(token):
    with pytest.raises(TokenInvalid) as info:
        TokenSigner(SECRET).verify(token, "dag-exec_a")
    assert status(info.value) == 401


def test_a_tampered_token_is_401():
    signer = TokenSigner(SECRET)
    token = signer.issue("dag-exec_a").token
    forged = TokenSigner("another-secret-0123456789").issue("dag-exec_a").token
    version, payload, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_payload = signer.issue("dag-exec_b").token.split(".")[1]  # a's signature on b's claims
    for bad in (forged, f"{version}.{payload}.{flipped}", f"{version}.{other_payload}.{signature}"):
        with pytest.raises(TokenInvalid, match="signature"):
            signer.verify(bad, "dag-exec_a")


def test_short_secrets_are_refused():
    with pytest.raises(ValueError):
        TokenSigner("short")


def test_tokens_are_redacted_from_log_lines():
    line = "GET /api/v1/dag-executions/x/events?since=0&token=v1.abc.def HTTP/1.1"
    assert redact_query(line) == "GET /api/v1/dag-executions/x/events?since=0&token=[REDACTED] HTTP/1.1"


def test_secret_looking_keys_are_redacted_at_any_depth():
    r = Redactor(extra_keys=["ssn"])
    value = {
        "password": "p",
        "db": {"DB_PASSWORD": "p", "host": "h", "users": [{"apiKey": "k", "name": "n"}]},
        "Authorization": "Bearer x",
        "x-api-key": "k",
        "github_token": "t",
        "usage": {"total_tokens": 12},
        "customer_ssn": "123",
        "text": "password=hunter2",
    }
    assert r.apply(value) == {
        "password": REDACTED,
        "db": {"DB_PASSWORD": REDACTED, "host": "h", "users": [{"apiKey": REDACTED, "name": "n"}]},
        "Authorization": REDACTED,
        "x-api-key": REDACTED,
        "github_token": REDACTED,
        "usage": {"total_tokens": 12},
        "customer_ssn": REDACTED,
        "text": "password=[REDACTED]",  # free text is redacted by shape too (issue 19)
    }


def request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "query_string": query.encode(), "headers": raw})


def test_resume_point_header_wins_over_query():
    assert resume_point(request()) is None
    assert resume_point(request("since=0")) == 0
    assert resume_point(request("lastEventId=7")) == 7
    assert resume_point(request("since=0", {"Last-Event-ID": "12"})) == 12


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "", "9" * 16])
def test_bad_resume_points_are_rejected(bad):
    with pytest.raises(BadRequest, match="non-negative integer"):
        resume_point(request(headers={"Last-Event-ID": bad}))


@pytest.mark.parametrize("query", ["lastEventId=%C2%B9", "since=%D9%A3"])
def test_digits_that_are_not_ascii_are_rejected_not_a_500(query):
    """'¹' and '٣' pass str.isdigit() but not int()."""
    with pytest.raises(BadRequest, match="non-negative integer"):
        resume_point(request(query))


def test_type_filters():
    f = TypeFilter.parse("substep.completed, execution.*")
    assert f is not None
    assert f.matches(SUBSTEP_COMPLETED) and f.matches(EXECUTION_FAILED) and f.matches(EXECUTION_UPDATED)
    assert not f.matches(SUBSTEP_STARTED)
    assert TypeFilter.parse(None) is None


@pytest.mark.parametrize("bad", ["", ",", "substep.complete", "nope.*", "*", "sub*", HEARTBEAT])
def test_bad_type_filters_name_the_valid_types(bad):
    with pytest.raises(ValueError, match="types"):
        TypeFilter.parse(bad)


def test_limits_per_ip_and_per_execution():
    limits = Limits(per_ip=2, per_execution=3)
    limits.acquire("a", "e1")
    limits.acquire("a", "e1")
    with pytest.raises(TooManyStreams, match="from a") as per_ip:
        limits.acquire("a", "e1")
    answer = answer_for(per_ip.value)
    assert answer is not None and answer.status == 429 and answer.headers == {"Retry-After": "5"}
    limits.acquire("b", "e1")
    with pytest.raises(TooManyStreams, match="this execution"):
        limits.acquire("c", "e1")
    limits.release("a", "e1")
    limits.acquire("c", "e1")
    for ip in ("a", "b", "c"):
        limits.release(ip, "e1")
    assert limits.by_ip == {} and limits.by_execution == {}
