"""Generic helpers over one DynamoDB table through a low-level boto3 client.

Marshalling (``to_item`` / ``from_item``: plain Python values, ints rather than Decimals), the
error code of a ``ClientError``, and a ``Table`` base with the operations every repository needs:
conditional writes that report a failed condition (and what they found) instead of raising, a
consistent query of a partition, and batch writes and reads that retry what DynamoDB left unprocessed.

It knows no key layout (``keys.py``) and no item kind: the repositories built on it
(``executions.py``, ``eventlog.py``, the webhook store) decide what a failed condition means. It
never creates a client; it is handed one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ..domain.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

Item = dict[str, Any]
CONDITION_FAILED = "ConditionalCheckFailedException"

_ser = TypeSerializer()
_de = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None and v != set()}


def from_item(item: Mapping[str, Any]) -> Item:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ClientError ('' if it has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


class CallCounter:
    """A botocore ``before-call`` handler that counts the calls it sees."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1


class Table:
    """One DynamoDB table through a low-level client, with the retrying batch helpers."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def _update_if(self, **kwargs: Any) -> dict[str, Any] | None:
        """UpdateItem with a ConditionExpression; its response, or None when the condition fails."""
        try:
            return dict(self._db.update_item(TableName=self._table, **kwargs))
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return None
            raise

    def _write_or_found(self, operation: str, **kwargs: Any) -> tuple[dict[str, Any] | None, Item]:
        """A conditional ``put_item`` or ``update_item`` that answers, when its condition fails, the
        item it found (``ReturnValuesOnConditionCheckFailure``: no read after): (its response, {})
        when it applied, (None, the item found — {} when there was none) when it did not."""
        try:
            write = getattr(self._db, operation)
            return dict(
                write(TableName=self._table, ReturnValuesOnConditionCheckFailure="ALL_OLD", **kwargs)
            ), {}
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            return None, from_item(exc.response.get("Item") or {})  # type: ignore[arg-type]

    def _put_if(self, **kwargs: Any) -> bool:
        """PutItem with a ConditionExpression; False when the condition fails."""
        try:
            self._db.put_item(TableName=self._table, **kwargs)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def _delete_if(self, **kwargs: Any) -> bool:
        """DeleteItem with a ConditionExpression; False when the condition fails."""
        try:
            self._db.delete_item(TableName=self._table, **kwargs)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def _query_partition(
        self,
        partition: str,
        prefix: str = "",
        *,
        consistent: bool = True,
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Iterator[Item]:
        """Every item of ``partition`` whose sort key starts with ``prefix`` (all pages; only the
        ``projection`` attributes when given, ``names`` its ``#placeholders``)."""
        values = {":p": partition, ":s": prefix} if prefix else {":p": partition}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :s)" if prefix else "PK = :p",
            "ExpressionAttributeValues": to_item(values),
            "ConsistentRead": consistent,
        }
        if projection is not None:
            kwargs["ProjectionExpression"] = projection
        if names:
            kwargs["ExpressionAttributeNames"] = names
        while True:
            out = self._db.query(**kwargs)
            for item in out.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in out:
                return
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25 (DynamoDB's limit), retrying unprocessed items."""
        for start in range(0, len(requests), 25):
            pending: Any = {self._table: requests[start : start + 25]}
            for attempt in range(10):
                out = self._db.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StoreError("DynamoDB kept items unprocessed after 10 attempts")

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchGetItem (consistent) in chunks of 100, retrying unprocessed keys; raw items."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(10):
                out = self._db.batch_get_item(RequestItems=request)
                found += out.get("Responses", {}).get(self._table, [])
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StoreError(f"DynamoDB left {len(request[self._table]['Keys'])} keys unprocessed")
        return found
