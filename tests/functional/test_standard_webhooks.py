"""Webhooks as Standard Webhooks receivers meet them, on the local stack: each receiver verifies with
the ``standardwebhooks`` library from PyPI (tests/support/receiver.py), never with code of ours —
with a secret dagcast made, with one registered before the standard (as ``whsec_``), and on a retry
half an hour after the first attempt, the clocks of the sender and of the library moved together."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import boto3
from chalice.test import Client

from chalicelib.domain.dag import parse_job
from chalicelib.domain.model import DeliveryStatus, now_ms
from chalicelib.factory import Services
from chalicelib.orchestration.submission import new_execution_id
from chalicelib.persistence.table import to_item
from tests.functional.conftest import call, echo, wait_for_end
from tests.support.fanout import fanned_out
from tests.support.receiver import Receiver, ShiftedClock, verify_standard, whsec_of

PLAIN_SECRET = "a-secret-from-before-the-standard"  # the kind registered before whsec_


def register(client: Client, hooks: list[str], body: dict[str, Any]) -> dict[str, Any]:
    reply = call(client, "post", "/api/v1/webhooks", body)
    assert reply.status_code == 201, reply.json_body
    hooks.append(reply.json_body["webhookId"])
    return dict(reply.json_body)


def settled(stack: Any, client: Client, webhook_id: str, execution_id: str) -> bool:
    """The fan-out has been through every event so far and none of the execution's deliveries is
    pending: nothing more will be sent."""
    if not fanned_out(stack):
        return False
    query = f"executionId={execution_id}&status={DeliveryStatus.PENDING}&limit=1"
    reply = call(client, "get", f"/api/v1/webhooks/{webhook_id}/deliveries?{query}")
    return not reply.json_body["deliveries"]


def wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run_as(services: Services, execution_id: str) -> list[dict[str, Any]]:
    services.orchestrator.submit(parse_job({"tasks": [echo(1, "a"), echo(2, "b", [1])]}), execution_id)
    return wait_for_end(services, execution_id)


def test_a_webhook_registered_without_a_secret_is_shown_a_whsec_secret_once_that_verifies(
    client, hooks, services, stack
):
    receiver = Receiver("").start()
    eid = new_execution_id()
    created = register(client, hooks, {"url": receiver.url, "executionId": eid})
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    receiver.secret = secret
    for shown in (
        call(client, "get", f"/api/v1/webhooks/{created['webhookId']}").json_body,
        *call(client, "get", "/api/v1/webhooks").json_body["webhooks"],
    ):
        assert "secret" not in shown and secret not in json.dumps(shown)
    try:
        events = run_as(services, eid)
        wait_for(lambda: settled(stack, client, created["webhookId"], eid), "the deliveries to settle")
    finally:
        receiver.stop()
    # every event verified by the library, its webhook-id the execution and seq
    assert [r.key for r in receiver.accepted] == [f"{eid}:{e['seq']}" for e in events]
    assert all(r.signature_ok for r in receiver.accepted)
    # a body changed on the way, or a request replayed under another id, does not verify
    check = receiver.checks[-1]
    assert verify_standard(secret, check.headers, check.body) == ""
    tampered = check.body.replace(b'"seq":', b'"seq":1')
    assert verify_standard(secret, check.headers, tampered) == "No matching signature found"
    other_id = {**check.headers, "webhook-id": f"{eid}:1"}
    assert verify_standard(secret, other_id, check.body) == "No matching signature found"


def test_a_webhook_registered_before_the_standard_verifies_with_its_secret_as_whsec(
    client, hooks, services, stack
):
    """Its item is written as the code before the standard wrote it (the secret's UTF-8 bytes
    sealed with KMS under the webhook's encryption context); nothing migrates it."""
    receiver = Receiver(PLAIN_SECRET).start()
    eid, webhook_id, created_at = new_execution_id(), f"wh_{uuid.uuid4().hex}", now_ms()
    sealed = boto3.client("kms").encrypt(
        KeyId=services.settings.webhook_kms_key,
        Plaintext=PLAIN_SECRET.encode(),
        EncryptionContext={"dagcast:webhook": webhook_id},
    )["CiphertextBlob"]
    old_item = {
        "PK": "WEBHOOKS",
        "SK": f"HOOK#{webhook_id}",
        "webhookId": webhook_id,
        "url": receiver.url,
        "types": None,
        "executionId": eid,
        "description": "",
        "secret": bytes(sealed),
        "createdAt": created_at,
    }
    boto3.client("dynamodb").put_item(TableName=stack.table_name, Item=to_item(old_item))
    hooks.append(webhook_id)
    try:
        events = run_as(services, eid)
        wait_for(lambda: settled(stack, client, webhook_id, eid), "the deliveries to settle")
    finally:
        receiver.stop()
    assert [r.key for r in receiver.accepted] == [f"{eid}:{e['seq']}" for e in events]
    # the library with whsec_ + base64(the old secret), and the deprecated header for old receivers
    assert all(r.signature_ok and r.legacy_ok for r in receiver.accepted)
    # registering such a secret today answers its whsec_ form: the same one
    again = register(client, hooks, {"url": receiver.url, "secret": PLAIN_SECRET})
    assert again["secret"] == whsec_of(PLAIN_SECRET)


def test_a_malformed_whsec_secret_is_refused_and_nothing_is_stored(client, hooks):
    before = len(call(client, "get", "/api/v1/webhooks").json_body["webhooks"])
    reply = call(
        client,
        "post",
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/x", "secret": "whsec_@@@@@@@@@@@@@@@@"},
    )
    assert reply.status_code == 400
    assert any(
        p.startswith('secret: "whsec_" must be followed by standard base64')
        for p in reply.json_body["problems"]
    )
    assert len(call(client, "get", "/api/v1/webhooks").json_body["webhooks"]) == before


class ClockMovingReceiver(Receiver):
    """Answers the first request 500 and then moves the shared clock ``jump`` seconds on, as if the
    retry came that much later: the sender signs it at the moved time and the library checks it
    then."""

    clock: ShiftedClock
    jump: float

    def _answer(self, received: dict[str, str], body: bytes) -> int:
        status = super()._answer(received, body)
        if len(self.checks) == 1:
            self.clock.offset += self.jump
        return status


def test_a_retry_half_an_hour_after_the_first_attempt_is_signed_anew_and_verifies(
    client, hooks, services, stack, monkeypatch
):
    """The libraries refuse a timestamp over five minutes off their clock and retries back off for
    up to 30 minutes, so a retry signed with its first attempt's time (or the delivery's) would be
    refused for ever and end dead."""
    clock = ShiftedClock()
    receiver = ClockMovingReceiver(PLAIN_SECRET, fail_first=1)
    receiver.clock, receiver.jump = clock, 31 * 60
    receiver.start()
    assert services.dispatcher is not None
    # the stack's one sender (the fan-out's and the retry function's) signs by the shared clock
    monkeypatch.setattr(services.dispatcher.sender, "_clock", clock.time)
    eid = new_execution_id()
    created = register(
        client,
        hooks,
        {"url": receiver.url, "secret": PLAIN_SECRET, "executionId": eid, "types": ["execution.created"]},
    )
    try:
        with clock.for_the_library():
            run_as(services, eid)
            wait_for(lambda: settled(stack, client, created["webhookId"], eid), "the delivery to settle")
    finally:
        receiver.stop()
    first, retry = receiver.checks_of(f"{eid}:1")[:2]
    assert first.refused == "" and retry.refused == "", (first.refused, retry.refused)
    signed = [int(c.headers["webhook-timestamp"]) for c in (first, retry)]
    assert signed[1] - signed[0] >= 31 * 60
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == f"{eid}:1"
    delivery = call(client, "get", f"/api/v1/webhooks/{created['webhookId']}/deliveries?executionId={eid}")
    assert [(d["status"], d["attempts"]) for d in delivery.json_body["deliveries"]] == [("delivered", 2)]
