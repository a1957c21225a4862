"""Patches ``moto.dynamodb.models.DynamoDBBackend.transact_write_items``: no copy of the table.

moto backs up every table a transaction names with ``copy.deepcopy`` before it writes, so that it
can restore the copy when a condition fails: O(table) per call (~0.3 s on a table holding a
1,000-task execution), and every event append is a transaction. The patch checks every condition
*before* writing anything (the items of one transaction are distinct, so no write can change
another's condition) and answers a failed check as moto does, ``TransactionCanceledException``
with one reason per item; then it writes. Only a write that raises halfway (a malformed update
expression: a bug, not a race) needs undoing, and the patch restores just the items written so far.

The answers are moto's; it still runs under the backend's lock (``item_locking.py``), which is what
makes the transaction atomic to other callers.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from moto.dynamodb import models as ddb_models
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models.dynamo_type import DynamoType

_OPS = ("ConditionCheck", "Put", "Delete", "Update")


def _target(backend: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    table = backend.get_table(op["TableName"])
    if op_type != "Put":
        return table, op["Key"]
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return table, key


def _check(backend: Any, items: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """Every item's condition against the current table; the targets, or the cancellation."""
    seen: set[tuple[str, str]] = set()
    targets: list[tuple[Any, dict[str, Any]]] = []
    errors: list[tuple[str | None, str | None, Any]] = []
    failed = False
    for item in items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in _OPS:
            raise ValueError("Unsupported transaction operation")
        table, key = _target(backend, op_type, op)
        unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        targets.append((table, key))
        current = backend.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if condition is not None and not get_filter_expression(condition, names, values).expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
            failed = True
        else:
            errors.append((None, None, None))
    if failed:
        raise TransactionCanceledException(errors)
    return targets


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(
            op["TableName"],
            op["Item"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    elif op_type == "Delete":
        backend.delete_item(
            op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values
        )
    elif op_type == "Update":
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore(table: Any, key: dict[str, Any], saved: Any) -> None:
    hk = DynamoType(key[table.hash_key_attr])
    if table.range_key_attr is None:
        if saved is None:
            table.items.pop(hk, None)
        else:
            table.items[hk] = saved
        return
    rk = DynamoType(key[table.range_key_attr])
    if saved is None:
        table.items.get(hk, {}).pop(rk, None)
    else:
        table.items[hk][rk] = saved


def check_before_writing() -> None:
    backend = ddb_models.DynamoDBBackend
    if getattr(backend, "_dagcast_transactions", False):
        return
    original = backend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        targets = _check(self, transact_items)
        written: list[tuple[Any, dict[str, Any], Any]] = []
        try:
            for item, (table, key) in zip(transact_items, targets, strict=True):
                op_type, op = next(iter(item.items()))
                if op_type == "ConditionCheck":
                    continue
                saved = copy.deepcopy(self.get_item(op["TableName"], key))
                written.append((table, key, saved))
                _write(self, op_type, op, key)
        except Exception:
            for table, key, saved in reversed(written):
                _restore(table, key, saved)
            raise

    setattr(backend, "transact_write_items", transact_write_items)  # noqa: B010
    setattr(backend, "_dagcast_transactions", True)  # noqa: B010
