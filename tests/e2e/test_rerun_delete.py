"""Rerun from failure and DELETE through `dagcast up`, over real HTTP and SSE."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from tests.support.api import read_stream, submit
from tests.support.jobs import echo, fail, sleep


def events_of(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The execution's whole log, replayed from seq 1 (no snapshot), without heartbeats."""
    _, messages = read_stream(reply["eventsUrl"] + "&since=0")
    return [m["data"] for m in messages if m["data"].get("seq") and not m["data"].get("snapshot")]


def test_a_rerun_streams_its_reused_tasks_first_then_runs_the_rest(server):
    job = {"tasks": [echo(1, "one"), fail(2, "boom", [1]), echo(3, "three", [2]), echo(4, "four")]}
    original = submit(server, job)
    assert events_of(original)[-1]["type"] == "execution.failed"
    eid = original["executionId"]

    reply = httpx.post(f"{server}/api/v1/dag-executions/{eid}/rerun", timeout=30)
    assert reply.status_code == 202, reply.text
    rerun = reply.json()
    assert rerun["rerunOf"] == eid and rerun["executionId"] != eid and "eventsUrl" in rerun
    events = events_of(rerun)
    head = [(e["type"], e.get("taskId"), e.get("reused")) for e in events[:3]]
    assert head == [
        ("execution.created", None, None),
        ("substep.completed", 1, True),
        ("substep.completed", 4, True),
    ]
    started = [e["taskId"] for e in events if e["type"] == "substep.started"]
    assert started == [2]  # 1 and 4 reused, 3 never starts after 2 fails again (failFast)
    view = httpx.get(f"{server}/api/v1/dag-executions/{rerun['executionId']}", timeout=30).json()
    assert view["rerunOf"] == eid

    forced = httpx.post(f"{server}/api/v1/dag-executions/{eid}/rerun", json={"tasks": [1]}, timeout=30)
    assert forced.status_code == 202, forced.text
    forced_events = events_of(forced.json())
    assert [e["taskId"] for e in forced_events if e["type"] == "substep.completed" and e.get("reused")] == [4]


def test_bad_reruns_and_deletes_are_clear_4xx_and_change_nothing(server):
    before = httpx.get(f"{server}/api/v1/dag-executions?limit=100", timeout=30).json()["executions"]
    missing = "dag-exec_missing"
    assert httpx.post(f"{server}/api/v1/dag-executions/{missing}/rerun", timeout=30).status_code == 404
    assert httpx.delete(f"{server}/api/v1/dag-executions/{missing}", timeout=30).status_code == 404
    running = submit(server, {"tasks": [sleep(1, 2)]})
    rid = running["executionId"]
    for refused in (
        httpx.post(f"{server}/api/v1/dag-executions/{rid}/rerun", timeout=30),
        httpx.delete(f"{server}/api/v1/dag-executions/{rid}", timeout=30),
    ):
        assert refused.status_code == 409, refused.text
        assert "still running" in refused.json()["error"] and refused.json()["status"] == "running"
    assert events_of(running)[-1]["type"] == "execution.completed"  # untouched
    bad = httpx.post(f"{server}/api/v1/dag-executions/{rid}/rerun", json={"tasks": [7]}, timeout=30)
    assert bad.status_code == 400 and "no task 7" in bad.json()["error"]
    nothing = httpx.post(f"{server}/api/v1/dag-executions/{rid}/rerun", json={"from": "failed"}, timeout=30)
    assert nothing.status_code == 409 and "nothing to rerun" in nothing.json()["error"]
    after = httpx.get(f"{server}/api/v1/dag-executions?limit=100", timeout=30).json()["executions"]
    assert len(after) == len(before) + 1  # only the job submitted here


def test_delete_removes_a_finished_execution_then_answers_404(server):
    done = submit(server, {"tasks": [echo(1, "bye")]})
    events_of(done)
    eid = done["executionId"]
    url = f"{server}/api/v1/dag-executions/{eid}"
    deleted = httpx.delete(url, timeout=30)
    assert deleted.status_code == 200 and deleted.json() == {"executionId": eid, "deleted": True}
    for gone in (
        httpx.get(url, timeout=30),
        httpx.delete(url, timeout=30),
        httpx.get(f"{url}/result", timeout=30),
    ):
        assert gone.status_code == 404, gone.text
    listed = httpx.get(f"{server}/api/v1/dag-executions?limit=100", timeout=30).json()["executions"]
    assert eid not in [e["executionId"] for e in listed]


def test_dagcast_rerun_and_rm_from_the_cli(server):
    """The CLI's rerun makes a new execution reusing what completed; rm deletes it, then says 404."""
    original = submit(server, {"tasks": [echo(1, "one"), fail(2, "boom", [1])]})
    eid = original["executionId"]
    assert events_of(original)[-1]["type"] == "execution.failed"
    cli = [sys.executable, "-m", "dagcast.cli"]
    run = subprocess.run([*cli, "rerun", eid, "--url", server], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    new_id = run.stdout.split()[0]
    assert new_id != eid and f"rerun of {eid}" in run.stdout
    view = httpx.get(f"{server}/api/v1/dag-executions/{new_id}", timeout=30).json()
    assert view["rerunOf"] == eid
    bad = subprocess.run(
        [*cli, "rerun", eid, "--tasks", "x", "--url", server], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "task ids are numbers" in bad.stderr
    while view["status"] == "running":  # rm refuses a running execution; the rerun fails again
        view = httpx.get(f"{server}/api/v1/dag-executions/{new_id}", timeout=30).json()
    gone = subprocess.run([*cli, "rm", new_id, "--url", server], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0 and f"{new_id} deleted" in gone.stdout, gone.stderr
    again = subprocess.run([*cli, "rm", new_id, "--url", server], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and f"no execution with id {new_id!r}" in again.stderr
    assert httpx.get(f"{server}/api/v1/dag-executions/{new_id}", timeout=30).status_code == 404
