"""The Step Functions adapter against moto's Step Functions: each ClientError it can give a meaning
to becomes a domain outcome or error, and a refused start fails the stored execution cleanly."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import StartFailed, StopFailed
from chalicelib.orchestration.engine import Orchestrator
from chalicelib.orchestration.submission import new_execution_id
from chalicelib.persistence.sfn import StepFunctions
from tests.functional.conftest import echo, wait_for_end

MISSING_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:dagcast-no-such-machine"


@pytest.fixture
def adapter(stack):
    return StepFunctions(boto3.client("stepfunctions"))


def test_a_refused_start_is_start_failed(adapter):
    with pytest.raises(StartFailed, match="Step Functions did not start the execution"):
        adapter.start_execution(MISSING_MACHINE, "dag-exec_refused", "{}")


def test_a_token_that_is_gone_is_reported_not_raised(adapter):
    assert adapter.send_task_success("no-such-token", '{"released": true}') is False


def test_stopping_an_unknown_execution_is_stop_failed(adapter):
    arn = "arn:aws:states:us-east-1:123456789012:execution:dagcast-no-such-machine:nope"
    with pytest.raises(StopFailed, match="did not stop"):
        adapter.stop_execution(arn, error="Cancelled", cause="cancelled by request")


def test_a_refused_start_fails_the_stored_execution_and_raises(services, adapter):
    orchestrator = Orchestrator(services.store, adapter, MISSING_MACHINE)
    eid = new_execution_id()
    with pytest.raises(StartFailed):
        orchestrator.submit(parse_job({"tasks": [echo(1, "never")]}), eid)
    assert services.store.get_meta(eid)["status"] == "failed"
    events = wait_for_end(services, eid)
    assert (events[-1]["type"], events[-1]["reason"]) == ("execution.failed", "startFailed")
    assert events[-1]["error"].startswith("StartFailed: Step Functions did not start the execution")
