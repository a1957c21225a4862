"""Approval tasks on moto: the real state machine definition parks the task on AwaitDecision until
the decision route (Chalice's test client, the real gate) or the approval's own timeout ends it."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from chalicelib.domain.events import SUBSTEP_COMPLETED, SUBSTEP_FAILED, SUBSTEP_WAITING
from chalicelib.domain.model import Reason, TaskStatus
from chalicelib.http.gate import key_digest
from tests.functional.conftest import assert_gapless, by_type, echo, wait_for_end
from tests.support.jobs import approval, sleep


def submit(client, body: dict[str, Any]) -> str:
    reply = client.http.post(
        "/api/v1/execute-dag", headers={"content-type": "application/json"}, body=json.dumps(body)
    )
    assert reply.status_code == 202, reply.json_body
    return str(reply.json_body["executionId"])


def decide(client, eid: str, task: Any, body: Any, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.http.post(
        f"/api/v1/dag-executions/{eid}/tasks/{task}/decision",
        headers={"content-type": "application/json", **(headers or {})},
        body=raw,
    )


def wait_for_waiting(services, eid: str, task_id: int, timeout: float = 30) -> Any:
    """The task's substep.waiting event, once its token is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in services.store.events_after(eid, 0):
            if event["type"] == SUBSTEP_WAITING and event["taskId"] == task_id:
                return event
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} of {eid} never waited for a decision")


def test_an_approved_task_completes_with_the_decision_and_its_dependents_run(client, services):
    eid = submit(
        client,
        {
            "tasks": [
                echo(1, "build 7"),
                approval(2, "Deploy {{1}}?", [1]),
                echo(3, "deployed after {{2}}", [2]),
            ]
        },
    )
    waiting = wait_for_waiting(services, eid, 2)
    assert waiting["prompt"] == 'Deploy "build 7"?' or waiting["prompt"] == "Deploy build 7?"
    assert waiting["timeoutSeconds"] == 600 and waiting["decisionDeadline"] > waiting["timestamp"]
    view = client.http.get(f"/api/v1/dag-executions/{eid}").json_body
    task = next(t for t in view["tasks"] if t["taskId"] == 2)
    assert task["status"] == TaskStatus.AWAITING_DECISION and task["prompt"] == waiting["prompt"]
    assert view["runningTasks"] == 0  # waiting for a person is not running

    reply = decide(client, eid, 2, {"approve": True, "comment": "ship it", "data": {"ticket": 42}})
    assert reply.status_code == 200, reply.json_body
    assert reply.json_body["status"] == TaskStatus.COMPLETED
    events = wait_for_end(services, eid)
    assert_gapless(events, eid)
    assert events[-1]["type"] == "execution.completed"
    result = by_type(events, SUBSTEP_COMPLETED)[2]["result"]
    assert {k: result[k] for k in ("approve", "comment", "data")} == {
        "approve": True,
        "comment": "ship it",
        "data": {"ticket": 42},
    }
    assert result["decidedBy"] == {"tenant": "default", "principal": None} and result["decidedAt"] > 0
    assert by_type(events, SUBSTEP_COMPLETED)[3]["result"].startswith("deployed after")
    types = [e["type"] for e in events]
    assert types.index(SUBSTEP_WAITING) < types.index(SUBSTEP_COMPLETED, types.index(SUBSTEP_WAITING))

    # a second decision, after the first ended the task: 409, saying what was decided
    again = decide(client, eid, 2, {"approve": False})
    assert again.status_code == 409 and again.json_body["decision"]["approve"] is True


def test_a_rejected_task_fails_with_the_comment_and_is_not_retried(client, services):
    eid = submit(client, {"failurePolicy": "continue", "tasks": [approval(1, "Go?"), echo(2, "after", [1])]})
    wait_for_waiting(services, eid, 1)
    reply = decide(client, eid, 1, {"approve": False, "comment": "not on a Friday"})
    assert reply.status_code == 200 and reply.json_body["status"] == TaskStatus.FAILED
    assert reply.json_body["decision"]["approve"] is False
    events = wait_for_end(services, eid)
    failed = by_type(events, SUBSTEP_FAILED)
    assert failed[1]["error"] == "rejected: not on a Friday" and failed[1]["reason"] == Reason.REJECTED
    assert failed[1]["willRetry"] is False
    assert failed[2]["reason"] == Reason.UPSTREAM
    assert events[-1]["type"] == "execution.failed"
    assert [e["type"] for e in events].count(SUBSTEP_FAILED) == 2  # no retry of the approval


def test_an_approval_nobody_decides_fails_at_its_own_timeout(client, services):
    eid = submit(client, {"tasks": [approval(1, "Anyone?", timeout_seconds=1), echo(2, "never", [1])]})
    events = wait_for_end(services, eid, timeout=60)
    failed = by_type(events, SUBSTEP_FAILED)
    assert failed[1]["reason"] == Reason.TIMEOUT and failed[1]["error"].startswith("no decision in time")
    assert events[-1]["type"] == "execution.failed"
    late = decide(client, eid, 1, {"approve": True})
    assert late.status_code == 409 and late.json_body["status"] == "failed"  # the execution ended


