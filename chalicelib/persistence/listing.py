"""The list of executions: the sharded list index (``keys.py`` says why it is shaped so) read
newest first, then the executions it names, read whole.

It reads only. What puts an execution on the list is its META's ``listPK`` / ``listSK``, written
with META (``executions.py``) or by ``dagcast migrate`` for items older than the index.
"""

from __future__ import annotations

from typing import Any

from .expiry import is_gone
from .keys import (
    DEFAULT_SCOPE,
    LIST_INDEX,
    LIST_PK,
    LIST_SHARDS,
    LIST_SK,
    META_SK,
    REQUEST_SK,
    list_pk,
    pk,
)
from .table import Item, Table, from_item, to_item


def with_request(meta: Item, request: Item | None) -> Item:
    """META as callers know it: with ``originalRequest`` from its own item (kept off META so that
    the per-task updates of META are not charged for it). A META written before the split still
    holds it, and keeps it."""
    if request is not None and "originalRequest" in request:
        return {**meta, "originalRequest": request["originalRequest"]}
    return meta


class ExecutionList(Table):
    """Pages of executions, newest first, from the list index."""

    def page(
        self, limit: int, before: str | None = None, scope: str = DEFAULT_SCOPE
    ) -> tuple[list[str], str | None]:
        """The ids of the newest ``limit`` executions created before the cursor ``before`` (a
        ``listSK``), and the cursor of the next page (None when there is none)."""
        entries: list[Item] = []
        more = False
        for shard in range(LIST_SHARDS):
            found, truncated = self._shard(list_pk(shard, scope), limit, before)
            entries += found
            more = more or truncated
        entries.sort(key=lambda e: str(e[LIST_SK]), reverse=True)
        page = entries[:limit]
        more = more or len(entries) > limit
        cursor = str(page[-1][LIST_SK]) if page and more else None
        return [str(e[LIST_SK]).split("#", 1)[1] for e in page], cursor

    def _shard(self, partition: str, limit: int, before: str | None) -> tuple[list[Item], bool]:
        condition = f"{LIST_PK} = :p"
        values: dict[str, Any] = {":p": partition}
        if before is not None:
            condition += f" AND {LIST_SK} < :b"
            values[":b"] = before
        out = self._db.query(
            TableName=self._table,
            IndexName=LIST_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            ProjectionExpression=f"{LIST_SK}",
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_item(i) for i in out.get("Items", [])], "LastEvaluatedKey" in out

    def executions(self, ids: list[str]) -> list[Item]:
        """The executions ``ids`` whole (META with its request), in that order; one BatchGetItem
        per 50 executions. An execution deleted meanwhile, or past its expiry, is left out."""
        keys = [to_item({"PK": pk(i), "SK": sk}) for i in ids for sk in (META_SK, REQUEST_SK)]
        found = {(str(i["PK"]), str(i["SK"])): i for i in map(from_item, self._batch_get(keys))}
        out = []
        for execution_id in ids:
            meta = found.get((pk(execution_id), META_SK))
            if meta is not None and not is_gone(meta):  # past its expiry: gone (expiry.py)
                out.append(with_request(meta, found.get((pk(execution_id), REQUEST_SK))))
        return out
