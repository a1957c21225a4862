"""The monitor page (monitor/, docs/monitor.md) served by `dagcast up` at ``/``, in a real headless
Chromium: it lists recent executions, submits a job, and shows it live — graph nodes going waiting →
running → completed, Gantt bars growing, every event once in seq order (across stream cuts every
2 s), the counters and the final result; a failed job shows its failed and skipped tasks; and the
local front still answers the REST API, /healthz and /local/stats around it.

``DAGCAST_UPDATE_SCREENSHOT=1 .venv/bin/pytest tests/e2e/test_monitor.py`` also writes the README's
screenshot, docs/images/monitor.png (1280×800), from the finished diamond job."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    SUBSTEP_STARTED,
)
from tests.e2e.conftest import ROOT, start_server, static_server, stop_server
from tests.support.api import submit
from tests.support.browser import ARTIFACTS, launch, require_browser
from tests.support.jobs import echo, sleep, task
from tests.support.monitor_page import CLOSED, FINISHED, READ_PAGE

pytestmark = pytest.mark.e2e
MONITOR = ROOT / "monitor"
README_SCREENSHOT = ROOT / "docs" / "images" / "monitor.png"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 60_000
MAX_STREAM_SECONDS = 2  # the server cuts every stream this often: the page must resume without a gap

# Every data-status a graph node takes, in order (recorded as the page changes it).
RECORD_NODE_STATES = """() => {
  window.seenStates = {};
  const note = (n) => {
    const list = (window.seenStates[n.dataset.taskId] ||= []);
    if (list.at(-1) !== n.dataset.status) list.push(n.dataset.status);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.matches('#graph .node')) note(r.target);
      for (const added of r.addedNodes) if (added.querySelectorAll) added.querySelectorAll('.node').forEach(note);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
}"""
# After the end the page reads the execution once more (finish() in monitor/monitor.js), marks its
# model settled and draws the changes; drawn, nothing is left dirty.
SETTLED = (
    "(() => { const v = window.DagcastMonitor.view(); return Boolean(v?.settled && v.dirty.size === 0); })()"
)
NEXT_FRAME = "() => new Promise((drawn) => requestAnimationFrame(() => drawn(true)))"
# The event log's entries, with whether each is shown, and the type filters' boxes and counts.
READ_LOG = """() => ({
  entries: [...document.querySelectorAll('#log li[data-seq]')].map((li) => ({
    seq: Number(li.dataset.seq), type: li.dataset.type, shown: li.checkVisibility()})),
  filters: Object.fromEntries([...document.querySelectorAll('#log-filters label[data-type]')].map(
    (l) => [l.dataset.type, {checked: l.querySelector('input').checked, n: Number(l.querySelector('.n').textContent)}])),
})"""
UPDATED_FILTER = f'#log-filters label[data-type="{EXECUTION_UPDATED}"] input'
BAR_WIDTH = (
    '(id) => document.querySelector(`.gantt-bar[data-task-id="${id}"]`)?.getBoundingClientRect().width ?? 0'
)


def wait_until_settled(page: Any) -> None:
    """Until the page has read the final snapshot and drawn what it changed."""
    page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
    page.evaluate(NEXT_FRAME)  # the frame the last flush was scheduled for has been drawn


@pytest.fixture(scope="module")
def static_origin() -> Iterator[str]:
    """monitor/ on a plain static host (another origin than the API), as for a deployed stack."""
    with static_server(MONITOR) as origin:
        yield origin


@pytest.fixture(scope="module")
def stack(static_origin: str) -> Iterator[str]:
    proc, base = start_server(
        "monitor",
        "--max-stream-seconds",
        str(MAX_STREAM_SECONDS),
        "--cors-origin",
        static_origin,
        # tests.support.plugins registers tests.flaky (a python task that fails, then succeeds on a retry)
        env={"DAGCAST_RETRY_MS": "300", "DAGCAST_PLUGINS": "tests.support.plugins", "PYTHONPATH": str(ROOT)},
    )
    yield base
    stop_server(proc)


def diamond_job() -> dict[str, Any]:
    """A diamond (1 → 2, 3, 4 → 5) with a 3 s branch and a branch that succeeds on its retry."""
    flaky = task(
        4,
        "python",
        {"function": "tests.flaky", "args": {"key": f"api-{uuid.uuid4().hex[:6]}", "failures": 1}},
        [1],
    )
    return {
        "originalRequest": "Weekly weather report: fetch, three branches, combine",
        "tasks": [
            {**sleep(1, 1), "description": "Fetch the city's forecast"},
            {**sleep(2, 3, [1]), "description": "Summarise the week (slow)"},
            {**sleep(3, 1, [1]), "description": "Summarise today"},
            {
                **flaky,
                "description": "Fetch alerts (flaky API)",
                "retries": {"count": 2, "backoffSeconds": 1},
            },
            {
                **echo(5, "week: {{2}} / today: {{3}} / alerts: {{4}}", [2, 3, 4]),
                "description": "Write the report",
            },
        ],
    }


def _final_seq(api: str, execution_id: str) -> int:
    reply = httpx.get(f"{api}/api/v1/dag-executions/{execution_id}", timeout=30)
    assert reply.status_code == 200, reply.text
    seq: int = reply.json()["seq"]
    return seq


def _rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def test_the_local_front_serves_the_monitor_and_still_the_api(stack):
    with httpx.Client(base_url=stack, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        # Its relative links resolve under /monitor/, as they do next to it on a static host.
        assert '<base href="/monitor/">' in page.text
        assert client.head("/").status_code == 200

        for path, kind in [
            ("/monitor/monitor.js", "text/javascript"),
            ("/monitor/dagcast-client.js", "text/javascript"),
            ("/monitor/stream.js", "text/javascript"),
            ("/monitor/runs.js", "text/javascript"),
            ("/monitor/layout.js", "text/javascript"),
            ("/monitor/monitor.css", "text/css"),
            ("/monitor/", "text/html"),
        ]:
            reply = client.get(path)
            assert reply.status_code == 200, path
            assert reply.headers["content-type"].split(";")[0] in {kind, "application/javascript"}, path
            assert reply.headers["cache-control"] == "no-cache", path
            assert reply.headers["x-content-type-options"] == "nosniff", path
            # Revalidation is cheap: an unchanged file is a 304.
            again = client.get(path, headers={"if-none-match": reply.headers["etag"]})
            assert again.status_code == 304, path
        assert "<base" not in client.get("/monitor/").text
        redirect = client.get("/monitor?id=x")
        assert redirect.status_code == 307 and redirect.headers["location"] == "/monitor/?id=x"
        assert client.get("/monitor/nope.js").status_code == 404

        # Everything the page loads is its own: no CDN, no other origin.
        html = (MONITOR / "index.html").read_text()
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not re.match(r"(?:[a-z]+:)?//", ref), f"{ref} is not served with the page"
            if not ref.startswith(("data:", "#")):
                assert (MONITOR / ref).is_file(), ref

        # The rest of the front is as it was.
        assert client.get("/healthz").json()["ok"] is True
        assert "sse" in client.get("/local/stats").json()
        listed = client.get("/api/v1/dag-executions", params={"limit": 1})
        assert listed.status_code == 200 and "executions" in listed.json()
        assert client.post("/").status_code == 404  # other methods on / still go to the REST API
        assert client.get("/api/v1/nope").status_code == 404


def test_the_layout_levels_tasks_by_longest_path_and_uncrosses_edges(stack):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(f"{stack}/")
            out = page.evaluate(
                """() => {
                  // 5 depends on 1 (level 0) and on 4 (level 1): the longest path puts it at level 2.
                  const tasks = [{id: 1}, {id: 2}, {id: 3, dependencies: [2]}, {id: 4, dependencies: [1]},
                                 {id: 5, dependencies: [1, 4]}, {id: 6, dependencies: [6, 99]}];
                  const g = DagcastLayout.layout(tasks);
                  const naive = {columns: [[1, 2, 6], [3, 4], [5]], edges: g.edges, level: g.level};
                  return {levels: Object.fromEntries(g.level), columns: g.columns,
                          crossings: DagcastLayout.crossings(g), naive: DagcastLayout.crossings(naive)};
                }"""
            )
        finally:
            browser.close()
    assert out["levels"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 2, "6": 0}  # self and unknown deps ignored
    assert out["naive"] == 1  # 2→3 crosses 1→4 in id order…
    assert out["crossings"] == 0, out["columns"]  # …and not once reordered


def test_a_failed_job_shows_failed_and_skipped_tasks_also_after_a_reload(stack):
    require_browser()
    from playwright.sync_api import sync_playwright

    key = uuid.uuid4().hex
    # Task 2 fails once task 3 is running (a plain fail could end before 3 starts on a loaded
    # machine, and failFast would then skip 3): running tasks finish, the rest are skipped.
    failing = task(
        2, "python", {"function": "tests.fail_once_started", "args": {"key": key, "message": "boom"}}, [1]
    )
    running = task(
        3, "python", {"function": "tests.started_then_sleep", "args": {"key": key, "seconds": 2}}, [1]
    )
    job = {
        "originalRequest": "A failing branch",
        "tasks": [sleep(1, 0.5), {**failing, "description": "fail 2"}, running, echo(4, "never", [2, 3])],
    }
    execution_id = submit(stack, job)["executionId"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            # Any execution id, straight from the URL: the page gets a stream token for it.
            page.goto(f"{stack}/?id={execution_id}")
            try:
                page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
                wait_until_settled(page)
            finally:
                live = page.evaluate(READ_PAGE)
                page.screenshot(path=str(ARTIFACTS / "monitor-failed.png"))
            # Opened again once it has finished: the same picture, from the replayed history.
            page.reload()
            page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            wait_until_settled(page)
            again = page.evaluate(READ_PAGE)
        finally:
            browser.close()

    for seen in (live, again):
        assert seen["error"] is None, seen["error"]
        assert seen["executionId"] == execution_id
        assert seen["status"] == "failed"
        statuses = {k: n["status"] for k, n in seen["nodes"].items()}
        assert statuses == {"1": "completed", "2": "failed", "3": "completed", "4": "skipped"}, statuses
        colors = {k: n["stroke"] for k, n in seen["nodes"].items()}
        assert colors["2"] == _rgb(seen["colors"]["failed"])
        assert colors["4"] == _rgb(seen["colors"]["skipped"])
        assert colors["1"] == _rgb(seen["colors"]["completed"])
        assert len({colors["1"], colors["2"], colors["4"]}) == 3
        assert seen["counters"] == {"waiting": 0, "running": 0, "completed": 2, "failed": 1, "skipped": 1}
        assert {b["task"]: b["status"] for b in seen["bars"]} == {1: "completed", 2: "failed", 3: "completed"}
        assert seen["resultState"] == "error"
        assert seen["result"] == "failed (taskFailed): task 2 (fail 2) failed: boom"
        final = _final_seq(stack, execution_id)
        assert [e["seq"] for e in seen["log"]] == list(range(1, final + 1))
        assert seen["log"][-1]["type"] == EXECUTION_FAILED


def test_the_page_submits_a_job_and_shows_it_live(stack):
    require_browser()
    from playwright.sync_api import sync_playwright

    earlier = submit(stack, {"originalRequest": "Say hello", "tasks": [echo(1, "hello")]})["executionId"]
    job = diamond_job()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{stack}/")
            # Recent executions, newest first, each a link to ?id=…
            page.wait_for_selector(f'#recent li[data-execution-id="{earlier}"]', timeout=TIMEOUT_MS)
            href = page.get_attribute(f'#recent a[data-execution-id="{earlier}"]', "href")
            assert href == f"{stack}/?id={earlier}"
            page.evaluate(RECORD_NODE_STATES)

            # Submit through the page.
            page.click("#submit-box summary")
            page.fill("#job", json.dumps(job, indent=2))
            page.click("#submit-form button[type=submit]")

            # While it runs: task 2 sleeps 3 s, so it is seen running, and its bar grows live.
            page.wait_for_selector(
                '#graph .node[data-task-id="2"][data-status="running"]', timeout=TIMEOUT_MS
            )
            page.wait_for_function(f"({BAR_WIDTH})(2) > 0", timeout=TIMEOUT_MS)
            running = page.evaluate(READ_PAGE)
            width_before = page.evaluate(f"({BAR_WIDTH})(2)")
            page.wait_for_timeout(800)
            width_after = page.evaluate(f"({BAR_WIDTH})(2)")
            bar_status = page.get_attribute('.gantt-bar[data-task-id="2"]', "data-status")
            # The log's type filters: execution.updated off while it runs (entries so far get
            # hidden, and so do those that arrive meanwhile)…
            page.uncheck(UPDATED_FILTER)
            unchecked_after = max(e["seq"] for e in page.evaluate(READ_LOG)["entries"])
            try:
                page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
                wait_until_settled(page)  # the final snapshot's read, and the last frame
            finally:  # keep what the page showed, also when it never finished
                seen = page.evaluate(READ_PAGE)
                states = page.evaluate("window.seenStates")
                filtered = page.evaluate(READ_LOG)
                page.screenshot(path=str(ARTIFACTS / "monitor-completed.png"))
            # … and on again: all of them are back.
            page.check(UPDATED_FILTER)
            refiltered = page.evaluate(READ_LOG)
            url = page.url

            # The keyboard: Tab lands on a graph node, arrows move along the edges, Enter shows it.
            page.focus('#graph .node[tabindex="0"]')
            assert page.evaluate("document.activeElement.dataset.taskId") == "1"
            page.keyboard.press("ArrowRight")
            child = page.evaluate("document.activeElement.dataset.taskId")
            assert child in {"2", "3", "4"}
            page.keyboard.press("Enter")
            assert page.get_attribute("#task-detail dl", "data-task-id") == child

            # The retried task: two bars, and its details list both attempts.
            page.click('#gantt-rows .gantt-row[data-task-id="4"]')
            detail = page.text_content("#task-detail")
            page.evaluate("document.activeElement.blur()")
            page.click("#submit-box summary")  # closed again: the picture is about the execution
            page.wait_for_selector(
                f'#recent a[data-execution-id="{seen["executionId"]}"][aria-current="page"]'
            )
            page.screenshot(path=str(ARTIFACTS / "monitor-readme.png"))
            if os.environ.get("DAGCAST_UPDATE_SCREENSHOT"):
                README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(README_SCREENSHOT))

            # Back to / (no execution), then Forward: the execution again, replayed whole.
            page.go_back()
            page.wait_for_selector("#placeholder", state="visible")
            assert page.is_hidden("#execution") and page.get_attribute("#stream", "data-state") == "idle"
            page.go_forward()
            page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            replayed = page.evaluate(READ_PAGE)
        finally:
            browser.close()

    assert errors == []
    assert seen["error"] is None, seen["error"]
    execution_id = seen["executionId"]
    assert execution_id.startswith("dag-exec_") and url == f"{stack}/?id={execution_id}"

    # Live: task 2 running, with a striped bar that grew while we watched, and a running counter.
    assert running["nodes"]["2"]["status"] == "running", running
    assert running["nodes"]["5"]["status"] == "waiting", running
    assert running["counters"]["running"] >= 1 and running["counters"]["waiting"] >= 1, running
    assert running["status"] == "running"
    assert bar_status == "running"
    assert width_after > width_before > 0
    # … and the nodes' colours, from the DOM: running, waiting and completed each their own.
    colors = {state: _rgb(c) for state, c in running["colors"].items()}
    assert running["nodes"]["2"]["stroke"] == colors["running"], running["nodes"]
    assert running["nodes"]["5"]["stroke"] == colors["waiting"], running["nodes"]
    assert running["nodes"]["1"]["status"] == "completed", running["nodes"]
    assert running["nodes"]["1"]["stroke"] == colors["completed"], running["nodes"]
    assert len({colors["running"], colors["waiting"], colors["completed"]}) == 3, colors

    # Every node went waiting → running → completed (a short task may skip the frame it ran in).
    for tid in map(str, range(1, 6)):
        path = states[tid]
        assert path[0] == "waiting" and path[-1] == "completed", (tid, path)
        assert set(path) <= {"waiting", "running", "retrying", "completed"}, (tid, path)
    assert "running" in states["2"], states
    assert "retrying" in states["4"] or len([b for b in seen["bars"] if b["task"] == 4]) == 2

    # The graph: levels left to right, one edge per dependency.
    assert {k: n["level"] for k, n in seen["nodes"].items()} == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2}
    assert sorted(seen["edges"]) == [[1, 2], [1, 3], [1, 4], [2, 5], [3, 5], [4, 5]]
    # Drawn left to right: a level's nodes share a column, and each column is right of the last.
    x_by_level: dict[int, set[float]] = {}
    for n in seen["nodes"].values():
        x_by_level.setdefault(n["level"], set()).add(round(n["x"], 1))
    assert all(len(xs) == 1 for xs in x_by_level.values()), x_by_level
    columns = [x_by_level[level].pop() for level in sorted(x_by_level)]
    assert columns == sorted(columns) and len(set(columns)) == len(columns), columns
    for a, b in seen["edges"]:
        assert seen["nodes"][str(b)]["x"] > seen["nodes"][str(a)]["x"], (a, b, seen["nodes"])
    assert all(n["status"] == "completed" for n in seen["nodes"].values()), seen["nodes"]
    assert all(n["stroke"] == _rgb(seen["colors"]["completed"]) for n in seen["nodes"].values())

    # The timeline: a bar per attempt, positive widths, task 4's first attempt retried.
    bars = {(b["task"], b["attempt"]): b for b in seen["bars"]}
    assert sorted(bars) == [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2), (5, 1)]
    assert all(b["width"] > 0 for b in bars.values()), bars
    assert bars[(4, 1)]["status"] == "retried" and bars[(4, 2)]["status"] == "completed"
    assert bars[(2, 1)]["left"] >= bars[(1, 1)]["left"] + bars[(1, 1)]["width"] - 1  # 2 starts after 1 ends
    assert bars[(5, 1)]["left"] >= bars[(2, 1)]["left"] + bars[(2, 1)]["width"] - 1
    assert "attempt 1: retried" in detail and "attempt 2: completed" in detail, detail

    # The log: every event once, in seq order, from execution.created to execution.completed —
    # although the server cut the stream every 2 s.
    final = _final_seq(stack, execution_id)
    assert [e["seq"] for e in seen["log"]] == list(range(1, final + 1)), seen["log"]
    assert seen["log"][0]["type"] == EXECUTION_CREATED
    assert seen["log"][-1]["type"] == EXECUTION_COMPLETED
    assert seen["connections"] >= 2, seen["connections"]

    # The type filter: with execution.updated off, exactly those entries are hidden — also the ones
    # that arrived after it was turned off — and its count still counts them; back on, all show.
    entries = filtered["entries"]
    assert [e["seq"] for e in entries] == [e["seq"] for e in seen["log"]]
    updated = [e for e in entries if e["type"] == EXECUTION_UPDATED]
    assert updated and any(e["seq"] > unchecked_after for e in updated), (unchecked_after, updated)
    assert all(not e["shown"] for e in updated), updated
    assert all(e["shown"] for e in entries if e["type"] != EXECUTION_UPDATED), entries
    assert filtered["filters"][EXECUTION_UPDATED] == {"checked": False, "n": len(updated)}
    assert all(f["checked"] for t, f in filtered["filters"].items() if t != EXECUTION_UPDATED)
    assert filtered["filters"][SUBSTEP_STARTED]["n"] == 6  # 5 tasks, one retried
    assert all(e["shown"] for e in refiltered["entries"]), refiltered["entries"]
    assert refiltered["filters"][EXECUTION_UPDATED] == {"checked": True, "n": len(updated)}

    assert seen["counters"] == {"waiting": 0, "running": 0, "completed": 5, "failed": 0, "skipped": 0}
    assert seen["status"] == "completed" and seen["stream"] == "closed"
    assert seen["elapsedMs"] > 3000
    assert re.fullmatch(
        r"week: slept 3s / today: slept 1s / alerts: api-\w+ succeeded on call 2", seen["result"]
    )
    assert seen["resultState"] == "complete"
    assert replayed["executionId"] == execution_id
    assert replayed["log"] == seen["log"] and replayed["counters"] == seen["counters"]


def test_the_page_works_from_another_origin_with_the_api_in_the_url(stack, static_origin):
    """As for a deployed stack: the files on any static host, ?api= pointing at the REST API, and
    the stream allowing the page's origin (DAGCAST_CORS_ORIGINS / CorsOrigins)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    execution_id = submit(
        stack, {"originalRequest": "From a static host", "tasks": [sleep(1, 0.5), echo(2, "hosted", [1])]}
    )["executionId"]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{static_origin}/index.html?" + str(httpx.QueryParams({"api": stack})))
            page.fill("#open-id", execution_id)  # any id, typed in
            page.press("#open-id", "Enter")
            page.wait_for_function(f"({FINISHED}) && ({CLOSED})", timeout=TIMEOUT_MS)
            page.wait_for_selector(f'#recent li[data-execution-id="{execution_id}"]', timeout=TIMEOUT_MS)
            seen = page.evaluate(READ_PAGE)
            link = page.get_attribute(f'#recent a[data-execution-id="{execution_id}"]', "href")
        finally:
            browser.close()
    assert seen["error"] is None, seen["error"]
    assert seen["status"] == "completed" and seen["result"] == "hosted"
    assert {k: n["status"] for k, n in seen["nodes"].items()} == {"1": "completed", "2": "completed"}
    # Links keep the API: the next page opened from the list talks to the same stack.
    assert link is not None and httpx.URL(link).params["api"] == stack


