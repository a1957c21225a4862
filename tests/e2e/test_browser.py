"""A real browser's EventSource (Debian's headless Chromium, driven by Playwright) watches an
execution while the server cuts the stream every second: it must end with every event exactly once,
in order, and in the CLOSED state after the server's 204. And it receives a gzip stream (Chromium
asks for one) live, event by event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import start_server, static_server, stop_server
from tests.support.api import submit
from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.gate import gates
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    with static_server(Path(__file__).parent / "browser") as origin:
        yield origin


@pytest.fixture(scope="module")
def cutting_server(page_server: str) -> Iterator[str]:
    # A different origin than the page: the browser enforces the CORS allow-list for real.
    proc, base = start_server(
        "browser",
        "--max-stream-seconds",
        "1.0",
        "--cors-origin",
        page_server,
        env={"DAGCAST_RETRY_MS": "300"},
    )
    yield base
    stop_server(proc)


def test_eventsource_gets_every_event_once_across_cuts_and_closes_on_204(page_server, cutting_server):
    require_browser()
    from playwright.sync_api import sync_playwright

    job = {
        "tasks": [sleep(1, 1.5), echo(2, "b", [1]), sleep(3, 1.5, [2]), echo(4, "d", [3]), sleep(5, 1.5, [4])]
    }
    accepted = submit(cutting_server, job)
    events_url = str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({"since": "0"}))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{page_server}/watch.html?" + httpx.QueryParams({"events": events_url}).__str__())
            try:
                page.wait_for_function("window.es && window.es.readyState === 2", timeout=60_000)
            finally:  # keep what the page saw, also when it never reached CLOSED
                received = page.evaluate("window.received")
                opens = page.evaluate("window.opens")
                page.screenshot(path=str(ARTIFACTS / "browser-eventsource.png"))
        finally:
            browser.close()
    seqs = [r["seq"] for r in received]
    assert seqs == list(range(1, len(seqs) + 1)), f"lost, repeated or reordered: {seqs}"
    assert [r["id"] for r in received] == [str(s) for s in seqs]
    assert received[0]["type"] == "execution.created"
    assert received[-1]["type"] == "execution.completed"
    assert len(received) == 1 + 5 * 3 + 1  # created, (started, completed, updated) × 5, completed
    assert opens >= 3, f"the server should have cut the stream several times (opens: {opens})"


@pytest.fixture(scope="module")
def plain_server(page_server: str) -> Iterator[str]:
    """Streams are not cut: one connection, so the events arrive over one gzip stream."""
    proc, base = start_server("browser-gzip", "--cors-origin", page_server)
    yield base
    stop_server(proc)


def test_eventsource_receives_a_gzip_stream_live_event_by_event(page_server, plain_server):
    """Chromium's EventSource asks for gzip; each event must reach the page while the job's next
    task is still held at a gate, i.e. the server flushed it through the compressor at once."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with gates() as gate:
        accepted = submit(plain_server, {"tasks": [gate.task(1, 1), gate.task(2, 2, [1]), echo(3, "c", [2])]})
        events_url = str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({"since": "0"}))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                streams: list[Any] = []
                page.on("response", lambda r: streams.append(r) if "/events" in r.url else None)
                page.goto(f"{page_server}/watch.html?" + str(httpx.QueryParams({"events": events_url})))
                seen = "() => window.received.map(r => r.type + ':' + r.seq)"
                page.wait_for_function(f"({seen})().includes('substep.started:2')", timeout=30_000)
                assert gate.wait_arrived(1) and not gate.is_open(1)
                early = page.evaluate(seen)
                gate.release(1)
                page.wait_for_function(f"({seen})().includes('substep.completed:3')", timeout=30_000)
                assert gate.wait_arrived(2) and not gate.is_open(2)
                middle = page.evaluate(seen)
                gate.release(2)
                page.wait_for_function("window.es.readyState === 2", timeout=30_000)
                received = page.evaluate("window.received")
                opens = page.evaluate("window.opens")
                first = streams[0]
                request_headers, response_headers = first.request.all_headers(), first.all_headers()
                page.screenshot(path=str(ARTIFACTS / "browser-eventsource-gzip.png"))
            finally:
                browser.close()
    assert "gzip" in request_headers["accept-encoding"]
    assert response_headers["content-encoding"] == "gzip"
    assert early == ["execution.created:1", "substep.started:2"]
    assert middle[:2] == early and "substep.completed:3" in middle and "substep.completed:5" not in middle
    seqs = [r["seq"] for r in received]
    assert seqs == list(range(1, len(seqs) + 1)) and received[-1]["type"] == "execution.completed"
    assert len(received) == 1 + 3 * 3 + 1
    assert opens == 1  # one gzip stream carried it all; the reconnect after the end got 204
