"""The REST API through Chalice's test client (the real routes, the real store and state machine)."""

from __future__ import annotations

import json
import time

import pytest

from tests.functional.conftest import echo, wait_for_end


def post(client, body, raw: bytes | None = None):
    return client.http.post(
        "/api/v1/execute-dag",
        headers={"content-type": "application/json", "host": "127.0.0.1:8000"},
        body=raw if raw is not None else json.dumps(body),
    )


def test_submit_returns_202_with_urls_and_the_execution_runs(client, services):
    reply = post(client, {"originalRequest": "hi", "tasks": [echo(1, "hello")]})
    assert reply.status_code == 202
    body = reply.json_body
    eid = body["executionId"]
    assert eid.startswith("dag-exec_")
    assert (
        body["eventsUrl"]
        == f"http://127.0.0.1:8000/api/v1/dag-executions/{eid}/events?token={body['streamToken']}"
    )
    assert body["streamTokenExpiresAt"] > time.time() + 600
    assert body["statusUrl"].endswith(f"/api/v1/dag-executions/{eid}")
    events = wait_for_end(services, eid)
    assert events[-1]["finalResult"] == "hello"
    status = client.http.get(f"/api/v1/dag-executions/{eid}")
    assert status.status_code == 200
    assert status.json_body["status"] == "completed"
    assert status.json_body["tasks"][0]["result"] == "hello"
    listed = client.http.get("/api/v1/dag-executions?limit=100").json_body["executions"]
    assert eid in [e["executionId"] for e in listed]


def test_invalid_job_is_400_with_every_problem_and_nothing_is_stored(client, services):
    before = len(services.store.list_executions(100))
    reply = post(client, {"tasks": [echo(1, "x", [2]), echo(2, "y", [1]), {"id": 3, "action": "nope"}]})
    assert reply.status_code == 400
    assert reply.json_body["error"] == "the job is invalid (2 problems); nothing was started"
    assert {p["path"] for p in reply.json_body["problems"]} == {"tasks[2].action", "tasks[0].dependencies"}
    assert len(services.store.list_executions(100)) == before


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "the body is empty"), (b"{not json", "the body is not valid JSON"), (b"[]", "the job is invalid")],
)
def test_unparseable_bodies_get_clear_400s(client, raw, message):
    reply = post(client, None, raw=raw)
    assert reply.status_code == 400
    assert reply.json_body["error"].startswith(message)


def test_unknown_execution_is_404_json(client):
    reply = client.http.get("/api/v1/dag-executions/dag-exec_nope")
    assert reply.status_code == 404
    assert reply.json_body == {"error": "no execution with id 'dag-exec_nope'"}


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_bad_list_limit_is_400(client, limit):
    reply = client.http.get(f"/api/v1/dag-executions?limit={limit}")
    assert reply.status_code == 400
    assert "limit" in reply.json_body["error"]


def test_a_fresh_stream_token_for_a_known_execution(client, services):
    eid = post(client, {"tasks": [echo(1, "x")]}).json_body["executionId"]
    reply = client.http.post(f"/api/v1/dag-executions/{eid}/stream-token", headers={"host": "127.0.0.1:8000"})
    assert reply.status_code == 200
    services.signer.verify(reply.json_body["streamToken"], eid)
    assert reply.json_body["eventsUrl"].endswith(f"/events?token={reply.json_body['streamToken']}")
    assert client.http.post("/api/v1/dag-executions/dag-exec_nope/stream-token").status_code == 404
    wait_for_end(services, eid)


def test_requests_leave_the_stack_environment_in_place_for_every_thread(client, stack):
    """The stack's threads (the handlers, the poller) and later Services read os.environ: a request
    must not change it, even for its own duration. Chalice's test client swapped os.environ for the
    stage's variables from .chalice/config.json per request and put back what it found, so other
    threads saw the stage's table name meanwhile, and overlapping requests (two decisions racing)
    left it behind for good: every Services built afterwards read a table that does not exist."""
    import concurrent.futures
    import os
    import threading

    before, seen, done = dict(os.environ), set[str](), threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(os.environ.get("DAGCAST_TABLE", ""))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: client.http.get("/api/v1/dag-executions?limit=1"), range(24)))
    finally:
        done.set()
        watcher.join()
    assert {r.status_code for r in replies} == {200}
    assert seen == {stack.table_name}
    assert dict(os.environ) == before
