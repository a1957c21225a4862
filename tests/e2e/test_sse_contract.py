"""The SSE contract over real sockets: filters, auth, CORS, limits, stream lifetime, disconnects."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from chalicelib.stream.auth import TokenSigner
from tests.e2e.conftest import ROOT, STREAM_SECRET, start_server, stop_server
from tests.support.api import read_stream, submit
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e
ALLOWED = "http://app.example"


@pytest.fixture(scope="module")
def edge() -> Iterator[str]:
    proc, base = start_server(
        "edge",
        "--max-stream-seconds",
        "1",
        "--max-streams-per-ip",
        "3",
        "--cors-origin",
        ALLOWED,
        "--heartbeat-seconds",
        "0.3",
    )
    yield base
    stop_server(proc)


def events_url(base: str, eid: str, token: str | None = None, **params: Any) -> str:
    url = httpx.URL(f"{base}/api/v1/dag-executions/{eid}/events")
    if token:
        params["token"] = token
    return str(url.copy_merge_params(params))


def stats(base: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/local/stats").json()
    return body


def test_filters_keep_real_ids_and_heartbeats(server):
    accepted = submit(server, {"tasks": [echo(1, "a"), sleep(2, 1.0, [1]), echo(3, "c", [2])]})
    url = str(
        httpx.URL(accepted["eventsUrl"]).copy_merge_params(
            {"types": "substep.completed,execution.*", "since": "0"}
        )
    )
    _, messages = read_stream(url)
    kinds = [m["data"]["type"] for m in messages]
    assert set(kinds) <= {
        "substep.completed",
        "execution.created",
        "execution.updated",
        "execution.completed",
        "heartbeat",
    }
    assert kinds.count("substep.completed") == 3
    assert kinds[-1] == "execution.completed"
    ids = [int(m["data"]["seq"]) for m in messages if m["event"] != "heartbeat"]
    assert ids == sorted(ids) and ids[0] == 1 and len(ids) < ids[-1]  # real seqs, with holes where filtered
    bad = httpx.get(str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({"types": "substep.finished"})))
    assert bad.status_code == 400 and "substep.finished" in bad.json()["error"]


def test_a_filter_without_the_end_still_moves_the_client_to_it_so_its_reconnect_is_the_204_end(server):
    """A stream filtered to substep.completed ended after the terminal event it did not send; the
    browser's Last-Event-ID stayed on the last completed task, so every reconnect replayed from
    there and ended again, for ever. An id-only message now carries the terminal seq."""
    accepted = submit(server, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    url = str(
        httpx.URL(accepted["eventsUrl"]).copy_merge_params({"types": "substep.completed", "since": "0"})
    )
    with httpx.stream("GET", url, timeout=30) as answer:
        text = "".join(answer.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip() and not b.startswith(":")]
    last = blocks[-1].splitlines()
    assert len(last) == 1 and last[0].startswith("id: "), blocks[-3:]  # an id, no data: no event
    terminal = int(last[0].removeprefix("id: "))
    assert [b for b in blocks if "event: substep.completed" in b][-1] != blocks[-1]
    snapshot = httpx.get(f"{server}/api/v1/dag-executions/{accepted['executionId']}", timeout=30)
    assert terminal == snapshot.json()["seq"]
    again = httpx.get(url.replace("since=0", f"lastEventId={terminal}"), timeout=30)
    assert again.status_code == 204


def test_auth_errors_are_clear(server):
    accepted = submit(server, {"tasks": [sleep(1, 0.5)]})
    eid = accepted["executionId"]
    other = submit(server, {"tasks": [echo(1, "x")]})
    missing = httpx.get(events_url(server, eid))
    assert missing.status_code == 401 and "stream token is required" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(events_url(server, eid, other["streamToken"]))
    assert wrong.status_code == 403 and "another execution" in wrong.json()["error"]
    tampered = httpx.get(events_url(server, eid, accepted["streamToken"][:-2] + "xx"))
    assert tampered.status_code == 401 and "signature" in tampered.json()["error"]
    expired = TokenSigner(STREAM_SECRET, ttl_seconds=10).issue(eid, now=time.time() - 60).token
    reply = httpx.get(events_url(server, eid, expired))
    assert reply.status_code == 401 and "expired" in reply.json()["error"]
    # Authorization: Bearer works for clients that can set headers
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client,
            "GET",
            events_url(server, eid),
            headers={"Authorization": f"Bearer {accepted['streamToken']}"},
        ) as source,
    ):
        assert source.response.status_code == 200
        last = [json.loads(s.data) for s in source.iter_sse() if s.data][-1]
        # Live: the stream ends with execution.completed. If the job finished while the refusals
        # above were checked (a slow machine), the stream is the final snapshot alone.
        if last["type"] == "execution.updated":
            assert last["snapshot"] is True and last["status"] == "completed", last
        else:
            assert last["type"] == "execution.completed", last


def test_tokens_never_reach_the_access_log():
    proc, base = start_server("verbose", "--verbose")
    try:
        accepted = submit(base, {"tasks": [echo(1, "x")]})
        read_stream(accepted["eventsUrl"])
    finally:
        stop_server(proc)
    text = (ROOT / "test-artifacts" / "dagcast-up-verbose.log").read_text()
    assert "/events?token=[REDACTED]" in text
    assert accepted["streamToken"] not in text


def test_cors_allow_list(edge):
    accepted = submit(edge, {"tasks": [echo(1, "x")]})
    read_stream(accepted["eventsUrl"])
    allowed = httpx.get(accepted["eventsUrl"], headers={"Origin": ALLOWED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    refused = httpx.get(accepted["eventsUrl"], headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in refused.headers
    preflight = httpx.options(
        accepted["eventsUrl"],
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "last-event-id" in preflight.headers["access-control-allow-headers"]


def test_streams_end_after_max_stream_seconds_and_resume_loses_nothing(edge):
    accepted = submit(edge, {"tasks": [sleep(1, 1.2), sleep(2, 1.2, [1]), echo(3, "end", [2])]})
    seen: list[int] = []
    connections = 0
    last: str | None = None
    while True:
        connections += 1
        headers = {"Last-Event-ID": last} if last else {}
        url = str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({} if last else {"since": "0"}))
        reply_status = None
        with httpx.Client(timeout=30) as client, connect_sse(client, "GET", url, headers=headers) as source:
            reply_status = source.response.status_code
            for sse in source.iter_sse() if reply_status == 200 else ():
                if sse.data and sse.event != "heartbeat":
                    seen.append(int(sse.id))
                    last = sse.id
        if reply_status == 204:
            break
        assert connections < 20
    assert connections >= 3, "the 1 s stream lifetime should have cut the stream at least twice"
    assert seen == list(range(1, len(seen) + 1)) and len(seen) == 11


def test_limits_answer_429_with_retry_after(edge):
    accepted = submit(edge, {"tasks": [sleep(1, 3)]})
    held = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", int(edge.rsplit(":", 1)[1])))
            path = accepted["eventsUrl"].split(edge, 1)[1]
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"200 OK" in s.recv(4096)
            held.append(s)
        refused = httpx.get(accepted["eventsUrl"])
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert "too many concurrent streams from 127.0.0.1" in refused.json()["error"]
    finally:
        for s in held:
            s.close()


def test_a_disconnect_frees_the_stream_at_once(server):
    accepted = submit(server, {"tasks": [sleep(1, 4)]})
    port = int(server.rsplit(":", 1)[1])
    path = accepted["eventsUrl"].split(server, 1)[1]
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert b"200 OK" in s.recv(65536)
        socks.append(s)
    assert stats(server)["sse"]["openStreams"] >= 5
    for s in socks:
        s.close()
    deadline = time.monotonic() + 2
    while stats(server)["sse"]["openStreams"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(server)["sse"]["openStreams"] == 0
    assert stats(server)["sse"]["hub"]["subscribers"] == 0