def test_an_approval_holds_no_concurrency_slot(client, services):
    """maxConcurrency 1: task 2 runs while the approval waits (it would queue behind a slot)."""
    eid = submit(client, {"maxConcurrency": 1, "tasks": [approval(1, "Go?"), sleep(2, 0)]})
    wait_for_waiting(services, eid, 1)
    deadline = time.monotonic() + 30
    while services.store.get_task(eid, 2)["status"] != TaskStatus.COMPLETED:
        assert time.monotonic() < deadline, "task 2 waited for the approval's slot"
        time.sleep(0.05)
    assert 1 not in services.store.get_meta(eid).get("holding", set())
    assert decide(client, eid, 1, {"approve": True}).status_code == 200
    assert wait_for_end(services, eid)[-1]["type"] == "execution.completed"


def test_two_decisions_at_once_one_wins_and_the_other_is_409(client, services):
    import concurrent.futures

    eid = submit(client, {"tasks": [approval(1, "Go?")]})
    wait_for_waiting(services, eid, 1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda a: decide(client, eid, 1, {"approve": a}), [True, False]))
    assert sorted(r.status_code for r in replies) == [200, 409]
    events = wait_for_end(services, eid)
    ended = [e for e in events if e["type"] in (SUBSTEP_COMPLETED, SUBSTEP_FAILED)]
    assert len(ended) == 1


def test_the_decider_is_the_key_that_sent_it(client, services, monkeypatch):
    key = "dk_approver"
    monkeypatch.setattr(services.gate, "keys", ((key_digest(key), "acme"),))  # acme's key
    eid = submit_with_key(client, key)
    wait_for_waiting(services, eid, 1)
    assert decide(client, eid, 1, {"approve": True}).status_code == 401  # the gate guards the route
    reply = decide(client, eid, 1, {"approve": True}, {"authorization": f"Bearer {key}"})
    assert reply.status_code == 200
    assert reply.json_body["decision"]["decidedBy"] == {"tenant": "acme", "principal": key_digest(key)[:12]}
    wait_for_end(services, eid)


def submit_with_key(client, key: str) -> str:
    reply = client.http.post(
        "/api/v1/execute-dag",
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        body=json.dumps({"tasks": [approval(1, "Go?")]}),
    )
    assert reply.status_code == 202
    return str(reply.json_body["executionId"])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"", 400, "the body is empty"),
        (b"{", 400, "not valid JSON"),
        ({"approve": "yes"}, 400, "approve"),
        ({}, 400, "approve"),
        ({"approve": True, "extra": 1}, 400, "extra"),
        ({"approve": True, "comment": "x" * 2_001}, 400, "comment"),
        ({"approve": True, "data": "x" * 17_000}, 400, "data is"),
    ],
)
def test_bad_decisions_are_400_and_change_nothing(client, services, body, status, says):
    eid = submit(client, {"tasks": [approval(1, "Go?")]})
    wait_for_waiting(services, eid, 1)
    reply = decide(client, eid, 1, body)
    assert reply.status_code == status and says in reply.json_body["error"], reply.json_body
    assert services.store.get_task(eid, 1)["status"] == TaskStatus.AWAITING_DECISION
    client.http.post(f"/api/v1/dag-executions/{eid}/cancel")


def test_decisions_for_what_cannot_take_one_are_clear_4xx(client, services):
    # moto's interpreter does not abort a parked child on StopExecution (AWS does): a short timeout
    # ends it soon after the cancel, and then changes nothing
    eid = submit(client, {"tasks": [sleep(1, 0.5), approval(2, "Go?", [1], timeout_seconds=3)]})
    assert decide(client, "dag-exec_nope", 1, {"approve": True}).status_code == 404
    assert decide(client, eid, 99, {"approve": True}).status_code == 404
    assert decide(client, eid, "x", {"approve": True}).status_code == 400
    not_approval = decide(client, eid, 1, {"approve": True})
    assert not_approval.status_code == 409 and "not an approval" in not_approval.json_body["error"]
    early = decide(client, eid, 2, {"approve": True})  # its dependency still runs
    assert early.status_code == 409 and early.json_body["status"] == TaskStatus.WAITING
    wait_for_waiting(services, eid, 2)
    assert client.http.post(f"/api/v1/dag-executions/{eid}/cancel").status_code == 200
    after = decide(client, eid, 2, {"approve": True})
    assert after.status_code == 409 and after.json_body["status"] == "cancelled"
    view = client.http.get(f"/api/v1/dag-executions/{eid}").json_body
    assert next(t for t in view["tasks"] if t["taskId"] == 2)["status"] == TaskStatus.CANCELLED
    events = wait_for_end(services, eid, timeout=30)
    assert events[-1]["status"] == "cancelled" and SUBSTEP_FAILED not in [e["type"] for e in events]
    assert services.store.get_task(eid, 2)["status"] == TaskStatus.AWAITING_DECISION  # shown cancelled


def test_a_decision_whose_token_was_never_sent_is_repaired_by_the_next_one(client, services, monkeypatch):
    """The route finished the task, then died before SendTaskSuccess: the child stays parked. A
    repeated decision is refused (409) but sends the token, and the execution ends."""
    eid = submit(client, {"tasks": [approval(1, "Go?")]})
    wait_for_waiting(services, eid, 1)
    sm = services.orchestrator._state_machine
    real = sm.send_task_success

    def lost(token: str, output: str) -> bool:
        raise ConnectionError("the answer was lost")

    monkeypatch.setattr(sm, "send_task_success", lost)
    assert decide(client, eid, 1, {"approve": True}).status_code == 500
    monkeypatch.setattr(sm, "send_task_success", real)
    arn = services.store.get_meta(eid)["stateMachineExecutionArn"]
    assert boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
    assert decide(client, eid, 1, {"approve": True}).status_code == 409
    assert wait_for_end(services, eid)[-1]["type"] == "execution.completed"
