"""Webhooks through `dagcast up` as a user meets them: register over HTTP, run a job, a real
receiver on 127.0.0.1 gets every event signed and in order; the poller runs with a batch window."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import start_server, stop_server
from tests.jobs import echo
from tests.receiver import Receiver


def test_a_job_run_through_dagcast_up_reaches_a_registered_webhook():
    receiver = Receiver("e2e-webhook-secret-123", fail_first=2).start()
    proc, base = start_server("webhooks", "--fanout-batch-size", "5", "--fanout-batch-window", "0.2")
    try:
        created = httpx.post(
            f"{base}/api/v1/webhooks", json={"url": receiver.url, "secret": receiver.secret}, timeout=10
        )
        assert created.status_code == 201, created.text
        job = {"tasks": [echo(1, "a"), echo(2, "b", [1])]}
        eid = httpx.post(f"{base}/api/v1/execute-dag", json=job, timeout=10).json()["executionId"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            keys = receiver.keys_for(eid)
            if keys and receiver.accepted[-1].event["type"] in ("execution.completed", "execution.failed"):
                break
            time.sleep(0.1)
        time.sleep(0.5)  # anything after the terminal event would be a duplicate: catch it
        keys = receiver.keys_for(eid)
        # every event once, in order, from the first to the terminal one
        assert keys == [f"{eid}:{n}" for n in range(1, len(keys) + 1)]
        assert receiver.accepted[-1].event["type"] == "execution.completed"
        assert all(r.signature_ok for r in receiver.accepted)
        page = httpx.get(
            f"{base}/api/v1/webhooks/{created.json()['webhookId']}/deliveries", timeout=10
        ).json()
        assert [d["deliveryId"] for d in page["deliveries"] if d["executionId"] == eid] == keys
    finally:
        stop_server(proc)
        receiver.stop()