# The ids the list shows, once it has loaded the answer to what its filters ask now.
LISTED = "() => [...document.querySelectorAll('#recent li[data-execution-id]')].map((li) => li.dataset.executionId)"


def _compact(ids: list[str]) -> str:
    """``ids`` as the page's JSON.stringify writes them (no spaces)."""
    return json.dumps(ids, separators=(",", ":"))


def test_the_list_filters_by_tag_status_and_time(stack):
    """The list's filters are the REST list's (status, tags: all of them, since): issue 22 item 4."""
    require_browser()
    from playwright.sync_api import sync_playwright

    tag = f"nightly-{uuid.uuid4().hex[:8]}"
    ok = submit(stack, {"originalRequest": "fine", "tasks": [echo(1, "x")], "tags": [tag, "team:a"]})
    bad = submit(
        stack, {"originalRequest": "broken", "tasks": [task(1, "fail", {"message": "no"})], "tags": [tag]}
    )
    for eid in (ok["executionId"], bad["executionId"]):
        deadline = time.monotonic() + 60
        while httpx.get(f"{stack}/api/v1/dag-executions/{eid}", timeout=30).json()["status"] == "running":
            assert time.monotonic() < deadline, f"{eid} did not end"
            time.sleep(0.1)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{stack}/")
            page.wait_for_function(
                "document.getElementById('recent').dataset.loaded === 'true'", timeout=TIMEOUT_MS
            )
            page.fill("#recent-tag", tag)
            both = [bad["executionId"], ok["executionId"]]
            page.wait_for_function(
                f"JSON.stringify(({LISTED})()) === {json.dumps(_compact(both))}", timeout=TIMEOUT_MS
            )
            assert (
                page.get_attribute(f'#recent li[data-execution-id="{ok["executionId"]}"]', "data-tags")
                == f"{tag} team:a"
            )
            page.select_option("#recent-status", "failed")
            page.wait_for_function(
                f"JSON.stringify(({LISTED})()) === {json.dumps(_compact([bad['executionId']]))}",
                timeout=TIMEOUT_MS,
            )
            page.select_option("#recent-status", "")
            page.fill("#recent-tag", f"{tag} team:a")  # all of them
            page.wait_for_function(
                f"JSON.stringify(({LISTED})()) === {json.dumps(_compact([ok['executionId']]))}",
                timeout=TIMEOUT_MS,
            )
            page.select_option("#recent-since", "3600000")  # created in the last hour: still there
            page.wait_for_function("document.getElementById('recent').getAttribute('aria-busy') === 'false'")
            assert page.evaluate(LISTED) == [ok["executionId"]]
            page.fill("#recent-tag", f"nobody-{uuid.uuid4().hex[:6]}")
            page.wait_for_function(
                f"({LISTED})().length === 0 && !document.getElementById('recent-empty').hidden",
                timeout=TIMEOUT_MS,
            )
            assert page.text_content("#recent-empty") == "No executions match these filters."
            assert page.is_hidden("#error")
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "monitor-list-filters.png"))
            browser.close()


