"""A job goes in over HTTP; its events come back live over SSE, read by a real HTTP client."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from httpx_sse import connect_sse

from chalicelib.stream.auth import TokenSigner
from dagcast.local.launch import DAGCAST
from tests.e2e.conftest import HEARTBEAT_SECONDS, ROOT, STREAM_SECRET
from tests.support.api import read_stream, submit
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e


def raw_frames(url: str, timeout: float = 60) -> list[list[str]]:
    """The stream's messages as their raw field lines (to see exactly which fields were sent)."""
    frames: list[list[str]] = []
    current: list[str] = []
    with httpx.stream("GET", url, timeout=timeout) as response:
        for line in response.iter_lines():
            if line == "":
                if current:
                    frames.append(current)
                current = []
            else:
                current.append(line)
    return frames


def assert_chain_order(got: list[tuple[str, int | None]], expected: list[tuple[str, int | None]]) -> None:
    """A chain 1 → 2 → … 's log holds exactly the expected events, first and last in place, each task
    started after the one before it completed — the order docs/events.md guarantees. (Where a
    progress event falls against the next task's start is not: dependents are released first.)"""
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert got[0] == expected[0] and got[-1] == expected[-1]
    tasks = sorted({t for _, t in expected if t is not None})
    for task in tasks[1:]:
        assert got.index(("substep.completed", task - 1)) < got.index(("substep.started", task))


