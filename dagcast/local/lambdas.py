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
