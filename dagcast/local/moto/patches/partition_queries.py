"""Patches ``moto.dynamodb.models.table.Table.query`` and ``Table.all_items``: a table query reads
only its partition, and only the items of it that it returns.

moto's ``Query`` on a table (not an index) lists and sorts *every item of the table*
(``Table.all_items``) before keeping one partition: O(table) per call. dagcast queries one
execution's partition on every append and poll, so on a table holding a 1,000-task execution
(≈7,000 items) each query cost ~150 ms and every execution ran slower than the one before. Within
the partition moto then sorts every item by comparing ``DynamoType``s (each comparison converts
both values), although the event log's queries want one item (the tail: ``Limit=1``, backwards)
or a page: with ~1,500 items in a 200-task execution's partition that sort was most of each
append's time.

The patch hands such a query, already in order, only the items of its partition that match its
sort-key condition, after its ``ExclusiveStartKey``, and — when it has a ``Limit`` — only the
first ``Limit + 1`` of them in its direction (moto's loop takes ``Limit`` and reads one more to
know there is a next page: ``LastEvaluatedKey``). Items are ordered by the sort key's value as
moto compares them (``cast_value``). The answers are identical (pinned by
tests/functional/moto_patches/test_partition_queries.py).

Index queries and scans are not scoped: they read every partition, as they must. A query with a
legacy ``QueryFilter`` is scoped to its partition but not cut to its ``Limit``.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from moto.dynamodb.comparisons import get_comparison_func
from moto.dynamodb.models import table as ddb_table
from moto.dynamodb.models.dynamo_type import DynamoType


@dataclass
class _Scope:
    """What ``all_items`` needs of the query running on its thread."""

    key: Any
    comparison: tuple[str, list[Any]] | None
    limit: int | None
    start: Any  # the ExclusiveStartKey's sort-key value (a DynamoType), or None
    forward: bool


# The query running on this thread: ``all_items`` is called from inside ``query`` without it.
_scope = threading.local()


def _order(value: DynamoType) -> Any:
    """The sort key as moto orders it (``DynamoType.__lt__`` compares ``cast_value``s)."""
    return value.value if value.type == "S" else value.cast_value


def _scoped(table: Any, scope: _Scope) -> list[Any]:
    keyed = [
        (_order(i.range_key), i) for i in table.items.get(scope.key, {}).values() if i.range_key is not None
    ]
    keyed.sort(key=itemgetter(0))
    if scope.comparison is not None:
        op, objs = scope.comparison
        matches, bounds = get_comparison_func(op), [o.cast_value for o in objs]
        keyed = [(k, i) for k, i in keyed if matches(i.range_key.cast_value, *bounds)]
    if scope.start is not None:
        start = _order(scope.start)
        keyed = [(k, i) for k, i in keyed if (k > start if scope.forward else k < start)]
    if scope.limit:
        keyed = keyed[: scope.limit + 1] if scope.forward else keyed[-(scope.limit + 1) :]
    return [i for _, i in keyed]


def scope_queries_to_partition() -> None:
    table_cls = ddb_table.Table
    if getattr(table_cls, "_dagcast_scoped", False):
        return
    all_items = table_cls.all_items
    query = table_cls.query

    @functools.wraps(all_items)
    def scoped_all_items(self: Any) -> Any:
        scope = getattr(_scope, "query", None)
        if scope is not None and self.range_key_attr:
            return _scoped(self, scope)
        return all_items(self)

    @functools.wraps(query)
    def scoped_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        def arg(i: int, name: str, default: Any = None) -> Any:
            return args[i] if len(args) > i else kwargs.get(name, default)

        op, objs = arg(0, "range_comparison"), arg(1, "range_objs")
        start = arg(3, "exclusive_start_key") or {}
        filtered = any(k not in _QUERY_KWARGS for k in kwargs)  # a legacy QueryFilter's conditions
        if arg(6, "index_name") is None and hash_key is not None:
            _scope.query = _Scope(
                key=hash_key,
                comparison=(op, objs) if op else None,
                limit=None if filtered else arg(2, "limit"),
                start=DynamoType(start[self.range_key_attr]) if self.range_key_attr in start else None,
                forward=arg(4, "scan_index_forward", True) is not False,
            )
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _scope.query = None

    setattr(table_cls, "all_items", scoped_all_items)  # noqa: B010
    setattr(table_cls, "query", scoped_query)  # noqa: B010
    setattr(table_cls, "_dagcast_scoped", True)  # noqa: B010


# Table.query's named parameters; any other keyword is a legacy QueryFilter condition.
_QUERY_KWARGS = frozenset(
    {
        "range_comparison",
        "range_objs",
        "limit",
        "exclusive_start_key",
        "scan_index_forward",
        "projection_expressions",
        "index_name",
        "consistent_read",
        "filter_expression",
        "hash_key_conditions",
        "range_key_conditions",
    }
)
