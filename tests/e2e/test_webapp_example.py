"""The example web app (examples/webapp, docs/webapp.md) as documented for production: `dagcast up
--api-key KEY`, the app's backend (examples/webapp/backend.py) holding KEY and serving the page, and
the page in a real headless Chromium. The page submits through the backend and streams straight from
dagcast (another origin, so the CORS allow-list is enforced for real): every task completed and
every event once, in order, arriving live — across stream cuts every 2 s and a stream token that
expires after 10 s (a refused reconnect, a fresh token from the backend, a resume with
?lastEventId=) — and it watches an existing execution from its snapshot, also a finished one. The
browser never sees the key: not in a response, a request, the DOM or storage. The backend's routes
are also checked over plain HTTP: the refresh, what it hands out, what it refuses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chalicelib.http.gate import new_api_key
from dagcast.local.launch import free_port
from tests.e2e.conftest import ROOT, start_server, stop_server
from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e
BACKEND = ROOT / "examples" / "webapp" / "backend.py"
KEY = new_api_key()[0]  # random: a string that can only turn up where the key leaked
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
RUNNING = "document.getElementById('status').dataset.status === 'running'"


@contextlib.contextmanager
def run_backend(name: str, api: str, key: str | None, port: int | None = None) -> Iterator[str]:
    """`DAGCAST_API_KEY=key python3 examples/webapp/backend.py --api API --port PORT`: its origin.
    Its log is test-artifacts/webapp-backend-NAME.log."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGCAST_")}
    if key is not None:
        env["DAGCAST_API_KEY"] = key
    log = ROOT / "test-artifacts" / f"webapp-backend-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(BACKEND), "--api", api, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{origin}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield origin
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def backend_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api(backend_port: int) -> Iterator[str]:
    # API keys on, as on a deployed stage; the stream allows the backend's origin, the page's.
    proc, base = start_server(
        "webapp",
        "--api-key",
        KEY,
        "--cors-origin",
        f"http://127.0.0.1:{backend_port}",
        "--max-stream-seconds",
        "2",
        env={"DAGCAST_RETRY_MS": "300", "DAGCAST_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS)},
    )
    yield base
    stop_server(proc)


@pytest.fixture(scope="module")
def webapp(api: str, backend_port: int) -> Iterator[str]:
    """The page's origin: the backend, holding KEY."""
    with run_backend("page", api, KEY, backend_port) as origin:
        yield origin


def _with_key(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, headers={"authorization": f"Bearer {KEY}"}, timeout=30, **kwargs)


def _final_seq(api: str, execution_id: str) -> int:
    reply = _with_key("GET", f"{api}/api/v1/dag-executions/{execution_id}")
    assert reply.status_code == 200, reply.text
    seq: int = reply.json()["seq"]
    return seq


class Traffic:
    """Every request the page made and every response it received (Playwright's events)."""

    def __init__(self, page: Any) -> None:
        self.requests: list[Any] = []
        self.responses: list[Any] = []
        page.on("request", lambda request: self.requests.append(request))
        page.on("response", lambda response: self.responses.append(response))

    def assert_no_key(self) -> None:
        """KEY is in no request the page sent and no response it received (headers and bodies)."""
        for request in self.requests:
            headers = request.all_headers()
            assert "authorization" not in headers and "x-api-key" not in headers, request.url
            assert KEY not in request.url and KEY not in (request.post_data or ""), request.url
        unread = []
        for response in self.responses:
            assert KEY not in json.dumps(response.all_headers()), response.url
            try:
                body = response.body()
            except Exception:  # an event stream cut off mid-read has no body to give back
                unread.append(response)
                continue
            assert KEY.encode() not in body, response.url
        # Only streams (dagcast's SSE, which never sees the key) may be unreadable.
        assert all("/events" in r.url for r in unread), [r.url for r in unread]

    def to(self, origin: str) -> list[Any]:
        return [r for r in self.requests if r.url.startswith(origin + "/")]


def _assert_page_holds_no_key(page: Any) -> None:
    assert KEY not in page.content()
    storage = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
    assert KEY not in storage


def test_the_page_runs_a_job_live_across_stream_cuts_and_a_token_expiry(webapp, api):
    require_browser()
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
            traffic = Traffic(page)
            page.goto(f"{webapp}/")
            page.fill("#job", json.dumps(job, indent=2))
            page.click("#submit-form button[type=submit]")
            # Live: task 3 is seen running while the execution runs, the events so far in the log.
            page.wait_for_selector('#tasks tr[data-task-id="3"][data-status="running"]', timeout=TIMEOUT_MS)
            live = page.evaluate(READ_PAGE)
            try:
                page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            finally:  # keep what the page showed, also when it never finished
                seen = page.evaluate(READ_PAGE)
                execution_id = page.text_content("#execution-id-shown")
                page.screenshot(path=str(ARTIFACTS / "webapp-example-run.png"), full_page=True)
            traffic.assert_no_key()
            _assert_page_holds_no_key(page)
        finally:
            browser.close()

    assert live["status"] == "running", live
    assert live["tasks"][:2] == [{"id": 1, "status": "completed"}, {"id": 2, "status": "completed"}], live
    assert [e["type"] for e in live["log"]][-1] == "substep.started", live["log"]

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

    # Where the page went: the REST calls to its backend only (the submit, then each refresh), and
    # to dagcast only the stream — which refused the expired token once (401) and took the fresh one.
    to_backend = [(r.method, r.url.removeprefix(webapp)) for r in traffic.to(webapp)]
    posts = [path for method, path in to_backend if method == "POST"]
    assert posts[0] == "/jobs", to_backend
    assert posts[1:] == [f"/jobs/{execution_id}/stream-token"] * seen["refreshes"], to_backend
    to_dagcast = traffic.to(api)
    assert to_dagcast and all(
        r.method in ("GET", "HEAD")
        and r.url.startswith(f"{api}/api/v1/dag-executions/{execution_id}/events?token=")
        for r in to_dagcast
    ), [r.url for r in to_dagcast]
    stream_statuses = [r.status for r in traffic.responses if r.url.startswith(api)]
    assert 401 in stream_statuses and 200 in stream_statuses, stream_statuses
    # After a refusal the client asks why with one HEAD to the same URL (EventSource does not say):
    # each said 401 (the token expired), and each was followed by a refresh.
    heads = [r for r in traffic.responses if r.url.startswith(api) and r.request.method == "HEAD"]
    assert [r.status for r in heads] == [401] * seen["refreshes"], [(r.url, r.status) for r in heads]
    # One EventSource per token (the first from the submit, resuming after 0), each one after a
    # refresh resuming after the last event applied; the browser's own reconnects reuse the URL.
    urls = list(dict.fromkeys(r.url for r in to_dagcast if r.method == "GET"))
    assert len(urls) == 1 + seen["refreshes"], urls
    assert httpx.URL(urls[0]).params["lastEventId"] == "0", urls
    assert all(int(httpx.URL(u).params["lastEventId"]) > 0 for u in urls[1:]), urls


def test_the_page_watches_an_existing_execution_from_its_snapshot(webapp, api):
    require_browser()
    from playwright.sync_api import sync_playwright

    accepted = _with_key(
        "POST", f"{api}/api/v1/execute-dag", json={"tasks": [sleep(1, 3), echo(2, "watched", [1])]}
    )
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["executionId"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            traffic = Traffic(page)
            page.goto(f"{webapp}/")
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
            traffic.assert_no_key()
            _assert_page_holds_no_key(page)
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
    posts = [r.url.removeprefix(webapp) for r in traffic.to(webapp) if r.method == "POST"]
    assert posts == [f"/jobs/{execution_id}/stream-token"] * 2  # each watch: a token from the backend


def test_the_backend_submits_and_refreshes_with_the_key_and_hands_out_only_the_stream(webapp, api):
    """Over plain HTTP, what the page's calls do: keys are on (dagcast refuses a keyless caller), the
    backend's answers carry the stream's URL and expiry only, and a refreshed URL opens the stream."""
    job = {"tasks": [echo(1, "via the backend")]}
    assert httpx.post(f"{api}/api/v1/execute-dag", json=job, timeout=30).status_code == 401

    browser_headers = {"origin": webapp}  # what a browser adds to the page's own POSTs
    with httpx.Client(base_url=webapp, headers=browser_headers, timeout=30) as client:
        accepted = client.post("/jobs", json=job)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        # Not dagcast's whole 202: no statusUrl, no bare streamToken.
        assert sorted(body) == ["eventsUrl", "executionId", "streamTokenExpiresAt"]
        execution_id = body["executionId"]
        assert body["eventsUrl"].startswith(f"{api}/api/v1/dag-executions/{execution_id}/events?token=")
        assert body["streamTokenExpiresAt"] > time.time()
        assert (
            httpx.post(f"{api}/api/v1/dag-executions/{execution_id}/stream-token", timeout=30).status_code
            == 401
        )

        fresh = client.post(f"/jobs/{execution_id}/stream-token", json={})
        assert fresh.status_code == 200, fresh.text
        assert sorted(fresh.json()) == ["eventsUrl", "executionId", "streamTokenExpiresAt"]
        assert fresh.json()["executionId"] == execution_id
        for reply in (accepted, fresh):
            assert KEY not in reply.text and KEY not in json.dumps(dict(reply.headers))

        # The stream needs only the token in the URL: no key, from the page's origin.
        stream = httpx.get(
            fresh.json()["eventsUrl"] + "&lastEventId=0", headers={"origin": webapp}, timeout=30
        )
        assert stream.status_code == 200, stream.text
        assert stream.headers["access-control-allow-origin"] == webapp
        assert "event: execution.created" in stream.text

        # What it refuses.
        unknown = client.post("/jobs/dag-exec_0123456789abcdef/stream-token", json={})
        assert unknown.status_code == 404, unknown.text
        assert client.post("/jobs/..%2Fwebhooks/stream-token", json={}).status_code == 400
        invalid = client.post("/jobs", json={"tasks": [{"id": 1}]})
        assert invalid.status_code == 400 and invalid.json()["problems"], invalid.text  # dagcast's, passed on
        assert (
            client.post("/jobs", content=b"{", headers={"content-type": "application/json"}).status_code
            == 400
        )
        # Another site's page cannot make a visitor's browser submit with the key.
        assert client.post("/jobs", json=job, headers={"origin": "http://evil.example"}).status_code == 403
        as_form = client.post("/jobs", content=json.dumps(job), headers={"content-type": "text/plain"})
        assert as_form.status_code == 415

        # It serves the page, and nothing else of its directory.
        assert client.get("/").headers["content-type"].startswith("text/html")
        assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
        # The stream loop is the client package as the monitor loads it, served as is: one copy.
        client_js = client.get("/dagcast-client.js")
        assert client_js.headers["content-type"].startswith("text/javascript")
        assert client_js.content == (ROOT / "monitor" / "dagcast-client.js").read_bytes()
        assert client.get("/backend.py").status_code == 404


def test_a_backend_with_a_wrong_key_says_so_without_showing_a_key(api):
    wrong = new_api_key()[0]
    with run_backend("wrong-key", api, wrong) as origin:
        reply = httpx.post(f"{origin}/jobs", json={"tasks": [echo(1, "x")]}, timeout=30)
    assert reply.status_code == 502, reply.text  # not 401: the page's user cannot fix it
    assert "DAGCAST_API_KEY" in reply.json()["error"]
    assert wrong not in reply.text and KEY not in reply.text
