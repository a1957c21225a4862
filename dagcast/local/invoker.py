"""Run moto's Lambda functions in-process with dagcast's real handlers (no Docker).

moto has no public hook for this: every invoke path (boto3 ``invoke``, a Step Functions task,
an event source mapping) ends in ``moto.awslambda.models.LambdaFunction._invoke_lambda``, which
would start a Docker container. This module replaces that one private method — it is the only
place that touches moto internals, moto is pinned exactly in pyproject.toml, and
tests/functional/test_invoker_contract.py fails loudly if an upgrade changes the contract.

The replacement keeps moto's contract: it returns ``(payload_json, errored, logs)``; a handler
exception becomes ``{"errorMessage", "errorType"}`` with ``errored=True``, which Step Functions
reports as an error named after ``errorType`` — as AWS does.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moto.awslambda import models as lambda_models

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of the Lambda context object that handlers and powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = ""
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class InProcessInvoker:
    """Installs itself over moto's Docker invoker; ``handlers`` maps function name → handler."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        self._original: Any = None

    def install(self) -> None:
        if self._original is not None:
            return
        self._original = lambda_models.LambdaFunction._invoke_lambda
        invoker = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoker.invoke(fn.function_name, fn.function_arn, event)

        lambda_models.LambdaFunction._invoke_lambda = _invoke_lambda

    def uninstall(self) -> None:
        if self._original is not None:
            lambda_models.LambdaFunction._invoke_lambda = self._original
            self._original = None

    def invoke(self, name: str, arn: str, event: Any) -> tuple[str, bool, str]:
        handler = self._handlers.get(name)
        if handler is None:
            body = {"errorMessage": f"no in-process handler for function {name}", "errorType": "ResourceNotFound"}
            return json.dumps(body), True, ""
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        context = LocalContext(name, invoked_function_arn=arn, aws_request_id=str(uuid.uuid4()))
        try:
            result = handler(event or {}, context)
            return json.dumps(result), False, ""
        except Exception as exc:
            log.warning("local Lambda %s failed: %s: %s", name, type(exc).__name__, exc)
            body = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            return json.dumps(body), True, ""
