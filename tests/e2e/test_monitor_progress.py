"""The monitor (docs/monitor.md) showing a running task's live text (substep.progress) in a real
headless Chromium against `dagcast up`: under the running node, in the task panel (growing while
the task runs, always a prefix of the final result), and in the event log; gone once the task has
completed. The task is an ``echo`` with ``streamSeconds`` (ctx.emit_text a word at a time)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import submit
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.jobs import task

pytestmark = pytest.mark.e2e
TIMEOUT_MS = 60_000
TEXT = " ".join(f"word{n:02d}" for n in range(60)) + " the end."
STREAM_SECONDS = 8

NODE = '#graph .node[data-task-id="1"]'
# The node's live line, while the node is running (empty otherwise).
LIVE_WHILE_RUNNING = f"""() => {{
  const node = document.querySelector('{NODE}');
  return Boolean(node && node.dataset.status === 'running' && node.querySelector('.live').textContent);
}}"""
READ = f"""() => ({{
  nodeStatus: document.querySelector('{NODE}').dataset.status,
  nodeLine: document.querySelector('{NODE} .live').textContent,
  execStatus: document.getElementById('exec-status').dataset.status,
  result: document.getElementById('result').textContent,
  panel: document.getElementById('live-text')?.textContent ?? null,
  panelChars: Number(document.getElementById('live-text')?.dataset.chars ?? 0),
  logged: [...document.querySelectorAll('#log li[data-type="substep.progress"]')].map(
    (li) => ({{task: li.dataset.taskId, what: li.querySelector('.what').textContent}})),
}})"""


@pytest.fixture(scope="module")
def stack(server: str) -> str:
    """The package's `dagcast up` (no option of its own is needed: one server start less)."""
    return server


def _streaming_job() -> dict[str, Any]:
    params = {"text": TEXT, "streamSeconds": STREAM_SECONDS}
    return {
        "originalRequest": "Stream a text",
        "tasks": [{**task(1, "echo", params), "description": "Write"}],
    }


def test_the_monitor_shows_a_running_tasks_text_as_it_arrives(stack):
    require_browser()
    from playwright.sync_api import sync_playwright

    eid = submit(stack, _streaming_job())["executionId"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{stack}/?id={eid}")
            page.wait_for_function(LIVE_WHILE_RUNNING, timeout=TIMEOUT_MS)
            page.click(NODE)
            page.wait_for_selector("#live-text", timeout=TIMEOUT_MS)
            first = page.evaluate(READ)
            # More text arrives while the task still runs: the panel grows.
            page.wait_for_function(
                f"Number(document.getElementById('live-text')?.dataset.chars ?? 0) > {first['panelChars']}",
                timeout=TIMEOUT_MS,
            )
            later = page.evaluate(READ)
            page.wait_for_selector(f'{NODE}[data-status="completed"]', timeout=TIMEOUT_MS)
            page.wait_for_function(
                "document.getElementById('exec-status').dataset.status === 'completed'", timeout=TIMEOUT_MS
            )
            done = page.evaluate(READ)
        finally:
            browser.close()
    assert errors == []
    for seen in (first, later):  # partial text, while the task and the execution run
        assert seen["nodeStatus"] == "running" and seen["execStatus"] == "running"
        assert seen["result"] == "not finished yet"
        assert seen["panel"] and TEXT.startswith(seen["panel"]) and len(seen["panel"]) < len(TEXT)
        assert seen["panelChars"] == len(seen["panel"])
        # under the node: the end of the text's last line
        assert seen["nodeLine"] and seen["panel"].strip().endswith(seen["nodeLine"].lstrip("…"))
    assert len(later["panel"]) > len(first["panel"])
    assert first["logged"] and all(e["task"] == "1" for e in first["logged"])
    assert "task 1 @0 +" in first["logged"][0]["what"]
    # Completed: the live line goes, the result is shown, every progress event stayed in the log.
    assert done["nodeLine"] == "" and done["panel"] is None
    assert done["result"] == TEXT
    assert len(done["logged"]) >= max(2, len(later["logged"]))
