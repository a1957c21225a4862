"""Retries, timeouts, failure policies, cancel, the concurrency limit, large results and the cost in
state transitions — each through the real state machine on moto, checking the exact events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest

import tests.support.plugins  # registers tests.flaky; its call counter is read below
from bench import transitions
from chalicelib.domain.dag import parse_job
from chalicelib.http import api
from dagcast.local.moto.patches.map_run_history import map_run_history
from tests.functional.conftest import assert_gapless, by_type, echo, fail, run_job, sleep, wait_for_end
from tests.support.jobs import task


def _shape(events: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    """Events as (type, taskId, *fields) without the ever-changing ids and timestamps."""
    return [(e["type"], e.get("taskId"), *(e.get(f) for f in fields)) for e in events]


def _flaky_job(key: str, failures: int, retries: dict[str, Any]) -> dict[str, Any]:
    """One python task that fails ``failures`` times (tests.flaky), with ``retries``."""
    flaky = task(1, "python", {"function": "tests.flaky", "args": {"key": key, "failures": failures}})
    return {"tasks": [{**flaky, "retries": retries}]}


def test_retries_are_events_with_attempt_numbers_and_nothing_is_duplicated(services):
    key = uuid.uuid4().hex
    body = _flaky_job(key, 2, {"count": 3, "backoffSeconds": 0})
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    assert _shape(events, "attempt", "willRetry") == [
        ("execution.created", None, None, None),
        ("substep.started", 1, 1, None),
        ("substep.failed", 1, 1, True),
        ("substep.started", 1, 2, None),
        ("substep.failed", 1, 2, True),
        ("substep.started", 1, 3, None),
        ("substep.completed", 1, 3, None),
        ("execution.updated", None, None, None),
        ("execution.completed", None, None, None),
    ]
    failed = [e for e in events if e["type"] == "substep.failed"]
    assert [f["error"] for f in failed] == [f"attempt 1 of {key} failed", f"attempt 2 of {key} failed"]
    assert all(f["retryInSeconds"] == 0 and f["reason"] == "error" for f in failed)
    assert tests.support.plugins.calls[key] == 3  # one call per attempt: no attempt ran twice
    assert events[-1]["finalResult"] == f"{key} succeeded on call 3"
    snap = services.orchestrator.snapshot(eid)
    assert snap["tasks"][0]["attempt"] == 3 and snap["tasks"][0]["status"] == "completed"


def test_retries_used_up_fail_the_task_with_its_last_error(services):
    key = uuid.uuid4().hex
    body = _flaky_job(key, 5, {"count": 1, "backoffSeconds": 1})
    _eid, events = run_job(services, body)
    assert _shape(events, "attempt", "willRetry", "retryInSeconds") == [
        ("execution.created", None, None, None, None),
        ("substep.started", 1, 1, None, None),
        ("substep.failed", 1, 1, True, 1),
        ("substep.started", 1, 2, None, None),
        ("substep.failed", 1, 2, False, None),
        ("execution.updated", None, None, None, None),
        ("execution.failed", None, None, None, None),
    ]
    started = [e for e in events if e["type"] == "substep.started"]
    assert started[1]["timestamp"] - started[0]["timestamp"] >= 1000  # the backoff waited in Step Functions
    assert events[-1]["error"] == f"task 1 (python 1) failed: attempt 2 of {key} failed"


def test_a_task_timeout_fails_the_attempt_and_is_retried(services):
    body = {
        "failurePolicy": "continue",
        "tasks": [
            {**sleep(1, 30), "timeoutSeconds": 0.5, "retries": {"count": 1, "backoffSeconds": 0}},
            echo(2, "independent"),
        ],
    }
    t0 = time.monotonic()
    _eid, events = run_job(services, body)
    assert time.monotonic() - t0 < 20
    mine = [e for e in events if e.get("taskId") == 1]
    assert _shape(mine, "attempt", "reason", "willRetry") == [
        ("substep.started", 1, 1, None, None),
        ("substep.failed", 1, 1, "timeout", True),
        ("substep.started", 1, 2, None, None),
        ("substep.failed", 1, 2, "timeout", False),
    ]
    assert mine[-1]["error"] == "timed out after 0.5s (timeoutSeconds)"
    assert by_type(events, "substep.completed")[2]["result"] == "independent"
    assert events[-1]["type"] == "execution.failed"


def test_the_execution_timeout_stops_running_and_skips_the_rest(services):
    body = {
        "timeoutSeconds": 5,  # long enough for task 1 to start on a loaded machine
        "tasks": [sleep(1, 30), echo(2, "after {{1}}", [1]), sleep(3, 0)],
    }
    t0 = time.monotonic()
    _eid, events = run_job(services, body)
    assert time.monotonic() - t0 < 20
    failed = by_type(events, "substep.failed")
    assert failed[1]["reason"] == "timeout" and failed[1]["error"].startswith("timed out after")
    assert failed[2]["reason"] == "timeout" and "substep.started" not in {
        e["type"] for e in events if e.get("taskId") == 2
    }
    final = events[-1]
    assert (final["type"], final["status"], final["reason"]) == ("execution.failed", "failed", "timeout")
    assert final["error"] == "the execution timed out after 5s (timeoutSeconds)"


def test_fail_fast_lets_running_tasks_finish_and_skips_the_rest(services):
    key = uuid.uuid4().hex
    body = {
        "tasks": [
            # fails once task 2 is running (on a loaded machine a plain fail could end first)
            {
                **task(
                    1,
                    "python",
                    {"function": "tests.fail_once_started", "args": {"key": key, "message": "boom"}},
                ),
                "description": "fail 1",
            },
            task(2, "python", {"function": "tests.started_then_sleep", "args": {"key": key, "seconds": 1.0}}),
            echo(3, "after {{2}}", [2]),  # not started: skipped
            echo(4, "after {{1}}", [1]),  # not started: skipped
        ]
    }
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    per_task = {t: _shape([e for e in events if e.get("taskId") == t], "reason") for t in (1, 2, 3, 4)}
    assert per_task[1] == [("substep.started", 1, None), ("substep.failed", 1, "error")]
    assert per_task[2] == [("substep.started", 2, None), ("substep.completed", 2, None)]
    assert per_task[3] == [("substep.failed", 3, "skipped")]
    assert per_task[4] == [("substep.failed", 4, "skipped")]
    assert by_type(events, "substep.failed")[3]["error"] == "not started: task 1 (fail 1) failed: boom"
    final = events[-1]
    assert (final["completedTasks"], final["failedTasks"], final["skippedTasks"]) == (1, 1, 2)
    assert final["error"] == "task 1 (fail 1) failed: boom"
    snap = services.orchestrator.snapshot(eid)
    assert [t["status"] for t in snap["tasks"]] == ["failed", "completed", "skipped", "skipped"]


def test_continue_runs_everything_whose_dependencies_succeeded(services):
    body = {
        "failurePolicy": "continue",
        "tasks": [fail(1, "boom"), sleep(2, 0.2), echo(3, "after {{2}}", [2]), echo(4, "after {{1}}", [1])],
    }
    _, events = run_job(services, body)
    assert set(by_type(events, "substep.completed")) == {2, 3}
    failed = by_type(events, "substep.failed")
    assert (failed[1]["reason"], failed[4]["reason"], failed[4]["upstreamTaskIds"]) == (
        "error",
        "upstream",
        [1],
    )
    assert events[-1]["failedTasks"] == 2


def test_cancel_stops_the_execution_is_idempotent_and_409_when_finished(services):
    body = {"tasks": [{**sleep(1, 30), "timeoutSeconds": 3}, echo(2, "never", [1])]}
    eid = services.orchestrator.submit(parse_job(body))
    deadline = time.monotonic() + 20
    while not any(e["type"] == "substep.started" for e in services.store.events_after(eid, 0)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stops: list[dict[str, Any]] = []
    hook = services.orchestrator._state_machine._sfn.meta.events
    hook.register("provide-client-params.sfn.StopExecution", lambda params, **_: stops.append(params))
    assert api.respond(lambda: api.cancel_execution(services, eid)) == (
        200,
        {"executionId": eid, "status": "cancelled"},
    )
    assert api.respond(lambda: api.cancel_execution(services, eid))[0] == 200  # idempotent
    events = wait_for_end(services, eid)
    final = events[-1]
    assert (final["type"], final["status"], final["reason"]) == ("execution.failed", "cancelled", "cancelled")
    assert [e["type"] for e in events].count("execution.failed") == 1
    arn = services.store.get_meta(eid)["stateMachineExecutionArn"]
    assert [s["executionArn"] for s in stops] == [arn, arn]  # asked to stop (again on the repeat)
    sfn = boto3.client("stepfunctions")
    # AWS aborts at once (ABORTED); moto's interpreter only notices when the running Lambda returns
    # (≤ 3 s here) and then goes on to Finalize, which sees "cancelled" and ends in Failed.
    deadline = time.monotonic() + 15
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert sfn.describe_execution(executionArn=arn)["status"] in ("ABORTED", "FAILED")
    assert services.store.events_after(eid, 0) == events  # nothing after the terminal event
    assert services.orchestrator.snapshot(eid)["status"] == "cancelled"

    done, _ = run_job(services, {"tasks": [echo(1, "quick")]})
    status, reply = api.respond(lambda: api.cancel_execution(services, done))
    assert (status, reply["status"]) == (409, "completed")
    assert "already finished" in str(reply["error"])
    assert api.respond(lambda: api.cancel_execution(services, "dag-exec_nope"))[0] == 404


def test_max_concurrency_limits_running_tasks(services):
    body = {"maxConcurrency": 2, "tasks": [sleep(i, 0.3) for i in range(1, 7)] + [echo(7, "end", [1, 2, 3])]}
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    running, peak = 0, 0
    for e in events:
        if e["type"] == "substep.started":
            running += 1
            peak = max(peak, running)
        elif e["type"] in ("substep.completed", "substep.failed"):
            running -= 1
    assert peak == 2
    assert events[-1]["type"] == "execution.completed" and events[-1]["completedTasks"] == 7


def test_large_results_are_cut_in_events_and_whole_in_the_api(services):
    big = "x" * 50_000
    eid, events = run_job(services, {"tasks": [echo(1, big), echo(2, "{{1}}{{1}}", [1])], "resultTask": 2})
    done = by_type(events, "substep.completed")
    assert done[1]["resultTruncated"] is True and done[1]["resultBytes"] == len(json.dumps(big))
    assert done[1]["resultUrl"] == f"/api/v1/dag-executions/{eid}/tasks/1/result"
    assert len(done[1]["result"]) == 16_384
    assert api.respond(lambda: api.task_result(services, eid, "1")) == (
        200,
        {"executionId": eid, "taskId": 1, "result": big},
    )
    final = events[-1]
    assert final["finalResultTruncated"] is True
    assert final["finalResultUrl"] == f"/api/v1/dag-executions/{eid}/result"
    assert api.respond(lambda: api.final_result(services, eid))[1]["finalResult"] == big + big
    assert all(len(json.dumps(e)) < 20_000 for e in events)
    assert api.respond(lambda: api.task_result(services, eid, "9"))[0] == 404
    assert api.respond(lambda: api.task_result(services, eid, "x"))[0] == 400


def test_a_mid_sized_result_is_cut_the_same_way_in_events_and_snapshots(services):
    """20,000 characters: stored inline (≤ 32,768), but over the 16,384 an event or view carries."""
    mid = "y" * 20_000
    eid, events = run_job(services, {"tasks": [echo(1, mid)]})
    url = f"/api/v1/dag-executions/{eid}/tasks/1/result"
    done = by_type(events, "substep.completed")[1]
    view = services.orchestrator.snapshot(eid)["tasks"][0]
    for shown in (done, view):
        assert shown["resultTruncated"] is True and shown["resultUrl"] == url
        assert len(shown["result"]) == 16_384 and shown["resultBytes"] == len(json.dumps(mid))
    assert api.respond(lambda: api.task_result(services, eid, "1"))[1]["result"] == mid


@pytest.fixture
def short_event_previews(services, monkeypatch):
    """The task Lambdas run with services built under DAGCAST_EVENT_PREVIEW_CHARS=1024 (a stage
    with many viewers); the app's own services, which other tests hold and patch, are left as
    they are and back in place afterwards."""
    import app
    from chalicelib.factory import BuiltOnce, build_services

    monkeypatch.setenv("DAGCAST_EVENT_PREVIEW_CHARS", "1024")
    short = build_services()
    monkeypatch.setattr(app, "services", BuiltOnce(lambda: short))
    yield short
    short.close()


def test_a_stage_may_cut_events_shorter_while_views_keep_16384_characters(short_event_previews):
    """Every viewer reads every event: a stage's event preview bounds what a stream reads; the
    snapshot, the task views and the result routes are unchanged."""
    services = short_event_previews
    mid, big = "m" * 20_000, "b" * 50_000  # inline in the task item; in RESULT# items
    body = {"tasks": [echo(1, mid), echo(2, big), echo(3, "{{2}}", [2])], "resultTask": 3}
    eid, events = run_job(services, body)
    done = by_type(events, "substep.completed")
    for task_id, text in ((1, mid), (2, big), (3, big)):
        assert done[task_id]["resultTruncated"] is True and len(done[task_id]["result"]) == 1024
        assert done[task_id]["resultBytes"] == len(json.dumps(text))
        assert done[task_id]["result"] == json.dumps(text)[:1024]
    final = events[-1]
    assert final["finalResultTruncated"] is True and len(final["finalResult"]) == 1024
    assert all(len(json.dumps(e)) < 2_000 for e in events)
    snapshot = services.orchestrator.snapshot(eid)
    assert all(len(t["result"]) == 16_384 for t in snapshot["tasks"])
    assert api.respond(lambda: api.task_result(services, eid, "2"))[1]["result"] == big
    _, small = run_job(services, {"tasks": [echo(1, "s" * 900)]})
    assert by_type(small, "substep.completed")[1]["result"] == "s" * 900  # under the cut: whole


def test_state_transitions_per_task(services):
    """Cost: Step Functions Standard bills state transitions (docs/cost.md). The real definition
    (DISTRIBUTED, as deployed) runs on moto; bench/transitions.py's model adds the states the
    parent entered, the states each item entered (its child execution's history, which moto keeps
    only through patches/map_run_history.py) and one transition per child execution started — the
    Distributed Map's charge no local history shows. 5 per execution, 5 per task, 4 per extra attempt."""
    sfn = boto3.client("stepfunctions")
    n = 6
    arn = transitions.run_job(services, {"tasks": transitions.echo_tasks(n)})
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    assert transitions.states_entered(history) == ["Init", "Tasks", "Finalize", "Outcome", "Succeeded"]
    items = transitions.states_entered(map_run_history(arn))
    assert {x: items.count(x) for x in set(items)} == {
        "AwaitDependencies": n,
        "Run": n,
        "Retry?": n,
        "TaskDone": n,
    }
    t = transitions.measure(sfn, arn)
    assert (t.parent, t.items, t.children) == (5, 4 * n, n)
    assert t.total == 5 + 5 * n
    assert transitions.coefficients(services, sfn) == {
        "per_execution": 5,
        "per_task": 5,
        "per_extra_attempt": 4,
    }
