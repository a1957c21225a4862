"""Hostile input against every REST route (the real Chalice routes, store and state machine):
whatever arrives — random JSON, near-valid jobs with one field replaced, deep nesting, control
characters, huge bodies — the answer is a 2xx/4xx with a JSON error that says what to fix: never a
500, never a stack trace, and nothing is stored for a refused request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client
from hypothesis import given
from hypothesis import strategies as st

from tests.support.jobs import echo
from tests.support.strategies import HOSTILE, TEXT

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["originalRequest", "tasks", "failurePolicy", "maxConcurrency", "timeoutSeconds", "extra"]
TASK_FIELDS = ["id", "description", "action", "params", "dependencies", "retries", "timeoutSeconds"]


def newest(services) -> list[str]:
    return [e["executionId"] for e in services.store.list_executions(5)]


def assert_clean(reply: Any, *allowed: int) -> dict[str, Any]:
    assert reply.status_code in allowed, (reply.status_code, reply.body[:500])
    body = json.loads(reply.body)
    text = json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text
    if reply.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
    return dict(body)


def post(client: Client, path: str, raw: bytes | str) -> Any:
    return client.http.post(path, headers={"content-type": "application/json"}, body=raw)


@HOSTILE
@given(body=JSON)
def test_random_json_is_refused_cleanly_and_stores_nothing(client, services, body):
    before = newest(services)
    reply = post(client, "/api/v1/execute-dag", json.dumps(body))
    assert_clean(reply, 400)
    assert newest(services) == before


@HOSTILE
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_a_job_with_one_field_replaced_is_accepted_or_refused_cleanly(client, services, field, value):
    job: dict[str, Any] = {"originalRequest": "hostile", "tasks": [echo(1, "a"), echo(2, "b", [1])]}
    job[field] = value
    before = newest(services)
    body = assert_clean(post(client, "/api/v1/execute-dag", json.dumps(job)), 202, 400)
    if "executionId" not in body:
        assert newest(services) == before  # a refused job leaves nothing behind


@HOSTILE
@given(field=st.sampled_from(TASK_FIELDS), value=JSON)
def test_a_task_with_one_field_replaced_is_accepted_or_refused_cleanly(client, services, field, value):
    task = echo(2, "b", [1])
    task[field] = value
    before = newest(services)
    body = assert_clean(
        post(client, "/api/v1/execute-dag", json.dumps({"tasks": [echo(1, "a"), task]})), 202, 400
    )
    if "executionId" not in body:
        assert newest(services) == before


@pytest.fixture(scope="module")
def webhook_id(client) -> Iterator[str]:
    """A registered webhook, so the delivery-id parsing behind it is reached (nothing listens at its URL)."""
    body = {"url": "http://127.0.0.1:9/hook", "secret": "hostile-secret-0123456789"}
    created = assert_clean(post(client, "/api/v1/webhooks", json.dumps(body)), 201)
    yield str(created["webhookId"])
    client.http.delete(f"/api/v1/webhooks/{created['webhookId']}")


@HOSTILE
@given(text=TEXT)
def test_any_id_or_query_value_in_the_path_is_answered_cleanly(client, webhook_id, text):
    q = quote(text, safe="")
    for path in (
        f"/api/v1/dag-executions/{q}",
        f"/api/v1/dag-executions/{q}/result",
        f"/api/v1/dag-executions/{q}/tasks/{q}/result",
        f"/api/v1/dag-executions?limit={q}",
        f"/api/v1/webhooks/{q}",
        f"/api/v1/webhooks/{q}/deliveries?status={q}&limit={q}&after={q}&executionId={q}",
    ):
        assert_clean(client.http.get(path), 200, 400, 404)
    for path in (f"/api/v1/dag-executions/{q}/cancel", f"/api/v1/dag-executions/{q}/stream-token"):
        assert_clean(client.http.post(path), 400, 404, 409)
    for path in (
        f"/api/v1/webhooks/{q}/deliveries/{q}/replay",
        f"/api/v1/webhooks/{webhook_id}/deliveries/{q}/replay",
        f"/api/v1/webhooks/{webhook_id}/deliveries/dag-exec_x:{q}/replay",
        f"/api/v1/webhooks/{webhook_id}/deliveries/{q}:7/replay",
    ):
        assert_clean(client.http.post(path), 400, 404)
    if q:  # DELETE /api/v1/webhooks/ is the collection: no such route (405 from the router)
        assert_clean(client.http.delete(f"/api/v1/webhooks/{q}"), 404)


@pytest.mark.parametrize("seq", ["²", "٣", "1²", "-1", "+1", " 1", "1.0", "1e3", "0x1", "1" * 13, ""])
def test_a_delivery_seq_that_is_not_plain_digits_is_a_400(client, webhook_id, seq):
    reply = client.http.post(f"/api/v1/webhooks/{webhook_id}/deliveries/dag-exec_x:{quote(seq)}/replay")
    body = assert_clean(reply, 400)
    assert "<executionId>:<seq>" in body["error"] and "digits 0-9" in body["error"]


@pytest.mark.parametrize("depth", [100, 10_000, 200_000])
def test_deeply_nested_json_is_a_400_not_a_crash(client, services, depth):
    before = newest(services)
    raw = '{"tasks": ' + "[" * depth + "]" * depth + "}"
    for path in ("/api/v1/execute-dag", "/api/v1/webhooks"):
        reply = post(client, path, raw)
        body = assert_clean(reply, 400, 413)
        assert "nested" in body["error"] or "invalid" in body["error"] or "larger" in body["error"]
    assert newest(services) == before


def test_control_and_unicode_characters_survive_the_round_trip(client, services):
    text = 'naïve 🚀 \u202e\x01\x1f <script> \\ " \u0000 end'
    body = assert_clean(
        post(client, "/api/v1/execute-dag", json.dumps({"originalRequest": text, "tasks": [echo(1, text)]})),
        202,
    )
    snapshot = assert_clean(client.http.get(f"/api/v1/dag-executions/{body['executionId']}"), 200)
    assert snapshot["originalRequest"] == text


def test_ten_thousand_tasks_are_refused_with_the_documented_limit(client, services):
    before = newest(services)
    tasks = [echo(i, "x", [i - 1] if i > 1 else []) for i in range(1, 10_001)]
    body = assert_clean(post(client, "/api/v1/execute-dag", json.dumps({"tasks": tasks})), 400, 413)
    assert "1000" in json.dumps(body) or "larger than" in body["error"]
    assert newest(services) == before


def test_a_body_over_the_limit_is_a_413(client, services):
    before = newest(services)
    raw = json.dumps({"originalRequest": "x" * 1_100_000, "tasks": [echo(1, "a")]})
    assert_clean(post(client, "/api/v1/execute-dag", raw), 413)
    assert newest(services) == before
