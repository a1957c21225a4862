"""Executions Step Functions ends itself, on moto with the real definition: a lost callback token
ends at the execution's deadline (AwaitDependencies' TimeoutSecondsPath); the state machine timing
out or being stopped outside dagcast ends with its terminal event, exactly once, every task
settled — written by the reconcile handler the local stack calls from DescribeExecution (the
EventBridge rule's stand-in, dagcast/local/moto/reconciler.py)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3

from chalicelib.domain.dag import parse_job
from dagcast.local.lambdas import status_change_event
from tests.functional.conftest import (
    assert_every_finish_updated,
    assert_gapless,
    by_type,
    echo,
    fail,
    run_job,
    sleep,
    wait_for_end,
)


def _settled(services: Any, execution_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The terminal event, after checking it is the only one and every task has its final status."""
    terminal = [e for e in events if e["type"] in ("execution.completed", "execution.failed")]
    assert len(terminal) == 1 and events[-1] is terminal[0], [e["type"] for e in events]
    assert_every_finish_updated(events)  # the tasks it settled too
    end = terminal[0]
    assert end["completedTasks"] + end["failedTasks"] + end["skippedTasks"] == end["totalTasks"]
    tasks = services.orchestrator.snapshot(execution_id)["tasks"]
    assert all(t["status"] in ("completed", "failed", "skipped") for t in tasks), tasks
    return end


@contextlib.contextmanager
def _state_machine_timeout(stack: Any, seconds: int) -> Iterator[None]:
    """The stack's state machine with a short TimeoutSeconds, for the executions started inside."""
    sfn = boto3.client("stepfunctions")
    real = sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn)["definition"]
    short = {**json.loads(real), "TimeoutSeconds": seconds}
    sfn.update_state_machine(stateMachineArn=stack.state_machine_arn, definition=json.dumps(short))
    try:
        yield
    finally:
        sfn.update_state_machine(stateMachineArn=stack.state_machine_arn, definition=real)


def test_a_lost_token_ends_at_the_deadline_instead_of_parking_the_execution(stack, services):
    """register_task stores no token (as if it were lost): the task waits until its await times out
    at the job's deadline, is skipped with reason timeout, and the execution fails with it."""
    with stack.handler_override("register_task", lambda event, context: {"registered": True}):
        eid, events = run_job(services, {"timeoutSeconds": 2, "tasks": [echo(1, "never")]}, timeout=30)
    assert_gapless(events, eid)
    end = _settled(services, eid, events)
    assert (end["type"], end["reason"]) == ("execution.failed", "timeout")
    assert "timed out after 2s (timeoutSeconds)" in end["error"]
    skipped = by_type(events, "substep.failed")[1]
    assert skipped["reason"] == "timeout" and "while it waited for its dependencies" in skipped["error"]


def test_a_state_machine_timeout_is_reconciled_once_with_every_task_settled(stack, services):
    with _state_machine_timeout(stack, 1):
        eid = services.orchestrator.submit(parse_job({"tasks": [sleep(1, 3), echo(2, "after", [1])]}))
    events = wait_for_end(services, eid, timeout=30)
    arn = services.store.get_meta(eid)["stateMachineExecutionArn"]
    assert boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "TIMED_OUT"
    assert_gapless(events, eid)
    end = _settled(services, eid, events)
    assert (end["type"], end["status"], end["reason"]) == ("execution.failed", "failed", "timeout")
    assert "Step Functions timed out the execution" in end["error"]
    failed = by_type(events, "substep.failed")
    assert (failed[1]["reason"], failed[2]["reason"]) == ("timeout", "timeout")
    assert (end["failedTasks"], end["skippedTasks"]) == (1, 1)  # 1 was running, 2 never started
    time.sleep(3)  # task 1's Lambda ends meanwhile: nothing after the terminal event, counters kept
    assert services.store.events_after(eid, end["seq"]) == []
    assert _settled(services, eid, events) == end
    assert (
        services.orchestrator.reconcile(
            status_change_event(
                {
                    "executionArn": arn,
                    "name": eid,
                    "stateMachineArn": stack.state_machine_arn,
                    "status": "TIMED_OUT",
                }
            )["detail"]
        )["reconciled"]
        is False
    )


def test_a_stop_outside_dagcast_fails_the_execution_as_aborted(stack, services):
    eid = services.orchestrator.submit(parse_job({"tasks": [sleep(1, 2), echo(2, "after", [1])]}))
    arn = str(services.store.get_meta(eid)["stateMachineExecutionArn"])
    time.sleep(0.5)
    boto3.client("stepfunctions").stop_execution(
        executionArn=arn, error="Ops", cause="stopped in the console"
    )
    events = wait_for_end(services, eid, timeout=30)
    end = _settled(services, eid, events)
    assert (end["type"], end["reason"]) == ("execution.failed", "aborted")
    # moto's DescribeExecution leaves out the stop's error and cause; when the event carries them
    # (AWS), the message ends with them
    assert end["error"].startswith("Step Functions stopped the execution")


def test_reconcile_changes_nothing_for_ordinary_ends_and_other_state_machines(stack, services):
    """FAILED also reaches the rule for every job that failed the ordinary way (Finalize's DagFailed),
    ABORTED for every cancel: the terminal event is there, so nothing is written."""
    eid, events = run_job(services, {"tasks": [fail(1, "boom")]})
    arn = services.store.get_meta(eid)["stateMachineExecutionArn"]
    described = boto3.client("stepfunctions").describe_execution(executionArn=arn)
    assert described["status"] == "FAILED"
    event = status_change_event(dict(described))
    assert stack.handlers["reconcile_execution"](event, None) == {
        "executionId": eid,
        "status": "failed",
        "reconciled": False,
    }
    other = {**event["detail"], "stateMachineArn": stack.state_machine_arn.replace("-dag", "-other-dag")}
    assert services.orchestrator.reconcile(other) == {"reconciled": False}
    assert services.store.events_after(eid, 0) == events
