"""Approvals on `dagcast up`: the monitor's Approve / Reject buttons in headless Chromium, and
`dagcast approve` from the CLI, each ending an approval task's wait over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.support.api import submit
from tests.support.browser import require_browser
from tests.support.jobs import approval, echo

pytestmark = pytest.mark.e2e
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def stack(server: str) -> str:
    """The package's `dagcast up` (approvals need no option of their own: one server start less)."""
    return server


def execution(base: str, eid: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/api/v1/dag-executions/{eid}", timeout=30).json()
    return body


def wait_for(base: str, eid: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(view := execution(base, eid)):
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    return view


def task_status(view: dict[str, Any], task_id: int) -> str:
    return str(next(t["status"] for t in view["tasks"] if t["taskId"] == task_id))


def test_dagcast_approve_approves_and_rejects_from_the_cli(stack):
    eid = submit(stack, {"tasks": [approval(1, "Ship?"), echo(2, "shipped", [1])]})["executionId"]
    wait_for(stack, eid, lambda v: task_status(v, 1) == "awaiting_decision")
    cli = [sys.executable, "-m", "dagcast.cli", "approve", eid, "1", "--url", stack, "--comment", "ok"]
    run = subprocess.run(cli, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f"task 1 of {eid} approved: completed" in run.stdout
    done = wait_for(stack, eid, lambda v: v["status"] != "running")
    assert done["status"] == "completed"
    again = subprocess.run([*cli, "--reject"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert again.returncode != 0 and "already decided" in again.stderr

    rejected = submit(stack, {"tasks": [approval(1, "Ship?")]})["executionId"]
    wait_for(stack, rejected, lambda v: task_status(v, 1) == "awaiting_decision")
    cli = [sys.executable, "-m", "dagcast.cli", "approve", rejected, "1", "--url", stack, "--reject"]
    run = subprocess.run([*cli, "--comment", "no"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    view = wait_for(stack, rejected, lambda v: v["status"] != "running")
    assert view["status"] == "failed" and view["tasks"][0]["error"] == "rejected: no"


@pytest.mark.parametrize("approve", [True, False])
def test_the_monitor_shows_approve_and_reject_for_a_waiting_task(stack, approve):
    require_browser()
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch

    eid = submit(stack, {"tasks": [echo(1, "build"), approval(2, "Deploy the build?", [1])]})["executionId"]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(f"{stack}/?id={eid}")
            page.wait_for_selector("#decision-approve", timeout=TIMEOUT_MS)  # shown once it waits
            node = page.locator('#graph .node[data-task-id="2"]')
            assert node.get_attribute("data-status") == "awaiting_decision"
            assert "Deploy the build?" in page.locator("#task-detail").inner_text()
            page.fill("#decision-comment", "from the page")
            page.click("#decision-approve" if approve else "#decision-reject")
            ended = "completed" if approve else "failed"
            page.wait_for_function(
                f"document.querySelector('#graph .node[data-task-id=\"2\"]').dataset.status === '{ended}'",
                timeout=TIMEOUT_MS,
            )
            assert page.locator("#decision-approve").count() == 0  # a decided task has no buttons
        finally:
            browser.close()
    view = wait_for(stack, eid, lambda v: v["status"] != "running")
    decided = next(t for t in view["tasks"] if t["taskId"] == 2)
    assert decided["decision"]["approve"] is approve and decided["decision"]["comment"] == "from the page"
