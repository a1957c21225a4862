"""The short chaos suite (issue 8) inside `make test`: DynamoDB calls of the task Lambdas and the
fan-out fail at random — throttled, 5xx, or applied with the answer lost — while real jobs run through
the real state machine. Every execution still ends right, with a gapless log, each event once,
every task run once and never before its dependencies. (Answers lost on purpose, and the injector's
premise: test_chaos_lost_answers.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff, RetryContext

from tests.functional.conftest import assert_gapless, by_type, echo, run_job
from tests.support.chaos import FaultInjector, quicker_retries
from tests.support.chaos_tasks import lambda_clients


@pytest.fixture(autouse=True)
def _quicker_retries() -> Iterator[None]:
    with quicker_retries(0.1):  # the same retries, a tenth of botocore's waits between them
        yield


def diamond_and_fan() -> dict[str, Any]:
    tasks = [echo(1, "root")]
    tasks += [echo(i, f"mid {i} <{{{{1}}}}>", [1]) for i in range(2, 6)]
    tasks += [echo(6, "join", [2, 3, 4, 5]), echo(7, "tail", [6]), echo(8, "side", [1])]
    return {"tasks": tasks}


@pytest.mark.parametrize("mode", ["throttle", "5xx", "lost"])
def test_dynamodb_faults_lose_and_duplicate_nothing(services, mode):
    job = diamond_and_fan()
    with FaultInjector(lambda_clients(services), mode, rate=0.15) as faults:
        eid, events = run_job(services, job, timeout=120)
    assert sum(faults.injected.values()) >= 5, faults.injected  # the faults really happened
    assert_gapless(events, eid)
    assert events[-1]["type"] == "execution.completed", events[-3:]
    started, completed = by_type(events, "substep.started"), by_type(events, "substep.completed")
    assert set(completed) == {t["id"] for t in job["tasks"]}
    order = {e["seq"]: e for e in events}
    for t in job["tasks"]:
        for dep in t["dependencies"]:
            assert completed[dep]["seq"] < started[t["id"]]["seq"], (t["id"], dep)
    assert len(order) == len(events)


def test_the_retries_here_wait_a_tenth_of_botocores_delay():
    """What the module's fixture promises (and what a botocore that renamed its backoff would break
    unnoticed: the runs would only get slow again): a DynamoDB 5xx's third attempt waits up to
    25 ms × 2² in botocore, a tenth of it here; and a block put back what it found."""
    backoff = ExponentialBackoff(random=lambda: 1.0, service_name="dynamodb")
    third_attempt = RetryContext(attempt_number=3)
    assert backoff.delay_amount(third_attempt) == pytest.approx(0.025 * 2**2 * 0.1)
    with quicker_retries(0.5):
        assert backoff.delay_amount(third_attempt) == pytest.approx(0.025 * 2**2 * 0.1 * 0.5)
    assert backoff.delay_amount(third_attempt) == pytest.approx(0.025 * 2**2 * 0.1)
