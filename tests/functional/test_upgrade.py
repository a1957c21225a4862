"""A deploy under executions in flight (docs/deploy.md § Upgrading a live stage): the state machine
invokes published versions, so an execution started before a deploy finishes on the code it
started with while one started after it runs the new code. Run on moto: its Lambda versions and
its copy of the state machine at StartExecution (Step Functions keeps an execution's definition)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3

from chalicelib.config import ASL_FUNCTIONS
from chalicelib.domain.dag import parse_job
from dagcast.local.moto.invoker import Handler
from tests.functional.conftest import echo, sleep, wait_for_end

Calls = list[tuple[str, str, str]]  # (code label, execution id, function)


def labelled(
    real: dict[str, Handler],
    label: str,
    calls: Calls,
    gate: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Handler]:
    """The real handlers of the state machine's functions, recording which code ran them."""

    def wrap(name: str, real: Handler) -> Handler:
        def handler(event: dict[str, Any], context: Any) -> Any:
            calls.append((label, str(event.get("executionId")), name))
            if gate is not None:
                gate(name, event)
            return real(event, context)

        return handler

    return {name: wrap(name, handler) for name, handler in real.items()}


def test_an_execution_started_before_a_deploy_finishes_on_its_old_code_and_a_new_one_runs_the_new(
    stack, services
):
    """Chalice updates $LATEST in place: with unqualified ARNs in the definition, the tasks an
    execution ran after a deploy ran the new code (and its item layouts) mid-execution."""
    calls: Calls = []
    running, release = threading.Event(), threading.Event()
    job = {"tasks": [sleep(1), echo(2, "after the deploy", deps=[1])]}

    def hold_task_1(name: str, event: dict[str, Any]) -> None:
        if name == "run_task" and event.get("taskId") == 1 and event["executionId"] == old:
            running.set()
            assert release.wait(30), "the test never released the old execution"

    real = {name: stack.handlers[name] for name in ASL_FUNCTIONS.values()}
    old = ""
    stack.deploy_code(labelled(real, "old", calls, hold_task_1))
    try:
        old = services.orchestrator.submit(parse_job(job))
        assert running.wait(30), "the old execution's first task never ran"
        stack.deploy_code(labelled(real, "new", calls))
        new, new_events = services.orchestrator.submit(parse_job(job)), None
        new_events = wait_for_end(services, new)
        release.set()
        old_events = wait_for_end(services, old)
    finally:
        release.set()
        stack.deploy_code(real)

    assert old_events[-1]["type"] == "execution.completed", old_events[-1]
    assert new_events[-1]["type"] == "execution.completed", new_events[-1]
    ran_old = [(label, fn) for label, ex, fn in calls if ex == old]
    ran_new = [(label, fn) for label, ex, fn in calls if ex == new]
    # After the deploy the old execution still ran task 2 and Finalize: on its old versions.
    assert ("old", "finalize") in ran_old and {label for label, _ in ran_old} == {"old"}, ran_old
    assert ("new", "finalize") in ran_new and {label for label, _ in ran_new} == {"new"}, ran_new


def test_the_state_machine_invokes_the_versions_the_stack_published(stack):
    """The local stack's definition names published versions, as `dagcast deploy` makes it."""
    definition = json.loads(
        boto3.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)[
            "definition"
        ]
    )
    text = json.dumps(definition)
    awslambda = boto3.client("lambda")
    for param, version in stack.pinned.items():
        assert version.isdigit(), stack.pinned
        name = f"dagcast-local-{ASL_FUNCTIONS[param]}"
        arn = awslambda.get_function(FunctionName=name, Qualifier=version)["Configuration"]["FunctionArn"]
        assert arn.endswith(f":{version}") and f'"{arn}"' in text
