"""Webhooks through `dagcast up` as a user meets them: register over HTTP, run a job, a real
receiver on 127.0.0.1 gets every event signed and in order, and verifies it with the Standard
Webhooks library; the poller runs with a batch window."""

from __future__ import annotations

import time

import httpx

from chalicelib.domain.model import DeliveryStatus
from tests.e2e.conftest import start_server, stop_server
from tests.support.jobs import echo
from tests.support.receiver import Receiver, verify_standard


def none_pending(deliveries_url: str, execution_id: str) -> bool:
    """Whether none of the webhook's deliveries of the execution is pending (each was delivered or is
    dead): no retry will send one again."""
    query = {"executionId": execution_id, "status": DeliveryStatus.PENDING, "limit": "1"}
    page = httpx.get(deliveries_url, params=query, timeout=10)
    assert page.status_code == 200, page.text
    return not page.json()["deliveries"]


def wait_until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_job_run_through_dagcast_up_reaches_a_registered_webhook():
    """The receiver verifies every request with the standardwebhooks library from PyPI, using the
    whsec_ secret dagcast made and showed once, in the registration's answer."""
    receiver = Receiver("", fail_first=2).start()
    # Retries after 0.2 s, then 0.4 s (the default 2 s, 4 s is what the test would otherwise sit out).
    backoff = {"DAGCAST_WEBHOOK_BACKOFF_SECONDS": "0.2"}
    proc, base = start_server(
        "webhooks", "--fanout-batch-size", "5", "--fanout-batch-window", "0.2", env=backoff
    )
    try:
        created = httpx.post(f"{base}/api/v1/webhooks", json={"url": receiver.url}, timeout=10)
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        assert receiver.secret.startswith("whsec_")
        shown = httpx.get(f"{base}/api/v1/webhooks/{created.json()['webhookId']}", timeout=10)
        assert "secret" not in shown.json() and receiver.secret not in shown.text
        job = {"tasks": [echo(1, "a"), echo(2, "b", [1])]}
        eid = httpx.post(f"{base}/api/v1/execute-dag", json=job, timeout=10).json()["executionId"]
        deliveries = f"{base}/api/v1/webhooks/{created.json()['webhookId']}/deliveries"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            keys = receiver.keys_for(eid)
            if keys and receiver.accepted[-1].event["type"] in ("execution.completed", "execution.failed"):
                break
            time.sleep(0.1)
        # The terminal event came, so the fan-out has been through all of the execution's events
        # (the stream keeps their order); once none is pending, none will be sent again.
        wait_until(lambda: none_pending(deliveries, eid), "the deliveries to finish")
        keys = receiver.keys_for(eid)
        # every event once, in order, from the first to the terminal one
        assert keys == [f"{eid}:{n}" for n in range(1, len(keys) + 1)]
        assert receiver.accepted[-1].event["type"] == "execution.completed"
        assert all(r.signature_ok for r in receiver.accepted)
        # the refused first attempts and their retries verified alike: each attempt is signed
        retried = receiver.checks_of(f"{eid}:1")
        assert len(retried) == 3 and all(c.refused == "" for c in retried)
        # a body changed on the way does not verify
        last = receiver.checks[-1]
        tampered = last.body.replace(b'"executionId":"', b'"executionId":"x')
        assert verify_standard(receiver.secret, last.headers, tampered) == "No matching signature found"
        page = httpx.get(deliveries, timeout=10).json()
        assert [d["deliveryId"] for d in page["deliveries"] if d["executionId"] == eid] == keys
    finally:
        stop_server(proc)
        receiver.stop()


