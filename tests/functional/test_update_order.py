"""``execution.updated`` after every finished task, on the fallback path too (docs/events.md).

A finish that could not write its update in its own transaction (``record_failure``: the task
Lambda failed after its retries, or its await timed out; a repeated or duplicate finish) appends
the update itself. It must do so *before* it releases the dependents: a released dependent can
run, finish and reach Finalize, and nothing is appended after the terminal event.

Step Functions is played by the test (``InlineStateMachine``): a dependent's release token runs
that dependent and then Finalize at once, inside the releasing call — the fastest dependent chain
there can be, with no sleep and no race. The store is the functional stack's (moto DynamoDB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.factory import Services
from chalicelib.orchestration.engine import Orchestrator
from tests.functional.conftest import assert_every_finish_updated, echo

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:inline"


class InlineStateMachine:
    """The StateMachine port, answering in the caller's thread: ``on_send`` runs for every token
    sent (a release), before ``send_task_success`` returns."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.on_send: Callable[[str], None] = lambda token: None

    def start_execution(self, state_machine_arn: str, name: str, input: str) -> str:
        return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"

    def send_task_success(self, token: str, output: str) -> bool:
        self.sent.append(token)
        self.on_send(token)
        return True

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        pass


def _engine(services: Services) -> tuple[Orchestrator, InlineStateMachine]:
    machine = InlineStateMachine()
    return Orchestrator(services.store, machine, ARN), machine


def _types(services: Services, execution_id: str) -> list[tuple[str, Any]]:
    return [(e["type"], e.get("taskId")) for e in services.store.events_after(execution_id, 0)]


# How Step Functions hands record_failure a task that did not finish by itself.
CRASHED = {"Error": "Lambda.Unknown", "Cause": "the task Lambda crashed"}
AWAIT_TIMED_OUT = {"Error": "States.Timeout", "Cause": "AwaitDependencies timed out"}


@pytest.mark.parametrize("error", [CRASHED, AWAIT_TIMED_OUT], ids=["crashed", "await-timed-out"])
def test_a_fallback_finish_has_its_update_before_a_fast_dependent_chain_ends_the_log(services, error):
    engine, machine = _engine(services)
    eid = engine.submit(parse_job({"tasks": [echo(1, "a"), echo(2, "b", [1])]}))

    def dependent_runs_then_finalize(token: str) -> None:
        if token == "tok-2":  # released by task 1's finish: it runs, and the execution ends
            engine.run({"executionId": eid, "taskId": 2, "attempt": 1})
            engine.finalize({"executionId": eid, "error": None})

    machine.on_send = dependent_runs_then_finalize
    engine.register({"executionId": eid, "taskId": 2, "token": "tok-2"})  # parked: 1 is not done
    engine.register({"executionId": eid, "taskId": 1, "token": "tok-1"})  # released at once
    engine.record_failure({"executionId": eid, "taskId": 1, "error": error})

    assert machine.sent == ["tok-1", "tok-2"]
    assert _types(services, eid) == [
        ("execution.created", None),
        ("substep.failed", 1),
        ("execution.updated", None),  # task 1's: before task 2 could start, so before the end
        ("substep.failed", 2),  # skipped: failFast (crashed) or past the deadline (await timed out)
        ("execution.updated", None),
        ("execution.failed", None),
    ]
    events = services.store.events_after(eid, 0)
    assert_every_finish_updated(events)
    assert (events[2]["failedTasks"], events[2]["skippedTasks"]) in ((1, 0), (0, 1))  # counts task 1


def test_a_repeated_fallback_finish_writes_no_second_update(services):
    """Safe to repeat: a retried record_failure counts, announces and releases again, and its
    update's key (``execution.updated#<taskId>``) is taken: nothing new is written."""
    engine, _ = _engine(services)
    eid = engine.submit(parse_job({"tasks": [echo(1, "a"), echo(2, "b", [1])]}))
    engine.register({"executionId": eid, "taskId": 2, "token": "tok-2"})
    engine.register({"executionId": eid, "taskId": 1, "token": "tok-1"})
    failure = {"executionId": eid, "taskId": 1, "error": CRASHED}
    engine.record_failure(failure)
    once = _types(services, eid)
    engine.record_failure(failure)
    assert (
        _types(services, eid)
        == once
        == [
            ("execution.created", None),
            ("substep.failed", 1),
            ("execution.updated", None),
        ]
    )
    engine.run({"executionId": eid, "taskId": 2, "attempt": 1})
    engine.finalize({"executionId": eid, "error": None})
    assert [t for t, _ in _types(services, eid)].count("execution.updated") == 2


def test_tasks_settled_by_reconcile_have_their_update_before_the_terminal_event(services):
    """Step Functions ended the execution itself (here: timed out) while task 1 ran and task 2
    waited: reconcile fails 1 and skips 2, each announced and counted by an update, then the end."""
    engine, _ = _engine(services)
    eid = engine.submit(parse_job({"tasks": [echo(1, "a"), echo(2, "b", [1])]}))
    services.store.start_task(eid, 1, 1, 1, "tok-1")  # running, as its Run step left it
    detail = {"name": eid, "stateMachineArn": ARN, "status": "TIMED_OUT", "executionArn": f"{ARN}:{eid}"}
    assert engine.reconcile(detail)["reconciled"] is True
    events = services.store.events_after(eid, 0)
    assert [(e["type"], e.get("taskId")) for e in events] == [
        ("execution.created", None),
        ("substep.failed", 1),
        ("execution.updated", None),
        ("substep.failed", 2),
        ("execution.updated", None),
        ("execution.failed", None),
    ]
    assert_every_finish_updated(events)
    assert (events[-2]["failedTasks"], events[-2]["skippedTasks"]) == (1, 1)
