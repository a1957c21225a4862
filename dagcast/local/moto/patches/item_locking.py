"""Patches ``moto.dynamodb.models.DynamoDBBackend``'s item operations: one at a time.

moto's DynamoDB backend has no locking: two concurrent conditional writes to one item can both
pass their condition (two tasks then run under ``maxConcurrency: 1``), and a read can see a dict
change under it. DynamoDB applies each item operation atomically; the patch runs moto's item
operations under one lock. It serialises more than DynamoDB does (all items, not one), which
costs throughput the local stack does not need.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb import models as ddb_models

_DYNAMODB_OPERATIONS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
)
_dynamodb_lock = threading.RLock()


def serialize_dynamodb() -> None:
    backend = ddb_models.DynamoDBBackend
    if getattr(backend, "_dagcast_serialized", False):
        return
    for name in _DYNAMODB_OPERATIONS:
        original = getattr(backend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(self, *args, **kwargs)

        setattr(backend, name, functools.wraps(original)(locked))
    setattr(backend, "_dagcast_serialized", True)  # noqa: B010
