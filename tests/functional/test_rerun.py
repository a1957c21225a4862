"""Rerun from failure (POST …/{id}/rerun) on moto: the real state machine runs only what is not
reused, reused results feed the tasks that run, and bad requests change nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

import tests.support.plugins  # noqa: F401  (registers the python functions the jobs call)
from chalicelib.domain.errors import BadRequest, ExecutionNotFound, ExecutionRunning, NothingToRerun
from chalicelib.domain.model import ExecutionStatus, TaskStatus
from chalicelib.http import api
from chalicelib.persistence.keys import RESULT_PREFIX, TTL_ATTRIBUTE, pk
from tests.functional.conftest import by_type, echo, fail, run_job, sleep, wait_for_end
from tests.support.jobs import task


def flaky_job(key: str) -> dict[str, Any]:
    """1 → 2 (fails on its first call only) → 3 (sums 1 and 2's inputs); 4 alone."""
    return {
        "originalRequest": "rerun me",
        "tasks": [
            task(1, "python", {"function": "tests.sum_inputs", "args": {"offset": 5}}),
            task(2, "python", {"function": "tests.flaky", "args": {"key": key, "failures": 1}}, [1]),
            task(3, "python", {"function": "tests.return_args", "args": {"n": 3}}, [1, 2]),
            echo(4, "four"),
        ],
    }


def rerun(services, execution_id: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    raw = None if body is None else json.dumps(body).encode()
    return api.rerun_execution(services, execution_id, raw, "http://127.0.0.1:8000")


def rows(services) -> int:
    """The table's items but the activity log's, which the fan-out writes for an execution that has
    ended a moment after its terminal event is read (run_job): asynchronously, in the test's way."""
    items = boto3.client("dynamodb").scan(TableName=services.settings.table_name, ProjectionExpression="PK")
    return sum(1 for i in items["Items"] if not i["PK"]["S"].startswith("ACTIVITY#"))


def test_a_rerun_reuses_what_completed_and_runs_the_rest(services):
    key = f"flaky-{uuid.uuid4().hex}"
    original, events = run_job(services, flaky_job(key))
    assert events[-1]["type"] == "execution.failed"

    status, body = rerun(services, original)
    assert status == 202 and body["rerunOf"] == original and body["executionId"] != original
    new_events = wait_for_end(services, body["executionId"])
    assert new_events[-1]["type"] == "execution.completed"
    # Reused: 1 and 4, once each, right after execution.created and before anything started.
    assert [(e["type"], e.get("taskId"), e.get("reused")) for e in new_events[:3]] == [
        ("execution.created", None, None),
        ("substep.completed", 1, True),
        ("substep.completed", 4, True),
    ]
    started = by_type(new_events, "substep.started")
    assert sorted(started) == [2, 3]
    # The state machine never runs 1 or 4: its Map has no item for them (a run_task of a reused task
    # would only find it completed, but it is a child execution and Lambda calls for nothing).
    arn = services.store.get_meta(body["executionId"])["stateMachineExecutionArn"]
    sfn_input = json.loads(boto3.client("stepfunctions").describe_execution(executionArn=arn)["input"])
    assert sfn_input["taskIds"] == [2, 3]
    completed = [e["taskId"] for e in new_events if e["type"] == "substep.completed"]
    assert sorted(completed) == [1, 2, 3, 4]  # each once
    assert by_type(new_events, "substep.completed")[2].get("reused") is None
    view = services.orchestrator.snapshot(body["executionId"])
    assert view["rerunOf"] == original and view["completedTasks"] == 4
    reused = {t["taskId"]: t.get("reused") for t in view["tasks"]}
    assert reused == {1: True, 2: None, 3: None, 4: True}
    assert view["tasks"][0]["result"] == 5  # task 1's result, from the original
    # The original is as it was.
    assert services.orchestrator.snapshot(original)["status"] == ExecutionStatus.FAILED


def test_forced_tasks_and_their_dependents_run_again(services):
    original, _ = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1]), echo(3, "c")]})
    status, body = rerun(services, original, {"tasks": [1]})
    assert status == 202
    events = wait_for_end(services, body["executionId"])
    assert events[-1]["type"] == "execution.completed"
    assert sorted(by_type(events, "substep.started")) == [1, 2]
    reused = [e["taskId"] for e in events if e["type"] == "substep.completed" and e.get("reused")]
    assert reused == [3]


def test_a_reused_large_result_is_copied_with_the_new_executions_expiry(services):
    big = task(1, "python", {"function": "tests.big_text", "args": {"pattern": "ab", "repeat": 40_000}})
    original, _ = run_job(services, {"tasks": [big, fail(2, "no", [1])]})
    _, body = rerun(services, original)
    new_id = body["executionId"]
    events = wait_for_end(services, new_id)
    first = by_type(events, "substep.completed")[1]
    assert first["reused"] is True and first["resultUrl"].endswith(f"/{new_id}/tasks/1/result")
    assert api.task_result(services, new_id, "1")[1]["result"] == "ab" * 40_000
    chunks = boto3.client("dynamodb").query(
        TableName=services.settings.table_name,
        KeyConditionExpression="PK = :p AND begins_with(SK, :s)",
        ExpressionAttributeValues={":p": {"S": pk(new_id)}, ":s": {"S": RESULT_PREFIX}},
    )["Items"]
    expiry = services.store.get_meta(new_id)[TTL_ATTRIBUTE]
    assert chunks and all(int(c[TTL_ATTRIBUTE]["N"]) == expiry for c in chunks)


def test_bad_reruns_answer_4xx_and_store_nothing(services):
    done, _ = run_job(services, {"tasks": [echo(1, "a")]})
    before = rows(services)
    with pytest.raises(ExecutionNotFound):
        rerun(services, "dag-exec_unknown")
    with pytest.raises(NothingToRerun):
        rerun(services, done)  # every task completed: nothing runs from failure
    bodies: tuple[object, ...] = (
        {"tasks": [9]},
        {"tasks": []},
        {"tasks": ["1"]},
        {"from": "start"},
        {"x": 1},
        [1],
    )
    for body in bodies:
        with pytest.raises(BadRequest):
            rerun(services, done, body)
    assert rows(services) == before


def test_a_running_execution_cannot_be_rerun(services):
    from chalicelib.domain.dag import parse_job

    execution_id = services.orchestrator.submit(parse_job({"tasks": [sleep(1, 2)]}))
    try:
        with pytest.raises(ExecutionRunning):
            rerun(services, execution_id)
        assert services.store.get_meta(execution_id)["status"] == ExecutionStatus.RUNNING
    finally:
        wait_for_end(services, execution_id)
    assert services.store.get_task(execution_id, 1)["status"] == TaskStatus.COMPLETED