def test_replay_delete_and_refusals_over_a_real_socket(server):
    receiver = Receiver("e2e-webhook-secret-456").start()
    control = Receiver("e2e-webhook-secret-789").start()
    hooks_url = f"{server}/api/v1/webhooks"
    job = {"tasks": [echo(1, "a")]}
    webhook_id = control_id = ""

    def finished(eid: str) -> None:
        deadline = time.monotonic() + 60
        while httpx.get(f"{server}/api/v1/dag-executions/{eid}", timeout=10).json()["status"] == "running":
            assert time.monotonic() < deadline, f"{eid} did not finish"
            time.sleep(0.1)

    try:
        for body, says in [
            ({"url": "ftp://x.example/hook", "secret": receiver.secret}, "must start with"),
            ({"url": receiver.url, "secret": "short"}, "secret"),
            ({"url": receiver.url, "secret": receiver.secret, "types": ["nope"]}, "matches no event type"),
        ]:
            refused = httpx.post(hooks_url, json=body, timeout=10)
            assert refused.status_code == 400 and says in refused.text, refused.text
        as_text = httpx.post(hooks_url, content=b"{}", headers={"content-type": "text/plain"}, timeout=10)
        assert as_text.status_code == 415
        huge = httpx.post(hooks_url, json={"url": receiver.url, "secret": "x" * 20_000}, timeout=10)
        assert huge.status_code == 413
        created = httpx.post(
            hooks_url,
            json={"url": receiver.url, "secret": receiver.secret, "types": ["execution.completed"]},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        webhook_id = created.json()["webhookId"]
        deliveries = f"{hooks_url}/{webhook_id}/deliveries"

        eid = httpx.post(f"{server}/api/v1/execute-dag", json=job, timeout=10).json()["executionId"]
        deadline = time.monotonic() + 60
        while not receiver.keys_for(eid):
            assert time.monotonic() < deadline, "the execution.completed delivery did not arrive"
            time.sleep(0.1)
        [key] = receiver.keys_for(eid)
        replayed = httpx.post(f"{deliveries}/{key}/replay", timeout=10)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replay"]["delivered"] is True and replayed.json()["status"] == "delivered"
        assert receiver.keys_for(eid) == [key, key]  # sent again, with the same idempotency key
        assert (
            receiver.accepted[-1].headers["X-Dagcast-Attempt"] == "2" and receiver.accepted[-1].signature_ok
        )
        for delivery_id, status in [(f"{eid}:²", 400), ("nope", 400), (f"{eid}:999999", 404)]:
            reply = httpx.post(f"{deliveries}/{delivery_id}/replay", timeout=10)
            assert reply.status_code == status and "error" in reply.json(), (delivery_id, reply.text)
        assert httpx.post(f"{hooks_url}/wh_nope/deliveries/{key}/replay", timeout=10).status_code == 404
        assert httpx.get(f"{deliveries}?status=lost", timeout=10).status_code == 400

        deleted = httpx.delete(f"{hooks_url}/{webhook_id}", timeout=10)
        assert deleted.status_code == 200 and deleted.json() == {"webhookId": webhook_id, "deleted": True}
        assert httpx.delete(f"{hooks_url}/{webhook_id}", timeout=10).status_code == 404
        assert httpx.get(f"{hooks_url}/{webhook_id}", timeout=10).status_code == 404
        assert httpx.get(deliveries, timeout=10).status_code == 404
        webhook_id = ""
        # nothing is sent to a deleted webhook: checked once another webhook has the execution's
        # terminal event, when the fan-out has been through all of its events
        control_id = httpx.post(
            hooks_url,
            json={"url": control.url, "secret": control.secret, "types": ["execution.completed"]},
            timeout=10,
        ).json()["webhookId"]
        later = httpx.post(f"{server}/api/v1/execute-dag", json=job, timeout=10).json()["executionId"]
        finished(later)
        wait_until(lambda: control.keys_for(later) != [], "the other webhook's delivery")
        assert receiver.keys_for(later) == []
    finally:
        for hook in (webhook_id, control_id):
            if hook:
                httpx.delete(f"{hooks_url}/{hook}", timeout=10)
        receiver.stop()
        control.stop()
