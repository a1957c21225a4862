"""Patches ``moto.core.responses.ActionResult.execute_result`` (and ``DynamoResult``'s, its
DynamoDB subclass): DynamoDB's item answers and DynamoDB Streams' GetRecords are written as JSON
directly.

moto builds every answer by walking botocore's output shape member by member
(``moto.core.serialize``: an attribute picker per member, AttributeValue maps recursively) — about
a millisecond per item call, and most of the stream poller's time (every table write is a stream
record it reads, images included), for answers already in the wire's form (``dynamo_to_dict``:
AttributeValue maps of strings; the stream's records likewise). For those operations the patch
dumps the answer as JSON instead — bytes base64-encoded, datetimes as epoch seconds to the
millisecond, as the serializer writes them — keeping only the output shape's top-level members,
as the serializer does (moto adds a few of its own). Any other operation, or an answer holding
anything else, goes through moto's serializer as before. Errors do not pass here. The answers
boto3 parses are identical
(pinned by tests/functional/moto_patches/test_item_responses.py).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from moto.core import responses as core_responses
from moto.dynamodb import responses as ddb_responses

DIRECT_OPERATIONS = frozenset(
    {
        ("dynamodb", "GetItem"),
        ("dynamodb", "PutItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "DeleteItem"),
        ("dynamodb", "Query"),
        ("dynamodb", "Scan"),
        ("dynamodb", "BatchGetItem"),
        ("dynamodb", "BatchWriteItem"),
        ("dynamodb", "TransactGetItems"),
        ("dynamodb", "TransactWriteItems"),
        ("dynamodbstreams", "GetRecords"),
    }
)
_ORIGINAL = "_dagcast_original_execute_result"


def wire_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000) / 1000  # the serializer's precision: milliseconds
    raise TypeError(type(value).__name__)  # not JSON: moto's serializer writes it


def _direct(result: Any, context: Any) -> str | None:
    """The answer's JSON body, or None when moto's serializer must write it."""
    operation = context.operation_model
    if (context.service_model.service_name, operation.name) not in DIRECT_OPERATIONS:
        return None
    if not isinstance(result, dict) or operation.output_shape is None:
        return None
    members = operation.output_shape.members
    try:
        return json.dumps({k: v for k, v in result.items() if k in members}, default=wire_value)
    except TypeError:
        return None


def _patched(cls: Any) -> None:
    if _ORIGINAL in cls.__dict__:
        return
    original = cls.__dict__["execute_result"]

    def execute_result(self: Any, context: Any) -> Any:
        body = _direct(self.result, context)
        if body is None:
            return original(self, context)
        version = context.service_model.metadata.get("jsonVersion", "1.0")  # both are "json" protocol
        return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body

    setattr(cls, _ORIGINAL, original)
    setattr(cls, "execute_result", execute_result)  # noqa: B010


def direct_item_responses() -> None:
    # DynamoResult has no execute_result of its own today: patching ActionResult covers it; the
    # subclass is patched too in case a moto upgrade gives it one.
    _patched(core_responses.ActionResult)
    if "execute_result" in ddb_responses.DynamoResult.__dict__:
        _patched(ddb_responses.DynamoResult)
