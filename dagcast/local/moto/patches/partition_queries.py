"""Patches ``moto.dynamodb.models.table.Table.query`` and ``Table.all_items``: a table query reads
only its partition.

moto's ``Query`` on a table (not an index) lists and sorts *every item of the table*
(``Table.all_items``) before keeping one partition: O(table) per call. dagcast queries one
execution's partition on every append and poll, so on a table holding a 1,000-task execution
(≈7,000 items) each query cost ~150 ms and every execution ran slower than the one before. The
patch hands such a query only the items of its partition that match its sort-key condition (moto
would sort the whole partition, then filter); the answers are identical.

Index queries and scans are not scoped: they read every partition, as they must.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import table as ddb_table

# The partition (and sort-key condition) of the query running on this thread: ``all_items`` is
# called from inside ``query`` without them.
_partition = threading.local()


def scope_queries_to_partition() -> None:
    table_cls = ddb_table.Table
    if getattr(table_cls, "_dagcast_scoped", False):
        return
    all_items = table_cls.all_items
    query = table_cls.query

    @functools.wraps(all_items)
    def scoped_all_items(self: Any) -> Any:
        key = getattr(_partition, "key", None)
        if key is not None and self.range_key_attr:
            items = self.items.get(key, {}).values()
            comparison = getattr(_partition, "comparison", None)
            if comparison is not None:  # moto sorts what it gets: hand it only the matches
                op, objs = comparison
                return [i for i in items if i.range_key is not None and i.range_key.compare(op, objs)]
            return list(items)
        return all_items(self)

    @functools.wraps(query)
    def scoped_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        op = args[0] if args else kwargs.get("range_comparison")
        objs = args[1] if len(args) > 1 else kwargs.get("range_objs")
        if index_name is None and hash_key is not None:
            _partition.key = hash_key
            _partition.comparison = (op, objs) if op else None
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = None
            _partition.comparison = None

    setattr(table_cls, "all_items", scoped_all_items)  # noqa: B010
    setattr(table_cls, "query", scoped_query)  # noqa: B010
    setattr(table_cls, "_dagcast_scoped", True)  # noqa: B010
