"""Idempotent submit (issue 22, item 1): ``POST /api/v1/execute-dag`` with an ``Idempotency-Key``.

The same key and body (as canonical JSON) within 24 hours answer the first answer again (202, the
same executionId, a fresh stream token, nothing new started); another body is a 422; a key whose
first request is still creating its execution is a 409; keys are per scope (the tenant)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import IdempotencyInProgress, StartFailed
from chalicelib.http import api
from chalicelib.orchestration import idempotent
from chalicelib.orchestration.idempotent import IdempotentSubmit
from chalicelib.persistence.keys import idempotency_pk
from tests.functional.conftest import echo, wait_for_end


def _post(client, body: Any, key: str | None, raw: str | None = None):
    headers = {"content-type": "application/json", "host": "127.0.0.1:8000"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.http.post("/api/v1/execute-dag", headers=headers, body=raw or json.dumps(body))


def _listed(services) -> list[str]:
    return [m["executionId"] for m in services.store.list_executions(100)]


def _executions_started() -> int:
    sfn = boto3.client("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    return sum(len(sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]) for m in machines)


def test_the_same_key_and_body_answer_the_first_answer_and_start_nothing(client, services):
    key = str(uuid.uuid4())
    job = {"originalRequest": "once", "tasks": [echo(1, "a"), echo(2, "b", [1])], "tags": ["x"]}
    first = _post(client, job, key)
    assert first.status_code == 202
    eid = first.json_body["executionId"]
    wait_for_end(services, eid)
    listed, started = _listed(services), _executions_started()
    # the same JSON value, written otherwise: other spacing, other key order
    again = _post(client, None, key, raw=json.dumps(dict(reversed(list(job.items()))), indent=3))
    assert again.status_code == 202
    assert again.json_body["executionId"] == eid
    assert again.json_body["status"] == first.json_body["status"]
    assert again.json_body["statusUrl"] == first.json_body["statusUrl"]
    assert again.json_body["streamToken"] and "streamTokenExpiresAt" in again.json_body
    assert again.json_body["eventsUrl"].endswith(f"/{eid}/events?token={again.json_body['streamToken']}")
    assert _listed(services) == listed and _executions_started() == started  # nothing new
    assert len(services.store.events_after(eid, 0)) == len(wait_for_end(services, eid))


def test_without_a_key_every_post_is_a_new_execution(client, services):
    job = {"tasks": [echo(1, "a")]}
    assert (
        _post(client, job, None).json_body["executionId"] != _post(client, job, None).json_body["executionId"]
    )


def test_the_same_key_with_another_body_is_a_422_that_says_so_and_starts_nothing(client, services):
    key = str(uuid.uuid4())
    eid = _post(client, {"tasks": [echo(1, "a")]}, key).json_body["executionId"]
    listed = _listed(services)
    reply = _post(client, {"tasks": [echo(1, "b")]}, key)
    assert reply.status_code == 422
    assert "another body" in reply.json_body["error"] and key in reply.json_body["error"]
    assert _listed(services) == listed
    wait_for_end(services, eid)


def test_while_the_first_is_being_created_the_key_is_a_409_that_says_when_to_retry(client, services):
    key = str(uuid.uuid4())
    body = {"tasks": [echo(1, "a")]}
    # the first request has claimed the key and is writing its execution right now
    services.store.idempotency.claim(
        key, api._canonical_hash(body), "dag-exec_creating", services.orchestrator._now()
    )
    listed = _listed(services)
    reply = _post(client, body, key)
    assert reply.status_code == 409 and reply.json_body["retryAfterSeconds"] == 1
    assert reply.headers["Retry-After"] == "1"
    assert "still being created" in reply.json_body["error"]
    assert _listed(services) == listed


def test_a_claim_left_by_a_request_that_died_is_taken_over_or_completed(services, monkeypatch):
    """The API function runs 60 s at most: a claim still creating after STALE_CLAIM_MS was left by a
    request that died. If its execution was stored, the key answers with it; if not, a retry
    creates the execution (once: the take-over is conditional)."""
    job = parse_job({"tasks": [echo(1, "a")]})
    once = IdempotentSubmit(services.store.idempotency, services.orchestrator, services.store.get_meta)
    now = services.orchestrator._now()
    lost = str(uuid.uuid4())
    services.store.idempotency.claim(lost, "h", "dag-exec_never-stored", now - idempotent.STALE_CLAIM_MS - 1)
    eid = once.submit(job, lost, "h")
    assert eid != "dag-exec_never-stored" and services.store.get_meta(eid)["status"]
    assert once.submit(job, lost, "h") == eid
    stored = str(uuid.uuid4())
    done = services.orchestrator.submit(job)
    services.store.idempotency.claim(stored, "h", done, now - idempotent.STALE_CLAIM_MS - 1)
    assert once.submit(job, stored, "h") == done
    fresh = str(uuid.uuid4())
    services.store.idempotency.claim(fresh, "h", "dag-exec_busy", now)
    with pytest.raises(IdempotencyInProgress):
        once.submit(job, fresh, "h")
    for e in (eid, done):
        wait_for_end(services, e)


def test_a_first_request_that_fails_frees_its_key_for_the_retry(services, monkeypatch):
    job = parse_job({"tasks": [echo(1, "a")]})
    once = IdempotentSubmit(services.store.idempotency, services.orchestrator, services.store.get_meta)
    key = str(uuid.uuid4())

    def refuse(*args: Any) -> str:
        raise StartFailed("Step Functions said no")

    with monkeypatch.context() as m:
        m.setattr(services.orchestrator._state_machine, "start_execution", refuse)
        with pytest.raises(StartFailed):
            once.submit(job, key, "h")
    eid = once.submit(job, key, "h")
    assert services.store.get_meta(eid)
    wait_for_end(services, eid)


def test_keys_are_per_tenant(services):
    body = {"tasks": [echo(1, "a")]}
    key = str(uuid.uuid4())
    raw = json.dumps(body).encode()
    a = api.execute_dag(services, raw, "", key, tenant="tenant-a")[1]["executionId"]
    b = api.execute_dag(services, raw, "", key, tenant="tenant-b")[1]["executionId"]
    assert a != b and api.execute_dag(services, raw, "", key, tenant="tenant-a")[1]["executionId"] == a
    raw_item = boto3.client("dynamodb").get_item(
        TableName=services.store._table,
        Key={"PK": {"S": idempotency_pk(key, "tenant-b")}, "SK": {"S": "IDEM"}},
    )
    assert raw_item["Item"]["executionId"]["S"] == b
    assert int(raw_item["Item"]["expiresAt"]["N"]) > services.orchestrator._now() // 1000 + 86_000
    for e in (a, b):
        wait_for_end(services, e)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "é"])
def test_a_key_that_is_not_printable_ascii_is_a_400_and_nothing_is_stored(client, services, key):
    listed = _listed(services)
    reply = _post(client, {"tasks": [echo(1, "a")]}, key)
    assert reply.status_code == 400 and "Idempotency-Key" in reply.json_body["error"]
    assert _listed(services) == listed


def test_an_invalid_job_with_a_key_is_a_400_and_does_not_claim_the_key(client, services):
    key = str(uuid.uuid4())
    assert _post(client, {"tasks": [{"id": 1, "action": "nope"}]}, key).status_code == 400
    reply = _post(client, {"tasks": [echo(1, "fixed")]}, key)
    assert reply.status_code == 202
    wait_for_end(services, reply.json_body["executionId"])
