"""bench/transitions — what an execution is billed in Step Functions state transitions: a model.

Step Functions Standard bills one transition per state entered (a state retried is entered again),
and a Distributed Map bills one more per child execution it starts (AWS, "Transitions in
Distributed Map states", step-functions/latest/dg/concepts-transitions.html). The model adds
what each source can show:

  parent     the states the parent execution entered  (moto: its GetExecutionHistory)
  items      the states every Map item entered, in its child execution  (moto runs items as frames
             of the parent and drops their history; dagcast/local/moto/patches/map_run_history.py
             keeps it)
  children   child executions started: one per item (the parent's MapStateStarted ``length``), each
             billed CHILD_STARTED_TRANSITIONS — a charge no local history shows, from AWS's docs

Running the real definition (DISTRIBUTED, as deployed) on the embedded stack, this prints the model
for a few jobs and the coefficients docs/cost.md's tables use:

    transitions = per_execution + per_task × tasks + per_extra_attempt × extra attempts

    python -m bench.transitions
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

CHILD_STARTED_TRANSITIONS: Final = 1  # per child execution a Distributed Map starts (AWS pricing docs)


@dataclass(frozen=True)
class Transitions:
    parent: int  # states the parent execution entered
    items: int  # states the Map's items entered, in their child executions
    children: int  # child executions started

    @property
    def total(self) -> int:
        return self.parent + self.items + self.children * CHILD_STARTED_TRANSITIONS


def states_entered(history: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the states entered, in history order."""
    return [
        str(e["stateEnteredEventDetails"]["name"]) for e in history if str(e["type"]).endswith("StateEntered")
    ]


def children_started(parent_history: Iterable[Mapping[str, Any]]) -> int:
    """Child executions a Distributed Map started: one per item of each MapStateStarted."""
    return sum(
        int(e["mapStateStartedEventDetails"]["length"])
        for e in parent_history
        if e["type"] == "MapStateStarted"
    )


def model(
    parent_history: Sequence[Mapping[str, Any]], item_history: Sequence[Mapping[str, Any]]
) -> Transitions:
    """The execution's transitions from its parent's history and its items' histories."""
    return Transitions(
        parent=len(states_entered(parent_history)),
        items=len(states_entered(item_history)),
        children=children_started(parent_history),
    )


def measure(sfn: Any, execution_arn: str) -> Transitions:
    """The model of one finished execution of the embedded stack."""
    from dagcast.local.moto.patches.map_run_history import map_run_history

    parent = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return model(parent, map_run_history(execution_arn))


def run_job(services: Any, body: dict[str, Any], timeout: float = 120) -> str:
    """Submit ``body``, wait until its state machine execution ended; its execution ARN."""
    import boto3

    from chalicelib.domain.dag import parse_job

    sfn = boto3.client("stepfunctions")
    eid = services.orchestrator.submit(parse_job(body))
    arn = str(services.store.get_meta(eid)["stateMachineExecutionArn"])
    deadline = time.monotonic() + timeout
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{eid} still running after {timeout}s")
        time.sleep(0.05)
    return arn


def echo_tasks(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "action": "echo", "params": {"text": "x"}} for i in range(1, n + 1)]


def flaky_task(key: str, failures: int) -> dict[str, Any]:
    """A task whose first ``failures`` attempts fail (tests.flaky), retried without waiting."""
    params = {"function": "tests.flaky", "args": {"key": key, "failures": failures}}
    return {
        "id": 1,
        "action": "python",
        "params": params,
        "retries": {"count": failures, "backoffSeconds": 0},
    }


def coefficients(services: Any, sfn: Any) -> dict[str, int]:
    """per_execution, per_task, per_extra_attempt, measured from three jobs on the stack."""
    one = measure(sfn, run_job(services, {"tasks": echo_tasks(1)})).total
    three = measure(sfn, run_job(services, {"tasks": echo_tasks(3)})).total
    retried = measure(sfn, run_job(services, {"tasks": [flaky_task(uuid.uuid4().hex, 2)]})).total
    per_task = (three - one) // 2
    return {"per_execution": one - per_task, "per_task": per_task, "per_extra_attempt": (retried - one) // 2}


def main() -> None:
    import logging
    import os

    import boto3

    os.environ.setdefault("DAGCAST_PLUGINS", "tests.support.plugins")  # tests.flaky
    logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-bench-transitions").start()
    try:
        import app

        app.services.cache_clear()
        services = app.services()
        sfn = boto3.client("stepfunctions")
        for n in (1, 5, 20):
            t = measure(sfn, run_job(services, {"tasks": echo_tasks(n)}))
            print(f"{n:>4} tasks: parent {t.parent} + items {t.items} + children {t.children} = {t.total}")
        c = coefficients(services, sfn)
        print(
            f"transitions = {c['per_execution']} + {c['per_task']} × tasks"
            f" + {c['per_extra_attempt']} × extra attempts"
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
