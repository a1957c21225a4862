"""Webhooks end to end on the local stack: real receivers on 127.0.0.1 (flaky, down, slow), the
real stream poller and fan-out handler, the retry function, signatures, dead letters and replay."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from tests.functional.conftest import echo, fail, run_job
from tests.receiver import Receiver

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture(scope="module")
def client(services) -> Iterator[Client]:
    import app

    with Client(app.app) as c:
        yield c


def call(client: Client, method: str, path: str, body: Any = None) -> Any:
    kwargs: dict[str, Any] = {"headers": {"content-type": "application/json"}}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
    return getattr(client.http, method)(path, **kwargs)


@pytest.fixture
def hooks(client) -> Iterator[list[str]]:
    """Webhook ids created by a test; deleted afterwards so later tests' events do not reach them."""
    created: list[str] = []
    yield created
    for webhook_id in created:
        call(client, "delete", f"/api/v1/webhooks/{webhook_id}")


def register(client, hooks, receiver: Receiver, **extra: Any) -> str:
    reply = call(
        client, "post", "/api/v1/webhooks", {"url": receiver.url, "secret": receiver.secret, **extra}
    )
    assert reply.status_code == 201, reply.json_body
    hooks.append(reply.json_body["webhookId"])
    return str(reply.json_body["webhookId"])


def wait_for(check, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_register_list_get_delete_and_the_secret_is_never_returned(client, hooks, services):
    receiver = Receiver(SECRET).reserve_port()
    webhook_id = register(
        client, hooks, receiver, types=["substep.*", "execution.completed"], description="ci"
    )
    shown = call(client, "get", f"/api/v1/webhooks/{webhook_id}").json_body
    assert shown["url"] == receiver.url and shown["types"] == ["substep.*", "execution.completed"]
    listed = call(client, "get", "/api/v1/webhooks").json_body["webhooks"]
    assert webhook_id in [h["webhookId"] for h in listed]
    for body in (shown, *listed):
        assert SECRET not in json.dumps(body) and "secret" not in body
    # stored encrypted: the raw item holds KMS ciphertext, not the secret
    raw = services.webhooks.get_hook(webhook_id)
    assert raw is not None and SECRET.encode() not in raw.sealed_secret
    assert call(client, "delete", f"/api/v1/webhooks/{webhook_id}").status_code == 200
    assert call(client, "get", f"/api/v1/webhooks/{webhook_id}").status_code == 404
    assert call(client, "delete", f"/api/v1/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("", 400, "body is empty"),
        ("{nope", 400, "not valid JSON"),
        ("[]", 400, "JSON object"),
        ({"url": "ftp://x.example/hook", "secret": SECRET}, 400, "must start with"),
        ({"url": "http://127.0.0.1/hook", "secret": "short"}, 400, "secret"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "types": ["nope"]}, 400, "matches no event type"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "types": ["heartbeat"]}, 400, "matches no event"),
        ({"url": "http://u:p@127.0.0.1/hook", "secret": SECRET}, 400, "credentials"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "colour": "red"}, 400, "colour"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "executionId": "a b"}, 400, "executionId"),
    ],
)
def test_bad_registrations_say_what_to_fix(client, body, status, says):
    reply = call(client, "post", "/api/v1/webhooks", body)
    assert reply.status_code == status
    text = json.dumps(reply.json_body)
    assert says in text and "Traceback" not in text


def test_bad_delivery_queries_say_what_to_fix(client, hooks):
    webhook_id = register(client, hooks, Receiver(SECRET).reserve_port())
    base = f"/api/v1/webhooks/{webhook_id}/deliveries"
    assert call(client, "get", base + "?status=lost").status_code == 400
    assert call(client, "get", base + "?limit=0").status_code == 400
    assert call(client, "get", base + "?after=x").status_code == 400
    assert call(client, "get", "/api/v1/webhooks/wh_nope/deliveries").status_code == 404
    assert call(client, "post", base + "/nope/replay").status_code == 400
    assert call(client, "post", base + "/dag-exec_x:7/replay").status_code == 404


