"""Two tenants over real sockets (`dagcast up --api-key acme=KEY --api-key globex=KEY2`;
docs/security.md#tenants): every REST route answers another tenant's execution or webhook exactly
as it answers an unknown id (404), lists show only the caller's own, a stream token is only ever
minted for the owner and a token for one execution opens no other, a webhook receives only its own
tenant's events, and the CLI works per key. Quotas over sockets: 429 with Retry-After."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from dagcast.local.launch import DAGCAST
from tests.e2e.conftest import ROOT, start_server, stop_server
from tests.support.jobs import echo
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e
ACME = "dk_e2e-acme-" + "a" * 30
GLOBEX = "dk_e2e-globex-" + "g" * 30
UNKNOWN_EXECUTION = "dag-exec_" + "0" * 32
UNKNOWN_WEBHOOK = "wh_" + "0" * 32


@pytest.fixture(scope="module")
def two() -> Iterator[str]:
    policies = {"acme": {"submitsPerSecond": 4}}
    proc, base = start_server(
        "tenants", "--api-key", f"acme={ACME}", "--api-key", f"globex={GLOBEX}",
        env={"DAGCAST_TENANTS": json.dumps(policies)},
    )  # fmt: skip
    yield base
    stop_server(proc)


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submit(base: str, key: str, text: str = "hi") -> dict[str, Any]:
    reply = httpx.post(f"{base}/api/v1/execute-dag", json={"tasks": [echo(1, text)]}, headers=as_(key))
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def finished(base: str, key: str, eid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        view = httpx.get(f"{base}/api/v1/dag-executions/{eid}", headers=as_(key)).json()
        if view["status"] != "running" or time.monotonic() > deadline:
            return dict(view)
        time.sleep(0.1)


def routes() -> list[tuple[str, str]]:
    import app

    return sorted((m, path) for path, by_method in app.app.routes.items() for m in by_method)


def fill(template: str, execution_id: str, webhook_id: str) -> str:
    values = {"execution_id": execution_id, "task_id": "1", "webhook_id": webhook_id}
    values["delivery_id"] = f"{execution_id}:1"
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def test_another_tenants_execution_and_webhook_are_404_on_every_route_as_unknown_ids(two):
    mine = submit(two, ACME)
    assert finished(two, ACME, mine["executionId"])["status"] == "completed"
    hook = httpx.post(
        f"{two}/api/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "secret": "s" * 24}, headers=as_(ACME)
    )
    assert hook.status_code == 201, hook.text
    eid, wid = mine["executionId"], hook.json()["webhookId"]
    checked = 0
    for method, template in routes():
        if "{" not in template:
            continue  # the routes without an id: the lists and creation, below
        theirs = httpx.request(method, two + fill(template, eid, wid), headers=as_(GLOBEX), timeout=30)
        unknown = httpx.request(
            method, two + fill(template, UNKNOWN_EXECUTION, UNKNOWN_WEBHOOK), headers=as_(GLOBEX), timeout=30
        )
        assert theirs.status_code == unknown.status_code == 404, (method, template, theirs.text)
        same = unknown.text.replace(UNKNOWN_EXECUTION, eid).replace(UNKNOWN_WEBHOOK, wid)
        assert theirs.text == same, (method, template)  # no existence leak: the very same answer
        if method != "DELETE":  # the owner's delete comes last, below
            owner = httpx.request(method, two + fill(template, eid, wid), headers=as_(ACME), timeout=30)
            assert owner.status_code != 404 or "delivery" in owner.text, (method, template, owner.text)
        checked += 1
    assert checked >= 9  # every route that names an id
    # the lists: each tenant sees its own only
    theirs_listed = httpx.get(f"{two}/api/v1/dag-executions", headers=as_(GLOBEX)).json()["executions"]
    mine_listed = httpx.get(f"{two}/api/v1/dag-executions", headers=as_(ACME)).json()["executions"]
    assert eid in [e["executionId"] for e in mine_listed]
    assert eid not in [e["executionId"] for e in theirs_listed]
    hooks = httpx.get(f"{two}/api/v1/webhooks", headers=as_(GLOBEX)).json()["webhooks"]
    assert wid not in [h["webhookId"] for h in hooks]
    assert wid in [
        h["webhookId"] for h in httpx.get(f"{two}/api/v1/webhooks", headers=as_(ACME)).json()["webhooks"]
    ]
    # the owner's webhook is still there: the other tenant's delete did nothing; the owner's works
    assert httpx.get(f"{two}/api/v1/webhooks/{wid}", headers=as_(ACME)).status_code == 200
    assert httpx.delete(f"{two}/api/v1/webhooks/{wid}", headers=as_(ACME)).status_code == 200


def test_stream_tokens_are_the_owners_only(two):
    mine, theirs = submit(two, ACME), submit(two, GLOBEX)
    with httpx.stream("GET", mine["eventsUrl"], timeout=30) as stream:  # the owner's token opens it
        assert stream.status_code == 200
        body = b"".join(stream.iter_bytes())
    assert mine["executionId"].encode() in body
    # the other tenant gets no token for it, and its own token opens only its own execution
    minted = httpx.post(
        f"{two}/api/v1/dag-executions/{mine['executionId']}/stream-token", headers=as_(GLOBEX)
    )
    assert minted.status_code == 404
    borrowed = f"{mine['eventsUrl'].split('?')[0]}?token={theirs['streamToken']}"
    assert httpx.get(borrowed, timeout=30).status_code == 403


def test_a_webhook_receives_only_its_own_tenants_events(two):
    receivers = {key: Receiver("tenant-secret-0123456789").start() for key in (ACME, GLOBEX)}
    try:
        for key, receiver in receivers.items():
            made = httpx.post(
                f"{two}/api/v1/webhooks",
                json={"url": receiver.url, "secret": receiver.secret},
                headers=as_(key),
            )
            assert made.status_code == 201, made.text
        runs = {key: submit(two, key)["executionId"] for key in receivers}
        for key, eid in runs.items():
            finished(two, key, eid)
        deadline = time.monotonic() + 30
        while any(not r.keys_for(runs[k]) for k, r in receivers.items()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for key, receiver in receivers.items():
            other = runs[GLOBEX if key == ACME else ACME]
            assert receiver.keys_for(runs[key]), "its own tenant's events arrived"
            seen = {r.event["executionId"] for r in receiver.accepted}
            assert other not in seen, "another tenant's events never reach it"
    finally:
        for receiver in receivers.values():
            receiver.stop()


def dagcast(*args: str, key: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGCAST_"))}
    clean.update({"DAGCAST_CONFIG": str(ROOT / "test-artifacts" / "no-config.json"), "DAGCAST_API_KEY": key})
    return subprocess.run([str(DAGCAST), *args], env=clean, capture_output=True, text=True, timeout=120)


def test_the_cli_works_per_key(two):
    eid = submit(two, ACME)["executionId"]
    finished(two, ACME, eid)
    assert eid in dagcast("ls", "--url", two, "--json", key=ACME).stdout
    assert eid not in dagcast("ls", "--url", two, "--json", key=GLOBEX).stdout
    shown = dagcast("show", eid, "--url", two, key=GLOBEX)
    assert shown.returncode == 2 and "no execution" in shown.stderr, shown


def test_over_its_submit_rate_a_tenant_gets_429_with_retry_after_and_the_other_does_not(two):
    def one(_: int) -> httpx.Response:
        # (the server answers 12 submits at once one by one: httpx's 5 s default is too short on a
        # loaded machine)
        return httpx.post(
            f"{two}/api/v1/execute-dag", json={"tasks": [echo(1, "x")]}, headers=as_(ACME), timeout=60
        )

    with ThreadPoolExecutor(12) as pool:  # a burst: 12 at once against 4 per second
        replies = list(pool.map(one, range(12)))
    refused = [r for r in replies if r.status_code == 429]
    assert refused, [r.status_code for r in replies]
    assert refused[0].headers["retry-after"] == "1"
    assert "submitsPerSecond" in refused[0].json()["error"]
    assert submit(two, GLOBEX)["executionId"]  # globex has its own count
