"""The state machine's bounds and retries, read from the ASL offline, and the inputs that fill
them: every callback wait ends by the execution's deadline, every execution by a backstop, every
Lambda call rides out a burst of throttling; the transitions model bills the Distributed Map's
children (bench/transitions.py)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from bench.transitions import CHILD_STARTED_TRANSITIONS, model
from chalicelib.domain.dag import MAX_EXECUTION_SECONDS, parse_job
from chalicelib.domain.model import MAX_DECISION_SECONDS, SFN_ENDED_WITHOUT_FINALIZE
from chalicelib.orchestration.submission import execution_fields, state_machine_input
from tests.support.cloudformation import ROOT

LAMBDA_STATES = ("AwaitDependencies", "Run", "AwaitDecision", "RecordFailure", "Finalize")
THROTTLED = "Lambda.TooManyRequestsException"
SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
)


def asl() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((ROOT / "infra" / "statemachine" / "dag.asl.json").read_text())
    return definition


def states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**definition["States"], **definition["States"]["Tasks"]["ItemProcessor"]["States"]}


def retrier_for(state: dict[str, Any], error: str) -> dict[str, Any]:
    """The retrier Step Functions uses for ``error``: the first whose ErrorEquals matches it."""
    for retrier in state.get("Retry", []):
        names = retrier["ErrorEquals"]
        if (
            error in names
            or "States.ALL" in names
            or ("States.TaskFailed" in names and error.startswith("Lambda."))
        ):
            return dict(retrier)
    raise AssertionError(f"nothing retries {error}")


def longest_ride_out(retrier: dict[str, Any]) -> float:
    """Seconds the retrier can wait in all: each delay Interval × Rate^n, capped by MaxDelaySeconds.
    With FULL jitter each wait is uniform in [0, delay], so half of it is spent on average."""
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    return float(sum(min(interval * rate**n, cap) for n in range(retrier.get("MaxAttempts", 3))))


@pytest.mark.parametrize("name", LAMBDA_STATES)
@pytest.mark.parametrize("error", (THROTTLED, *SERVICE_ERRORS))
def test_every_lambda_state_rides_out_a_burst_of_throttling_with_jitter(name, error):
    """1,000 children register at once: a throttled call waits (minutes, jittered so the retries
    do not come back together) instead of failing the task after 3 s as before."""
    retrier = retrier_for(states(asl())[name], error)
    assert retrier.get("JitterStrategy") == "FULL", (name, retrier)
    assert longest_ride_out(retrier) / 2 >= 180, (name, retrier)  # ≥ 3 min on average
    assert retrier.get("MaxDelaySeconds", 0) <= 120  # and no single wait longer than 2 min


def test_a_function_that_fails_is_still_retried_briefly():
    """Throttling gets its own retrier: a crashing run_task still fails over to RecordFailure in
    seconds, not after minutes of throttling back-off."""
    for name in ("AwaitDependencies", "Run"):
        crash = retrier_for(states(asl())[name], "Lambda.Unknown")
        assert crash["ErrorEquals"] == ["States.TaskFailed"] and longest_ride_out(crash) < 10


def test_awaiting_dependencies_ends_by_the_executions_deadline():
    definition = asl()
    await_ = states(definition)["AwaitDependencies"]
    assert await_["Resource"].endswith("lambda:invoke.waitForTaskToken")
    assert await_["TimeoutSecondsPath"] == "$.deadlineSeconds"
    assert "HeartbeatSeconds" not in await_  # nothing holds the token while it waits (its Comment)
    # the value travels from the state machine's input to every item
    assert definition["States"]["Init"]["Parameters"]["deadlineSeconds.$"] == "$.deadlineSeconds"
    assert definition["States"]["Tasks"]["ItemSelector"]["deadlineSeconds.$"] == "$.deadlineSeconds"
    # States.Timeout is not retried (TaskFailed does not match it): it reaches RecordFailure
    assert all("States.Timeout" not in r["ErrorEquals"] for r in await_["Retry"])
    assert await_["Catch"][0]["Next"] == "RecordFailure"


@pytest.mark.parametrize(("timeout", "ceiling", "seconds"), [(2.5, 86_400, 3), (None, 3_600, 3_600)])
def test_the_input_and_the_meta_carry_the_deadline_the_job_or_the_stage_sets(timeout, ceiling, seconds):
    body: dict[str, Any] = {"tasks": [{"id": 1, "action": "echo", "params": {"text": "x"}}]}
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    job = parse_job(body)
    assert json.loads(state_machine_input("e", job, ceiling))["deadlineSeconds"] == seconds
    fields = execution_fields(job, 1_000, ceiling)
    assert fields["deadlineAt"] == 1_000 + int((timeout or ceiling) * 1000)
    assert ("timeoutFrom" in fields) is (timeout is None)  # a job without timeoutSeconds: the ceiling


def test_every_execution_ends_by_the_backstop_above_any_deadline():
    """TimeoutSeconds: the longest deadline (86,400 s, plus the 7 days a job's approvals may wait
    for decisions) plus what may run past it — a Backoff in progress (≤ 3,600 s), an attempt's
    Lambda (900 s) with the throttling retries."""
    definition = asl()
    backstop = definition["TimeoutSeconds"]
    throttling = max(longest_ride_out(retrier_for(states(definition)[n], THROTTLED)) for n in LAMBDA_STATES)
    longest = MAX_EXECUTION_SECONDS + MAX_DECISION_SECONDS
    assert backstop >= longest + 3_600 + 900 + throttling
    assert backstop <= 2 * longest  # a backstop, not a year


def test_an_approval_waits_on_its_own_token_for_its_own_timeout():
    """The dependency token is spent once the task runs: a decision needs a callback state of its
    own, bounded by the approval's wait (Run's waitSeconds), its timeout told apart from the
    wait for dependencies."""
    machine = states(asl())
    wait = machine["AwaitDecision"]
    assert wait["Resource"].endswith("lambda:invoke.waitForTaskToken")
    assert wait["Parameters"]["Payload"]["decisionToken.$"] == "$$.Task.Token"
    assert wait["TimeoutSecondsPath"] == "$.outcome.waitSeconds"
    assert {
        "Variable": "$.outcome.status",
        "StringEquals": "awaitDecision",
        "Next": "AwaitDecision",
    } in machine["Retry?"]["Choices"]
    assert wait["Catch"][0] == {
        "ErrorEquals": ["States.Timeout"],
        "ResultPath": "$.error",
        "Next": "DecisionTimedOut",
    }
    assert machine["DecisionTimedOut"]["Parameters"]["error"]["Error"] == "DecisionTimedOut"
    assert machine["DecisionTimedOut"]["Next"] == "RecordFailure" and wait["Next"] == "TaskDone"
    assert retrier_for(wait, THROTTLED).get("JitterStrategy") == "FULL"


def test_the_reconcile_rule_matches_a_parents_end_not_a_childs():
    import app

    pattern: dict[str, Any] = dict(app.STATUS_CHANGE_PATTERN)
    assert (
        set(pattern["detail"]["status"])
        == {"TIMED_OUT", "ABORTED", "FAILED"}
        == set(SFN_ENDED_WITHOUT_FINALIZE)
    )
    [wildcard] = [p["wildcard"] for p in pattern["detail"]["stateMachineArn"]]
    parent = "arn:aws:states:eu-west-1:123456789012:stateMachine:dagcast-prod-dag"
    child = "arn:aws:states:eu-west-1:123456789012:stateMachine:dagcast-prod-dag/Tasks"
    assert fnmatch.fnmatchcase(parent, wildcard) and not fnmatch.fnmatchcase(child, wildcard)
    [source] = [e for e in app.app.event_sources if e.name == "reconcile_execution"]
    assert getattr(source, "event_pattern", None) == pattern


def _entered(*names: str) -> list[dict[str, Any]]:
    return [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": n}} for n in names]


def test_the_transitions_model_bills_each_child_execution_started():
    """An inline-Map count (every state in one history) misses the Distributed Map's charge of one
    transition per child started: 5 per task, not 4."""
    parent = [
        *_entered("Init", "Tasks"),
        {"type": "MapStateStarted", "mapStateStartedEventDetails": {"length": 3}},
        *_entered("Finalize", "Outcome", "Succeeded"),
    ]
    items = _entered(*["AwaitDependencies", "Run", "Retry?", "TaskDone"] * 3)
    t = model(parent, items)
    assert (t.parent, t.items, t.children) == (5, 12, 3)
    assert CHILD_STARTED_TRANSITIONS == 1 and t.total == 5 + 5 * 3
