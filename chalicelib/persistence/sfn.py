"""The Step Functions adapter: the three calls orchestration makes (start an execution, send a
task token back, stop an execution), with ``ClientError`` turned into domain outcomes and errors.

It is handed its boto3 client and never creates one. It knows nothing of the state machine's
definition or of tasks: callers pass ARNs, names, tokens and JSON text. Only failures it can give
a meaning to are translated; any other error of ``send_task_success`` (throttling past the
client's own retries, access denied) propagates as it is, so the step fails and Step Functions
retries it.

Each stop it makes is counted (``ExecutionsStopped``, an EMF line): template.yaml's
ExecutionsAbortedAlarm subtracts them from Step Functions' ``ExecutionsAborted``, so a cancel does
not page and a stop from anywhere else does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from botocore.exceptions import ClientError

from ..domain.errors import StartFailed, StopFailed
from .table import error_code

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient
else:
    SFNClient = Any

log = logging.getLogger(__name__)

# The token was used already, its state timed out, or its execution ended: nothing waits on it.
_GONE_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
# The metric ExecutionsAbortedAlarm reads: namespace, name, its one dimension.
STOPPED_METRIC = ("dagcast", "ExecutionsStopped", {"service": "orchestration"})


def count_stop() -> None:
    """One EMF line: dagcast stopped an execution (its own, expected abort)."""
    if is_metrics_disabled():
        return
    namespace, name, dimensions = STOPPED_METRIC
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=namespace, default_dimensions=dimensions
    ):
        pass


class StepFunctions:
    def __init__(self, client: SFNClient) -> None:
        self._sfn = client

    def start_execution(self, state_machine_arn: str, name: str, input: str) -> str:
        """Start an execution named ``name``; its ARN. Any refusal (an execution of that name
        exists, the state machine is gone, the call failed) raises StartFailed."""
        try:
            out = self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=input)
        except ClientError as exc:
            raise StartFailed(f"Step Functions did not start the execution: {exc}") from exc
        return out["executionArn"]

    def send_task_success(self, token: str, output: str) -> bool:
        """Hand ``output`` to the state waiting on ``token``. False if the token is gone: the
        state it belonged to has moved on, so a repeated send is harmless."""
        try:
            self._sfn.send_task_success(taskToken=token, output=output)
        except ClientError as exc:
            code = error_code(exc)
            if code not in _GONE_TOKEN_ERRORS:
                raise
            log.info("task token gone (%s)", code)
            return False
        return True

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        """Stop an execution; StopFailed if Step Functions did not (it had already ended, is
        unknown, or the call failed)."""
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error, cause=cause)
        except ClientError as exc:
            raise StopFailed(f"Step Functions did not stop {execution_arn}: {exc}") from exc
        count_stop()