def test_the_list_shows_a_run_started_elsewhere_live_without_polling(stack):
    """The list follows the many-run stream (GET /api/v1/dag-executions/events): a job submitted
    through the API, not the page, appears and reaches completed while the list is read only once —
    through the stream's cuts every 2 s, which EventSource resumes with its Last-Event-ID."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            lists: list[str] = []
            page.on("request", lambda r: lists.append(r.url) if "/api/v1/dag-executions?" in r.url else None)
            page.goto(stack)
            page.wait_for_function(
                "document.getElementById('recent').dataset.live === 'live'", timeout=TIMEOUT_MS
            )
            page.wait_for_function(
                "document.getElementById('recent').dataset.loaded === 'true'", timeout=TIMEOUT_MS
            )
            execution_id = submit(stack, {"originalRequest": "Started elsewhere", "tasks": [sleep(1, 1.0)]})[
                "executionId"
            ]
            row = f'#recent li[data-execution-id="{execution_id}"]'
            page.wait_for_selector(row, timeout=10_000)  # sooner than any poll the page used to make
            page.wait_for_selector(f'{row}[data-status="completed"]', timeout=10_000)
            text = page.text_content(row)
        finally:
            browser.close()
    assert text is not None and "Started elsewhere" in text
    assert len(lists) == 1, lists  # read once; the rest came live
