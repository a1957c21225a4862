"""Patches ``moto.dynamodb.models.dynamo_type.DynamoType.to_regular_json``: a map or list copied once.

moto builds every stream record's item images with it (``StreamRecord``, on every write, under the
DynamoDB lock). For a map or list it deep-copies the whole value, then converts each element of
the copy — and each element's conversion deep-copies its own value again: a value nested ``d``
deep is copied ``d`` times, and a py-spy profile of ``bench/dag_makespan`` put 6% of the stack's
interpreter time in those copies (dagcast's items are maps: a task's inputs, results, options).
The patched method converts each element once, into new containers, and copies only values that
are neither ``DynamoType`` nor immutable — the same answer, binary values still decoded from
base64 as moto's own does.
"""

from __future__ import annotations

import base64
import copy
import functools
from typing import Any

from moto.dynamodb.models import dynamo_type

_IMMUTABLE = (str, bytes, int, float, bool, type(None))


def _element(value: Any) -> Any:
    if isinstance(value, dynamo_type.DynamoType):
        return value.to_regular_json()
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


def copy_values_once() -> None:
    cls = dynamo_type.DynamoType
    if getattr(cls, "_dagcast_copied_once", False):
        return
    original = cls.to_regular_json

    @functools.wraps(original)
    def to_regular_json(self: Any) -> dict[str, Any]:
        value = self.value
        if isinstance(value, dict):
            value = {key: _element(nested) for key, nested in value.items()}
        elif isinstance(value, list):
            value = [_element(nested) for nested in value]
        if self.is_binary() and isinstance(value, str):
            value = base64.b64decode(value)
        return {self.type: value}

    setattr(cls, "to_regular_json", to_regular_json)  # noqa: B010
    setattr(cls, "_dagcast_copied_once", True)  # noqa: B010
    setattr(cls, "_dagcast_original_to_regular_json", original)  # noqa: B010
