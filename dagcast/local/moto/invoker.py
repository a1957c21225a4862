"""Run moto's Lambda functions in this process, with dagcast's real handlers.

moto runs a Lambda in a Docker container and has no public hook to do otherwise: every invoke
path (boto3 ``invoke``, a Step Functions task, an event source mapping) ends in
``moto.awslambda.models.LambdaFunction._invoke_lambda``. ``InProcessInvoker`` replaces that one
method (tests/functional/moto_patches/test_invoker.py pins it) and calls the handler registered
for the function's name — or, for a published version frozen with ``freeze``, the handler that
was current when it was published (what a Lambda version is: the code of its time).

It keeps moto's contract: it returns ``(payload_json, errored, logs)``; a handler exception
becomes ``{"errorMessage", "errorType"}`` with ``errored=True``, which Step Functions reports as
an error named after ``errorType``, as AWS does. It does not isolate handlers from each other or
from this process (no sandbox, no memory or time limit) and keeps no logs.
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
        self._frozen: dict[tuple[str, str], Handler] = {}  # (name, version) → its code
        self._original: Any = None

    @property
    def replaced(self) -> Any:
        """moto's own ``_invoke_lambda`` (None until installed)."""
        return self._original

    def set_handler(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def handler(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def freeze(self, name: str, version: str, handler: Handler) -> None:
        """Version ``version`` of ``name`` runs ``handler`` from now on, whatever ``set_handler``
        makes current (a deploy's new code): what a published version does in AWS. A version never
        frozen runs the current handler."""
        self._frozen[(name, version)] = handler

    def install(self) -> None:
        if self._original is not None:
            return
        self._original = lambda_models.LambdaFunction._invoke_lambda
        invoker = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoker.invoke(fn.function_name, fn.function_arn, event, str(fn.version))

        setattr(lambda_models.LambdaFunction, "_invoke_lambda", _invoke_lambda)  # noqa: B010

    def uninstall(self) -> None:
        if self._original is not None:
            setattr(lambda_models.LambdaFunction, "_invoke_lambda", self._original)  # noqa: B010
            self._original = None

    def invoke(self, name: str, arn: str, event: Any, version: str = "$LATEST") -> tuple[str, bool, str]:
        handler = self._frozen.get((name, version)) or self._handlers.get(name)
        if handler is None:
            missing = {
                "errorMessage": f"no in-process handler for function {name}",
                "errorType": "ResourceNotFound",
            }
            return json.dumps(missing), True, ""
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        context = LocalContext(
            name, invoked_function_arn=arn, aws_request_id=str(uuid.uuid4()), function_version=version
        )
        try:
            result = handler(event or {}, context)
            return json.dumps(result), False, ""
        except Exception as exc:
            log.warning("local Lambda %s failed: %s: %s", name, type(exc).__name__, exc)
            body: dict[str, Any] = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            return json.dumps(body), True, ""
