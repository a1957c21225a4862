"""The JS client (clients/js, its ES modules as published) in headless Chromium against `dagcast up`:
tokens that expire while the server cuts the stream every second, and the 204 end. The page is
tests/e2e/browser/client.html, served with the repository from another origin than the stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, start_server, static_server, stop_server
from tests.support.api import submit
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e
TOKEN_TTL_SECONDS = 10  # the smallest DAGCAST_TOKEN_TTL_SECONDS allowed


@pytest.fixture(scope="module")
def repo_origin() -> Iterator[str]:
    with static_server(ROOT) as origin:
        yield origin


@pytest.fixture(scope="module")
def stack(repo_origin: str) -> Iterator[str]:
    proc, base = start_server(
        "js-client",
        "--max-stream-seconds",
        "1.0",
        "--cors-origin",
        repo_origin,
        env={"DAGCAST_RETRY_MS": "300", "DAGCAST_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS)},
    )
    yield base
    stop_server(proc)


def watch_in_browser(repo_origin: str, query: dict[str, str], timeout_ms: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{repo_origin}/tests/e2e/browser/client.html?" + str(httpx.QueryParams(query)))
            page.wait_for_function("window.ended !== undefined", timeout=timeout_ms)
            seen: dict[str, Any] = page.evaluate(
                "({received: window.received, states: window.states, refreshes: window.refreshes,"
                " ended: window.ended, state: window.state})"
            )
        finally:
            browser.close()
    return seen


def test_the_client_follows_an_execution_across_cuts_and_expired_tokens_to_its_end(repo_origin, stack):
    """The job outlives its first token; the server cuts every second, so some reconnect finds the
    token expired (401): the client gets a fresh one and resumes. Every event once, in order, and
    fold's state is the execution's outcome."""
    require_browser()
    job = {"tasks": [sleep(1, 4), sleep(2, 4, [1]), sleep(3, 4, [2]), echo(4, "done: {{3}}", [3])]}
    accepted = submit(stack, job)
    seen = watch_in_browser(
        repo_origin,
        {"events": accepted["eventsUrl"], "id": accepted["executionId"], "api": stack, "since": "0"},
        timeout_ms=90_000,
    )
    assert "error" not in seen["ended"], seen
    seqs = [r["seq"] for r in seen["received"]]
    assert seqs == list(range(1, len(seqs) + 1)), f"lost, repeated or reordered: {seqs}"
    assert seen["received"][-1]["type"] == "execution.completed"
    assert seen["ended"]["seq"] == seqs[-1]
    assert seen["refreshes"] >= 1, seen["states"]  # a reconnect past the token's expiry
    assert seen["states"].count("open") >= 3, seen["states"]  # the server cut it, and it came back
    state = seen["state"]
    assert state["status"] == "completed" and state["done"] is True
    assert state["finalResult"] == "done: slept 4s"
    assert {t["status"] for t in state["tasks"].values()} == {"completed"}


def test_resuming_at_the_terminal_event_is_the_204_end_not_a_failure(repo_origin, stack):
    """The server answers 204; EventSource only says CLOSED. The client's HEAD says 204: it ends,
    with no token refresh and no error."""
    require_browser()
    accepted = submit(stack, {"tasks": [echo(1, "x")]})
    history = httpx.URL(accepted["eventsUrl"]).copy_merge_params({"since": "0"})
    with httpx.stream("GET", history, timeout=60) as reply:
        last = max(int(line[4:]) for line in reply.iter_lines() if line.startswith("id: "))
    seen = watch_in_browser(
        repo_origin,
        {"events": accepted["eventsUrl"], "id": accepted["executionId"], "api": stack, "since": str(last)},
        timeout_ms=30_000,
    )
    assert seen["ended"] == {"seq": last}, seen
    assert seen["received"] == [] and seen["refreshes"] == 0
    assert seen["states"] == ["connecting", "refreshing", "closed"]