def test_a_chain_streams_every_event_in_exact_order(server):
    accepted = submit(
        server,
        {"originalRequest": "chain", "tasks": [echo(1, "a"), echo(2, "{{1}}b", [1]), echo(3, "{{2}}c", [2])]},
    )
    eid = accepted["executionId"]
    assert (
        accepted["eventsUrl"]
        == f"{server}/api/v1/dag-executions/{eid}/events?token={accepted['streamToken']}"
    )
    response, messages = read_stream(accepted["eventsUrl"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "no-cache" in response.headers["cache-control"]
    assert response.headers["x-accel-buffering"] == "no"

    snapshot, *live = [m for m in messages if m["event"] != "heartbeat"]
    assert snapshot["event"] == "execution.updated"
    assert snapshot["data"]["snapshot"] is True
    assert [t["taskId"] for t in snapshot["data"]["tasks"]] == [1, 2, 3]
    start = int(snapshot["id"])
    assert snapshot["data"]["seq"] == start >= 1

    expected = [
        ("execution.created", None),
        ("substep.started", 1),
        ("substep.completed", 1),
        ("execution.updated", None),
        ("substep.started", 2),
        ("substep.completed", 2),
        ("execution.updated", None),
        ("substep.started", 3),
        ("substep.completed", 3),
        ("execution.updated", None),
        ("execution.completed", None),
    ]
    got = [(m["data"]["type"], m["data"].get("taskId")) for m in live]
    # The stored log, whose order may interleave a progress event with the next task's start
    # (dependents are released first; docs/events.md#ordering-guarantees):
    _, whole = read_stream(accepted["eventsUrl"] + "&since=0")
    stored = [(m["data"]["type"], m["data"].get("taskId")) for m in whole if m["event"] != "heartbeat"]
    assert_chain_order(stored, expected)
    assert got == stored[start:]  # the stream continues exactly where the snapshot ends
    assert [int(m["id"]) for m in live] == list(range(start + 1, len(expected) + 1))
    for m in live:
        assert m["event"] == m["data"]["type"]
        assert m["data"]["seq"] == int(m["id"])
        assert m["data"]["executionId"] == eid
        assert isinstance(m["data"]["timestamp"], int)
    final = live[-1]["data"]
    assert final["finalResult"] == "abc"
    assert (final["status"], final["completedTasks"], final["failedTasks"]) == ("completed", 3, 0)
    by_key = {(m["data"]["type"], m["data"].get("taskId")): m["data"] for m in live}
    if ("substep.completed", 3) in by_key:
        assert by_key[("substep.completed", 3)]["result"] == "abc"
        assert by_key[("substep.completed", 3)]["subStepId"] == "3"


def test_a_task_starts_when_its_own_dependencies_are_done_not_when_unrelated_ones_are(server):
    accepted = submit(server, {"tasks": [sleep(1, 0.2), sleep(2, 4.0), echo(3, "after {{1}}", [1])]})
    _, messages = read_stream(accepted["eventsUrl"])
    events = {(m["data"]["type"], m["data"].get("taskId")): m for m in messages if m["event"] != "heartbeat"}
    started_3 = events[("substep.started", 3)]
    completed_2 = events[("substep.completed", 2)]
    completed_1 = events[("substep.completed", 1)]
    # by the store's clock and order …
    assert (
        completed_1["data"]["timestamp"] <= started_3["data"]["timestamp"] < completed_2["data"]["timestamp"]
    )
    assert int(started_3["id"]) < int(completed_2["id"])
    # … and as the client saw it, live: task 3 was reported well before task 2 ended
    assert completed_2["received"] - started_3["received"] > 1.5
    assert events[("substep.completed", 3)]["data"]["result"] == "after slept 0.2s"


def test_heartbeats_flow_while_nothing_happens_and_carry_no_id(server):
    accepted = submit(server, {"tasks": [sleep(1, 2.5)]})
    frames = raw_frames(accepted["eventsUrl"])
    beats = [f for f in frames if f[0] == "event: heartbeat"]
    assert len(beats) >= 2, f"expected heartbeats every {HEARTBEAT_SECONDS}s during a 2.5 s task"
    for beat in beats:
        assert len(beat) == 2 and beat[1].startswith("data: "), beat  # event + data, no id
        data = json.loads(beat[1][6:])
        assert data["type"] == "heartbeat" and data["executionId"] == accepted["executionId"]
    assert frames[0][:3] == [
        "event: execution.updated",
        f"id: {json.loads(frames[0][-1][6:])['seq']}",
        "retry: 2000",
    ]
    assert frames[-1][0] == "event: execution.completed"


def test_a_failing_job_streams_the_failure_and_the_stream_ends(server):
    job = {
        "tasks": [
            echo(1, "x"),
            {"id": 2, "action": "fail", "params": {"message": "nope"}, "dependencies": [1]},
            echo(3, "{{2}}", [2]),
        ]
    }
    accepted = submit(server, job)
    # since=0: every event, even if the job ends before the stream opens (it takes ~1 s)
    _, messages = read_stream(accepted["eventsUrl"] + "&since=0")
    types = [m["data"]["type"] for m in messages if m["event"] != "heartbeat"]
    assert types[0] == "execution.created" and types[-1] == "execution.failed"
    failed = [m["data"] for m in messages if m["event"] == "substep.failed"]
    assert [(f["taskId"], f["reason"], f["error"]) for f in failed] == [
        (2, "error", "nope"),
        (3, "skipped", "not started: task 2 failed: nope"),  # failFast, the default
    ]
    assert messages[-1]["data"]["error"] == "task 2 failed: nope"


def test_connecting_after_the_end_gives_the_final_snapshot_and_closes(server):
    accepted = submit(server, {"tasks": [echo(1, "done")]})
    read_stream(accepted["eventsUrl"])
    _, messages = read_stream(accepted["eventsUrl"], timeout=10)
    assert len(messages) == 1
    snap = messages[0]["data"]
    assert snap["snapshot"] is True and snap["status"] == "completed" and snap["finalResult"] == "done"
    assert int(messages[0]["id"]) == snap["seq"]


def test_unknown_ids_are_404_json(server):
    token = TokenSigner(STREAM_SECRET).issue("dag-exec_missing").token
    for path in (
        "/api/v1/dag-executions/dag-exec_missing",
        f"/api/v1/dag-executions/dag-exec_missing/events?token={token}",
    ):
        reply = httpx.get(server + path)
        assert reply.status_code == 404
        assert reply.json() == {"error": "no execution with id 'dag-exec_missing'"}
    unknown = httpx.get(server + "/api/v2/nothing")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no route GET /api/v2/nothing"})


def test_a_bad_job_is_400_listing_every_problem(server):
    bad = {
        "tasks": [
            {"id": 1, "action": "sleep", "params": {"seconds": "soon"}, "dependencies": [1]},
            {"id": 1, "action": "echo", "params": {}},
        ]
    }
    reply = httpx.post(f"{server}/api/v1/execute-dag", json=bad)
    assert reply.status_code == 400
    assert {p["path"]: p["message"] for p in reply.json()["problems"]} == {
        "tasks[0].params.seconds": 'input should be a valid number (got "soon")',
        "tasks[1].params.text": "is required",
        "tasks[1].id": "duplicate task id 1 (also used by tasks[0])",
        "tasks[0].dependencies": "dependency cycle: 1 → 1",
    }


def test_the_stream_poller_fans_out_every_stored_event(server):
    accepted = submit(server, {"tasks": [echo(1, "x")]})
    _, messages = read_stream(accepted["eventsUrl"])
    last_seq = messages[-1]["data"]["seq"]
    listed = httpx.get(f"{server}/api/v1/dag-executions?limit=100").json()["executions"]
    assert accepted["executionId"] in [e["executionId"] for e in listed]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = httpx.get(f"{server}/local/stats").json()["fanout"]
        if stats["eventsDelivered"] >= last_seq:
            break
        time.sleep(0.2)
    assert stats["eventsDelivered"] >= last_seq
    assert stats["failuresReported"] == 0


def test_dagcast_run_prints_every_event_and_exits_by_outcome(server, tmp_path):
    ok = subprocess.run(
        [str(DAGCAST), "run", "examples/research-report.json", "--url", server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "/events" in ok.stdout
    for kind in ("execution.created", "substep.started", "substep.completed", "execution.completed"):
        assert kind in ok.stdout
    job = tmp_path / "bad.json"
    job.write_text(json.dumps({"tasks": [{"id": 1, "action": "fail", "params": {"message": "boom"}}]}))
    failed = subprocess.run(
        [str(DAGCAST), "run", str(job), "--url", server], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert "execution.failed" in failed.stdout and "boom" in failed.stdout
    job.write_text(json.dumps({"tasks": []}))
    rejected = subprocess.run(
        [str(DAGCAST), "run", str(job), "--url", server], capture_output=True, text=True, timeout=60
    )
    assert rejected.returncode == 1
    assert "tasks: a job needs at least one task" in rejected.stderr


def test_replay_from_the_start_and_from_a_last_event_id(server):
    accepted = submit(server, {"tasks": [echo(1, "a"), echo(2, "{{1}}b", [1])]})
    _, full = read_stream(accepted["eventsUrl"] + "&since=0")
    types = [(m["data"]["type"], m["data"].get("taskId")) for m in full if m["event"] != "heartbeat"]
    # Dependents are released before the progress event is appended, so task 2 may start before
    # the execution.updated that follows task 1 (docs/events.md#ordering-guarantees says what holds).
    assert_chain_order(
        types,
        [
            ("execution.created", None),
            ("substep.started", 1),
            ("substep.completed", 1),
            ("execution.updated", None),
            ("substep.started", 2),
            ("substep.completed", 2),
            ("execution.updated", None),
            ("execution.completed", None),
        ],
    )
    # (not the heartbeats': a message without an id keeps the last one, as EventSource does)
    assert [int(m["id"]) for m in full if m["event"] != "heartbeat"] == list(range(1, 9))
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "GET", accepted["eventsUrl"], headers={"Last-Event-ID": "5"}) as source,
    ):
        resumed = [json.loads(s.data)["seq"] for s in source.iter_sse() if s.data]
    assert resumed == [6, 7, 8]
    # already at the terminal event: 204, which stops a browser's EventSource for good
    assert httpx.get(accepted["eventsUrl"], headers={"Last-Event-ID": "8"}).status_code == 204
    for bad in ("-1", "abc", "1.5"):
        reply = httpx.get(str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({"lastEventId": bad})))
        assert reply.status_code == 400
        assert "non-negative integer" in reply.json()["error"]
