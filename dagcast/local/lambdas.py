"""dagcast's Lambda functions as both local backends name and call them.

The moto stack (moto/stack.py) and the LocalStack backend (localstack/) create the same functions
under Chalice's names and invoke the webhook retry function on a schedule with the event
EventBridge Scheduler would send. This module holds only those names and that event: it creates
nothing and knows neither backend.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

REGION = "us-east-1"
APP = "dagcast"
STAGE = "local"

FANOUT = "fanout"
RETRY = "webhook_retry"  # the scheduled webhook retry function (every minute in AWS)
RECONCILE = "reconcile_execution"  # Step Functions ended an execution itself (an EventBridge rule in AWS)


def function_name(name: str) -> str:
    """Chalice's naming: <app>-<stage>-<function>."""
    return f"{APP}-{STAGE}-{name}"


def scheduled_event(region: str = REGION, account: str = "123456789012") -> dict[str, Any]:
    """What EventBridge Scheduler hands a Chalice @app.schedule function."""
    return {
        "version": "0",
        "id": secrets.token_hex(8),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": {},
    }


def status_change_event(
    execution: dict[str, Any], region: str = REGION, account: str = "123456789012"
) -> dict[str, Any]:
    """What EventBridge hands a Chalice @app.on_cw_event function for "Step Functions Execution
    Status Change", from a DescribeExecution answer (the detail carries the same fields)."""
    detail = {
        k: execution.get(k)
        for k in ("executionArn", "stateMachineArn", "name", "status", "error", "cause")
        if execution.get(k) is not None
    }
    return {
        "version": "0",
        "id": secrets.token_hex(8),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [detail.get("executionArn", "")],
        "detail": detail,
    }
