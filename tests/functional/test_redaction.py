"""Redaction where text is written: a task's error and result (by shape, and by the values the task
resolved from references), the originalRequest and descriptions, the table items, and the header
rule (a literal credential is refused; a reference is resolved only when the task runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import InvalidJob
from chalicelib.http import api
from tests.functional.conftest import by_type, run_job
from tests.support.echo import EchoServer
from tests.support.jobs import task

LEAK = "sk-LEAKME123"


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    server = EchoServer().start()
    yield server.url
    server.stop()


def _table_text(execution_id: str) -> str:
    """Every item of the execution, as stored."""
    table = boto3.resource("dynamodb").Table("dagcast-functional")
    items = table.query(
        KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": f"EXEC#{execution_id}"}
    )
    return json.dumps(items["Items"], default=str)


def test_a_key_in_a_failing_url_is_not_streamed_in_substep_failed_or_execution_failed(services):
    """The issue's leak: an http task whose URL carries ?api_key=… and fails (nothing listens on
    port 9) streamed "GET http://127.0.0.1:9/v1?api_key=sk-LEAKME123: ConnectError…" in
    substep.failed and again in execution.failed (and kept it in the task and META items)."""
    url = f"http://127.0.0.1:9/v1?api_key={LEAK}&page=2"
    eid, events = run_job(services, {"tasks": [task(1, "http", {"url": url, "timeoutSeconds": 5})]})
    failed = by_type(events, "substep.failed")[1]
    assert events[-1]["type"] == "execution.failed"
    assert "api_key=[REDACTED]" in failed["error"] and "page=2" in failed["error"], failed["error"]
    assert LEAK not in json.dumps(events)
    assert LEAK not in json.dumps(services.orchestrator.snapshot(eid))
    stored = _table_text(eid)
    # the task item keeps the URL it runs with (paramsJson, docs/security.md); nothing else does
    assert stored.count(LEAK) == 1 and "paramsJson" in stored


def test_a_secret_a_task_resolved_is_redacted_from_its_result_and_its_error(
    services, echo_server, monkeypatch
):
    """The echo server sends the header back: the result (and, from /fail, the error) quote the
    resolved value under names that do not look secret — only the value tells."""
    secret = "resolved-0123456789-value"
    monkeypatch.setenv("REDACTION_API_KEY", secret)
    headers = {"X-Plain": "shown-in-clear", "X-Api-Key": {"env": "REDACTION_API_KEY"}}
    job = {
        "tasks": [
            task(1, "http", {"url": f"{echo_server}/ok", "headers": headers}),
            task(2, "http", {"url": f"{echo_server}/fail", "headers": headers}),
        ],
        "failurePolicy": "continue",
    }
    eid, events = run_job(services, job)
    done = by_type(events, "substep.completed")[1]
    assert done["result"]["body"]["headers"]["X-Api-Key"] == "[REDACTED]"  # by name
    assert done["result"]["body"]["headers"]["X-Plain"] == "shown-in-clear"
    failed = by_type(events, "substep.failed")[2]
    assert "answered 500" in failed["error"] and "[REDACTED]" in failed["error"]
    for where, text in {
        "events": json.dumps(events),
        "table": _table_text(eid),
        "task result": json.dumps(api.task_result(services, eid, "1")),
    }.items():
        assert secret not in text, where


def test_the_resolved_value_is_redacted_where_no_shape_would_find_it(services, echo_server, monkeypatch):
    """A reference sent in a header whose name looks harmless comes back under that name, in the
    result and in the error: only the attempt's resolved values find it."""
    secret = "plain-looking-9f8e7d6c5b"
    monkeypatch.setenv("PLAIN_API_KEY", secret)
    headers = {"X-Trace": {"env": "PLAIN_API_KEY"}}
    job = {
        "tasks": [
            task(1, "http", {"url": f"{echo_server}/ok", "headers": headers}),
            task(2, "http", {"url": f"{echo_server}/fail", "headers": headers}),
        ],
        "failurePolicy": "continue",
    }
    eid, events = run_job(services, job)
    result = by_type(events, "substep.completed")[1]["result"]
    assert result["body"]["headers"]["X-Trace"] == "[REDACTED]"
    assert "'X-Trace': '[REDACTED]'" in by_type(events, "substep.failed")[2]["error"]
    assert secret not in json.dumps(events) + _table_text(eid)


def test_original_request_and_descriptions_are_redacted_when_stored(services):
    job = {
        "originalRequest": "fetch https://bob:pa55word-xyz@example.com with Authorization: Bearer abcdefgh12345",
        "tasks": [{**task(1, "echo", {"text": "hi"}), "description": "call ?token=tok-999888777"}],
    }
    eid, events = run_job(services, job)
    text = json.dumps(events) + _table_text(eid) + json.dumps(api.get_execution(services, eid))
    for secret in ("pa55word-xyz", "abcdefgh12345", "tok-999888777"):
        assert secret not in text
    created = events[0]
    assert created["originalRequest"].startswith("fetch https://[REDACTED]@example.com")


def test_a_literal_credential_header_is_refused_with_a_pointer_to_references(services):
    for headers in (
        {"Authorization": "Bearer abcdefgh12345"},
        {"X-Api-Key": "k"},
        {"Cookie": "session=abc"},
        {"X-Custom": "Basic dXNlcjpwYXNzd29yZA=="},
    ):
        body = {"tasks": [task(1, "http", {"url": "https://example.com", "headers": headers})]}
        with pytest.raises(InvalidJob, match="give it as a reference"):
            parse_job(body)
        raw = json.dumps(body).encode()
        status, answer = api.respond(lambda: api.execute_dag(services, raw, "x"))  # noqa: B023
        assert status == 400 and "reference" in json.dumps(answer)
        assert "abcdefgh12345" not in json.dumps(answer) and "dXNlcjpwYXNzd29yZA" not in json.dumps(answer)


def test_a_header_reference_must_be_allowed_and_readable_at_submission(monkeypatch):
    monkeypatch.delenv("MISSING_API_KEY", raising=False)
    body = {
        "tasks": [task(1, "http", {"url": "https://x.test", "headers": {"A": {"env": "MISSING_API_KEY"}}})]
    }
    with pytest.raises(InvalidJob, match="MISSING_API_KEY is not set"):
        parse_job(body)
    body["tasks"][0]["params"]["headers"] = {"A": {"env": "DAGCAST_STREAM_SECRET"}}
    with pytest.raises(InvalidJob, match="reserved"):
        parse_job(body)
