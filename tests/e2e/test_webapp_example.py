"""The example web app (examples/webapp, docs/webapp.md) in a real headless Chromium, served from
another origin than the API: it submits a job and shows every task completed and every event once,
in order — across stream cuts every 2 s and a stream token that expires after 10 s (so the page must
fetch a fresh token and resume with ?lastEventId=); and it watches an existing execution from its
snapshot, also one that has already finished."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ROOT, start_server, static_server, stop_server
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.e2e.test_live_stream import submit
from tests.jobs import echo, sleep

pytestmark = pytest.mark.e2e
WEBAPP = ROOT / "examples" / "webapp"
TOKEN_TTL_SECONDS = 10  # the smallest DAGCAST_TOKEN_TTL_SECONDS allowed
TIMEOUT_MS = 90_000

# What the page shows, read from the DOM (its ids and data attributes are its test interface).
READ_PAGE = """() => ({
  status: document.getElementById('status').dataset.status,
  stream: document.getElementById('stream').dataset.state,
  connections: Number(document.getElementById('connections').dataset.count),
  refreshes: Number(document.getElementById('refreshes').dataset.count),
  error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
  result: document.getElementById('result').textContent,
  tasks: [...document.querySelectorAll('#tasks tbody tr')].map(
    (tr) => ({id: Number(tr.dataset.taskId), status: tr.dataset.status})),
  log: [...document.querySelectorAll('#log li[data-seq]')].map(
    (li) => ({seq: Number(li.dataset.seq), type: li.dataset.type})),
  notes: [...document.querySelectorAll('#log li.note')].map((li) => li.textContent),
})"""
FINISHED = "['completed', 'failed', 'cancelled'].includes(document.getElementById('status').dataset.status)"
CLOSED = "document.getElementById('stream').dataset.state === 'closed'"


@pytest.fixture(scope="module")
def webapp_origin() -> Iterator[str]:
    """examples/webapp over plain HTTP, as `python -m http.server -d examples/webapp` would."""
    with static_server(WEBAPP) as origin:
        yield origin


@pytest.fixture(scope="module")
def api(webapp_origin: str) -> Iterator[str]:
    # Another origin than the page's: the browser enforces the CORS allow-list for real.
    proc, base = start_server(
        "webapp",
        "--cors-origin",
        webapp_origin,
        "--max-stream-seconds",
        "2",
        env={"DAGCAST_RETRY_MS": "300", "DAGCAST_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS)},
    )
    yield base
    stop_server(proc)


def _final_seq(api: str, execution_id: str) -> int:
    reply = httpx.get(f"{api}/api/v1/dag-executions/{execution_id}", timeout=30)
    assert reply.status_code == 200, reply.text
    seq: int = reply.json()["seq"]
    return seq


def test_the_page_runs_a_job_live_across_stream_cuts_and_a_token_expiry(webapp_origin, api):
    _require_browser()
    from playwright.sync_api import sync_playwright

    # ~16 s: well past the token's 10 s, so a reconnect after that is refused (401).
    job = {
        "originalRequest": "webapp e2e",
        "tasks": [sleep(1, 5), echo(2, "two", [1]), sleep(3, 9, [2])],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{webapp_origin}/index.html?" + str(httpx.QueryParams({"api": api})))
            assert page.input_value("#api") == api
            page.fill("#job", json.dumps(job, indent=2))
            page.click("#submit-form button[type=submit]")
            try:
                page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            finally:  # keep what the page showed, also when it never finished
                seen = page.evaluate(READ_PAGE)
                execution_id = page.text_content("#execution-id-shown")
                page.screenshot(path=str(ARTIFACTS / "webapp-example-run.png"), full_page=True)
        finally:
            browser.close()

    assert seen["error"] is None, seen["error"]
    assert seen["status"] == "completed", seen
    assert seen["tasks"] == [{"id": i, "status": "completed"} for i in (1, 2, 3)]
    assert execution_id and execution_id.startswith("dag-exec_")
    final = _final_seq(api, execution_id)
    seqs = [e["seq"] for e in seen["log"]]
    assert seqs == list(range(1, final + 1)), f"lost, repeated or reordered: {seqs}"
    assert seen["log"][0]["type"] == "execution.created"
    assert seen["log"][-1]["type"] == "execution.completed"
    assert len(seqs) == 1 + 3 * 3 + 1  # created, (started, completed, updated) × 3, completed
    assert seen["result"] == "slept 9s"  # the sink's result
    # The server cut the stream every 2 s (EventSource reconnected by itself), and once the token
    # had expired the page fetched a fresh one and resumed.
    assert seen["connections"] >= 4, seen
    assert seen["refreshes"] >= 1, seen
    assert any("fresh token" in n for n in seen["notes"]), seen["notes"]


def test_the_page_watches_an_existing_execution_from_its_snapshot(webapp_origin, api):
    _require_browser()
    from playwright.sync_api import sync_playwright

    accepted = submit(api, {"tasks": [sleep(1, 3), echo(2, "watched", [1])]})
    execution_id = accepted["executionId"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{webapp_origin}/index.html?" + str(httpx.QueryParams({"api": api})))
            page.fill("#execution-id", execution_id)
            # While it runs: a snapshot, then live events.
            page.click("#watch-form button[type=submit]")
            try:
                page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            finally:
                live = page.evaluate(READ_PAGE)
                page.screenshot(path=str(ARTIFACTS / "webapp-example-watch.png"), full_page=True)
            # Once it has finished: the final snapshot only, and the page stops (no reconnect loop).
            page.evaluate("document.getElementById('log').replaceChildren()")  # to see the new one
            page.click("#watch-form button[type=submit]")
            page.wait_for_function(
                f"({FINISHED}) && ({CLOSED}) && document.querySelectorAll('#log li').length > 0",
                timeout=TIMEOUT_MS,
            )
            page.wait_for_timeout(1500)  # would a refused reconnect (204) show up as a refresh?
            after = page.evaluate(READ_PAGE)
        finally:
            browser.close()

    final = _final_seq(api, execution_id)
    assert live["error"] is None, live["error"]
    assert live["status"] == "completed", live
    assert live["tasks"] == [{"id": 1, "status": "completed"}, {"id": 2, "status": "completed"}]
    snapshots = [n for n in live["notes"] if n.startswith("snapshot as of #")]
    assert len(snapshots) == 1, live["notes"]
    start = int(snapshots[0].removeprefix("snapshot as of #").split(":")[0])
    seqs = [e["seq"] for e in live["log"]]
    assert seqs == list(range(start + 1, final + 1)), f"after the snapshot at #{start}: {seqs}"
    if seqs:
        assert live["log"][-1]["type"] == "execution.completed"
    assert live["result"] == "watched"

    assert after["error"] is None, after["error"]
    assert after["status"] == "completed", after
    assert after["tasks"] == live["tasks"]
    assert after["log"] == []
    assert after["notes"] == [f"snapshot as of #{final}: completed, 2/2 tasks done"]
    assert after["connections"] == 1
    assert after["refreshes"] == 0
