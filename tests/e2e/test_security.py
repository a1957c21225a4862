"""The REST API's gate over real sockets (chalicelib/http/gate.py, docs/security.md): every route asks for
an API key when keys are configured, the CORS allow-list holds on REST answers, the per-client rate
limit answers 429 with Retry-After, and the CLI carries the key. (The SSE endpoint's stream tokens:
tests/e2e/test_sse_contract.py and tests/unit/test_stream_security.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chalicelib.http.gate import key_digest
from dagcast.local.launch import DAGCAST
from tests.e2e.conftest import ROOT, start_server, stop_server
from tests.support.jobs import echo

pytestmark = pytest.mark.e2e
KEY = "dk_e2e-key-" + "k" * 30
OTHER_KEY = "dk_e2e-key-" + "o" * 30
ALLOWED = "http://app.example"


@pytest.fixture(scope="module")
def keyed() -> Iterator[str]:
    proc, base = start_server("keys", "--api-key", KEY, "--api-key", OTHER_KEY, "--cors-origin", ALLOWED)
    yield base
    stop_server(proc)


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every REST route app.py declares."""
    import app

    return sorted((m, path) for path, by_method in app.app.routes.items() for m in by_method)


def concrete(path: str, execution_id: str) -> str:
    values = {"execution_id": execution_id, "task_id": "1", "webhook_id": "wh_missing", "delivery_id": "x:1"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def call(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] | None = None
    if path.endswith("/execute-dag"):
        body = {"tasks": [echo(1, "via the gate")]}
    elif path == "/api/v1/webhooks" and method == "POST":
        body = {"url": "http://127.0.0.1:9/hook", "secret": "s" * 24}
    return httpx.request(method, base + path, json=body, headers=headers or {}, timeout=30)


def test_every_route_wants_a_valid_key(keyed):
    accepted = call(keyed, "POST", "/api/v1/execute-dag", {"Authorization": f"Bearer {KEY}"})
    assert accepted.status_code == 202, accepted.text
    eid = accepted.json()["executionId"]
    listed = httpx.get(f"{keyed}/api/v1/dag-executions", headers={"X-Api-Key": KEY}).json()["executions"]
    declared = routes()
    assert len(declared) >= 13  # the table below really covers the API
    for method, template in declared:
        # DELETE with the key would remove the execution whose count is checked below: a missing one.
        path = concrete(template, "dag-exec_missing" if method == "DELETE" else eid)
        missing = call(keyed, method, path)
        assert missing.status_code == 401, (method, path, missing.text)
        assert "an API key is required" in missing.json()["error"], (method, path)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for wrong in (
            {"Authorization": "Bearer dk_not-a-key"},
            {"X-Api-Key": "nope"},
            {"Authorization": KEY},
        ):
            refused = call(keyed, method, path, wrong)
            assert refused.status_code == 401, (method, path, wrong)
        # Either header carries it, and a second configured key works as well as the first.
        for good in ({"Authorization": f"Bearer {KEY}"}, {"X-Api-Key": OTHER_KEY}):
            passed = call(keyed, method, path, good)
            assert passed.status_code != 401 and passed.status_code < 500, (method, path, passed.text)
    # Refused writes wrote nothing: the keyless execute-dag and webhook POSTs above left no trace.
    after = httpx.get(f"{keyed}/api/v1/dag-executions", headers={"X-Api-Key": KEY}).json()["executions"]
    submitted_with_key = [m for m, t in declared if t.endswith("/execute-dag")]
    assert len(after) == len(listed) + 2 * len(submitted_with_key)


def test_the_stream_still_takes_a_stream_token_not_the_key(keyed):
    accepted = call(keyed, "POST", "/api/v1/execute-dag", {"Authorization": f"Bearer {KEY}"}).json()
    events = accepted["eventsUrl"].split("?")[0]
    with_key = httpx.get(events, headers={"Authorization": f"Bearer {KEY}"})
    assert with_key.status_code == 401 and "stream token" in with_key.json()["error"]
    with httpx.stream("GET", accepted["eventsUrl"], timeout=30) as stream:
        assert stream.status_code == 200


def test_cors_allow_list_on_rest_answers(keyed):
    ok = httpx.get(f"{keyed}/api/v1/dag-executions", headers={"X-Api-Key": KEY, "Origin": ALLOWED})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in ok.headers["vary"].lower()
    other = httpx.get(
        f"{keyed}/api/v1/dag-executions", headers={"X-Api-Key": KEY, "Origin": "http://evil.example"}
    )
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    # A refusal is readable by an allowed page (it can tell its user what to fix), by no other.
    refused = httpx.get(f"{keyed}/api/v1/dag-executions", headers={"Origin": ALLOWED})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED
    refused = httpx.get(f"{keyed}/api/v1/dag-executions", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 401 and "access-control-allow-origin" not in refused.headers
    # Preflights carry no key and must pass (API Gateway answers them itself in AWS).
    preflight = httpx.options(
        f"{keyed}/api/v1/execute-dag",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code in (200, 204), preflight.text
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def dagcast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGCAST_"))}
    clean.update({"DAGCAST_CONFIG": str(ROOT / "test-artifacts" / "no-config.json"), **env})
    return subprocess.run([str(DAGCAST), *args], env=clean, capture_output=True, text=True, timeout=120)


def test_the_cli_sends_the_key(keyed, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"tasks": [echo(1, "hello")]}))
    without = dagcast("ls", "--url", keyed, env={})
    assert without.returncode == 2
    assert "an API key is required" in without.stderr and "DAGCAST_API_KEY" in without.stderr
    assert "Traceback" not in without.stderr
    with_env = dagcast("ls", "--url", keyed, "--json", env={"DAGCAST_API_KEY": KEY})
    assert with_env.returncode == 0, with_env.stderr
    with_flag = dagcast("run", str(job), "--url", keyed, "--api-key", KEY, env={})
    assert with_flag.returncode == 0, with_flag.stderr
    assert "execution.completed" in with_flag.stdout


def test_a_new_key_and_its_digest():
    made = dagcast("api-key", env={})
    assert made.returncode == 0
    key = re.search(r"key:\s+(\S+)", made.stdout)
    digest = re.search(r"digest:\s+([0-9a-f]{64})", made.stdout)
    assert key and digest and key_digest(key.group(1)) == digest.group(1)
    assert key.group(1).startswith("dk_") and len(key.group(1)) > 40


def test_the_rate_limit_answers_429_then_lets_the_client_back():
    # 1 request per 2 s after a burst of 4: the bucket cannot refill fast enough to hide the limit
    # unless each request took over 2 s, however slow the machine is.
    proc, base = start_server("rate", "--api-rate", "0.5", "--api-burst", "4")
    try:
        statuses: list[int] = []
        refused: httpx.Response | None = None
        for _ in range(20):
            reply = httpx.get(f"{base}/api/v1/dag-executions")
            statuses.append(reply.status_code)
            if reply.status_code != 200:
                refused = reply
                break
        assert refused is not None and refused.status_code == 429, statuses
        assert len(statuses) > 4, statuses  # the burst went through first
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert "too many requests from 127.0.0.1" in refused.json()["error"]
        time.sleep(int(refused.headers["retry-after"]) + 0.1)
        assert httpx.get(f"{base}/api/v1/dag-executions").status_code == 200
    finally:
        stop_server(proc)


def test_the_monitor_page_asks_for_the_key_once_and_works(keyed):
    from playwright.sync_api import sync_playwright

    from tests.support.browser import TIMEOUT_MS, launch, require_browser
    from tests.support.monitor_page import CLOSED, FINISHED, READ_PAGE

    require_browser()
    accepted = call(keyed, "POST", "/api/v1/execute-dag", {"Authorization": f"Bearer {KEY}"}).json()
    asked: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()

            def answer(dialog: Any) -> None:
                asked.append(dialog.message)
                dialog.accept(KEY)

            page.on("dialog", answer)
            page.goto(f"{keyed}/?id={accepted['executionId']}")
            page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            seen = page.evaluate(READ_PAGE)
            stored = page.evaluate("() => sessionStorage.getItem('dagcast.apiKey')")
        finally:
            browser.close()
    assert len(asked) == 1 and "an API key is required" in asked[0], asked
    assert stored == KEY
    assert seen["error"] is None and seen["status"] == "completed", seen