def test_every_event_reaches_flaky_down_and_slow_receivers_once_in_order_signed(client, hooks, services):
    flaky = Receiver(SECRET, fail_first=3).start()
    slow = Receiver(SECRET, delay_seconds=0.3).start()
    down = Receiver(SECRET).reserve_port()  # nothing listens yet
    receivers = {"flaky": flaky, "slow": slow, "down": down}
    ids = {name: register(client, hooks, r) for name, r in receivers.items()}
    comes_up = threading.Timer(1.5, down.start)  # down for the first 1.5 s: its deliveries back off
    try:
        comes_up.start()
        job = {"tasks": [echo(1, "a"), echo(2, "b", [1]), echo(3, "c", [1]), echo(4, "d", [2, 3])]}
        eid, events = run_job(services, job)
        expected = [f"{eid}:{e['seq']}" for e in events]
        for name, r in receivers.items():
            wait_for(lambda r=r: r.keys_for(eid) == expected, what=f"the {name} receiver's deliveries")
        assert flaky.requests > len(expected)  # it refused the first three
        for name, r in receivers.items():
            got = [x for x in r.accepted if x.event.get("executionId") == eid]
            assert [x.key for x in got] == expected, name  # each once, in seq order
            assert all(x.signature_ok for x in got), name
            assert [x.event for x in got] == events, name  # the event exactly as stored
            assert all(x.headers["X-Dagcast-Event"] == x.event["type"] for x in got)
            assert all(x.headers["X-Dagcast-Webhook-Id"] == ids[name] for x in got)
        page = call(client, "get", f"/api/v1/webhooks/{ids['down']}/deliveries?executionId={eid}").json_body
        assert [d["deliveryId"] for d in page["deliveries"]] == expected
        assert {d["status"] for d in page["deliveries"]} == {"delivered"}
        assert page["deliveries"][0]["attempts"] > 1  # it was retried while the receiver was down
    finally:
        comes_up.cancel()
        for r in receivers.values():
            r.stop()


def test_the_last_failure_leaves_a_dead_letter_that_replay_delivers(client, hooks, services):
    receiver = Receiver(SECRET, fail_always=True).start()
    webhook_id = register(client, hooks, receiver, types=["execution.failed"])
    try:
        eid, events = run_job(services, {"tasks": [fail(1, "boom")]})
        seq = events[-1]["seq"]
        base = f"/api/v1/webhooks/{webhook_id}/deliveries"

        def dead() -> Any:
            return call(client, "get", f"{base}?status=dead&executionId={eid}").json_body["deliveries"]

        wait_for(lambda: bool(dead()), timeout=30, what="a dead letter")
        [letter] = dead()
        assert letter["deliveryId"] == f"{eid}:{seq}" and letter["eventType"] == "execution.failed"
        attempts = int(os.environ["DAGCAST_WEBHOOK_MAX_ATTEMPTS"])
        assert letter["attempts"] == attempts and letter["lastStatusCode"] == 500
        assert "HTTP 500" in letter["lastError"] and receiver.requests == attempts
        failed = call(client, "post", f"{base}/{eid}:{seq}/replay").json_body
        assert failed["replay"]["delivered"] is False and failed["status"] == "dead"
        receiver.fail_always = False
        replayed = call(client, "post", f"{base}/{eid}:{seq}/replay")
        assert replayed.status_code == 200
        assert (
            replayed.json_body["status"] == "delivered" and replayed.json_body["replay"]["delivered"] is True
        )
        assert receiver.keys_for(eid) == [f"{eid}:{seq}"]
        assert receiver.accepted[-1].signature_ok
        assert dead() == []
    finally:
        receiver.stop()


def test_an_execution_filter_and_type_filter_select_events(client, hooks, services):
    receiver = Receiver(SECRET).start()
    register(client, hooks, receiver, types=["substep.completed"])
    other = Receiver(SECRET).start()
    register(client, hooks, other, executionId="dag-exec_someone-else")
    try:
        eid, events = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
        expected = [f"{eid}:{e['seq']}" for e in events if e["type"] == "substep.completed"]
        wait_for(lambda: receiver.keys_for(eid) == expected, what="the completed substeps")
        time.sleep(0.5)
        assert receiver.keys_for(eid) == expected
        assert other.requests == 0
    finally:
        receiver.stop()
        other.stop()
