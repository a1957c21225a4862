"""The short chaos suite, lost answers (issue 8; the random faults of each kind: test_chaos.py): a
DynamoDB call that was applied but whose answer never came back — retried by botocore, it meets its
own write. A failing job still fails once; a lost create still creates once; and the injector's
premise, that only a lost call reached the table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.domain.dag import parse_job
from tests.functional.conftest import assert_gapless, echo, fail, run_job, wait_for_end
from tests.support.chaos import FaultInjector, quicker_retries
from tests.support.chaos_tasks import lambda_clients


@pytest.fixture(autouse=True)
def _quicker_retries() -> Iterator[None]:
    with quicker_retries(0.1):  # the same retries, a tenth of botocore's waits between them
        yield


def test_a_failing_job_under_lost_writes_still_fails_once(services):
    job = {"tasks": [echo(1, "a"), fail(2, "boom", [1]), echo(3, "never", [2]), echo(4, "other", [1])]}
    with FaultInjector(lambda_clients(services), "lost", rate=0.2, seed=11) as faults:
        eid, events = run_job(services, {**job, "failurePolicy": "continue"}, timeout=180)
    assert sum(faults.injected.values()) >= 3, faults.injected
    assert_gapless(events, eid)
    assert [e["type"] for e in events].count("execution.failed") == 1
    assert events[-1]["type"] == "execution.failed"


@pytest.mark.parametrize(("mode", "applied"), [("throttle", False), ("5xx", False), ("lost", True)])
def test_the_injector_applies_a_faulted_call_only_when_the_answer_is_lost(stack, mode, applied):
    """The suite's premise: a throttled or 5xx call never reached the table; a lost one did."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    key = {"PK": {"S": f"CHAOS#{mode}"}, "SK": {"S": "probe"}}
    with (
        FaultInjector([client], mode, rate=1.0, operations={"PutItem"}) as faults,
        pytest.raises(ClientError) as refused,
    ):
        client.put_item(TableName=stack.table_name, Item=key)
    assert faults.injected == {"PutItem": 1}
    assert refused.value.response["Error"]["Code"] in {
        "ProvisionedThroughputExceededException",
        "InternalServerError",
    }
    assert ("Item" in client.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)) is applied


def test_an_execution_whose_create_answer_was_lost_is_created_once(services):
    """The META put is conditional: botocore's retry of a put that landed must not read as
    'execution already exists'."""
    job = {"tasks": [echo(1, "a"), echo(2, "b", [1])]}
    with FaultInjector(lambda_clients(services), "lost", rate=1.0, operations={"PutItem"}, limit=1) as faults:
        execution_id = services.orchestrator.submit(parse_job(job))
    assert sum(faults.injected.values()) == 1
    events = wait_for_end(services, execution_id, 60)
    assert_gapless(events, execution_id)
    assert [e["type"] for e in events].count("execution.created") == 1
    assert events[-1]["type"] == "execution.completed"
