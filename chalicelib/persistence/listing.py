"""The list of executions: the sharded list index (``keys.py`` says why it is shaped so) read
newest first, filtered (status, tags, creation time) and paged, then the executions it names, read
whole; and an execution's labels (its scope, tags and metadata) as the store writes them.

It reads only. What puts an execution on a list is its META's ``listPK`` / ``listSK`` and its tag
items, written with META (``executions.py``), or by ``dagcast migrate`` for items older than the index.

How a search reads: one list (every execution of the scope, or the first tag's), each of its
``LIST_SHARDS`` shards queried newest first within the time range and below the cursor, merged.
A status filter on the whole list is a FilterExpression on the index's projected ``status``;
on a tag's list (whose items carry no status) it, and every further tag, is checked on the
executions read whole — which the answer reads anyway. A page examines at most
``MAX_EXAMINED`` index items; a rare match can leave it short, even empty, with a ``next``
position to go on from (as DynamoDB's own Query with a filter does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ..domain.search import ListQuery
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
    tag_scope,
)
from .table import Item, Table, from_item, to_item

# Index items one page may examine (each shard's query counts what it evaluated): bounds what a
# filter that matches rarely costs one request.
MAX_EXAMINED: Final = 1_000
_OLDEST: Final = "0" * 15  # below every listSK (createdAt in 15 digits)


@dataclass(frozen=True)
class Labels:
    """What an execution is listed and shown with besides its job: the list scope (the tenant;
    ``default`` until tenants exist), its tags and its metadata's canonical JSON."""

    scope: str = DEFAULT_SCOPE
    tags: tuple[str, ...] = ()
    metadata_json: str | None = None

    def fields(self) -> Item:
        """The request item's attributes for them (none when there are none)."""
        out: Item = {"tags": list(self.tags)} if self.tags else {}
        if self.metadata_json is not None:
            out["metadataJson"] = self.metadata_json
        return out

    def metadata(self) -> dict[str, Any] | None:
        return None if self.metadata_json is None else dict(json.loads(self.metadata_json))


NO_LABELS: Final = Labels()
_REQUEST_FIELDS: Final = ("originalRequest", "tags", "metadataJson")


def with_request(meta: Item, request: Item | None) -> Item:
    """META as callers know it: with ``originalRequest``, ``tags`` and ``metadataJson`` from the
    request item (kept off META so that the per-task updates of META are not charged for them). A
    META written before the split still holds its request, and keeps it."""
    if request is None:
        return meta
    return {**meta, **{k: request[k] for k in _REQUEST_FIELDS if k in request}}


@dataclass
class _Shard:
    """One shard's query state within a search: where its next query starts, and whether it is done."""

    partition: str
    below: str  # the listSK last evaluated: what is still unread sorts below it
    start: dict[str, Any] | None = None  # the last query's LastEvaluatedKey (ExclusiveStartKey)
    done: bool = False


class ExecutionList(Table):
    """Pages of executions, newest first, from the list index."""

    def search(
        self, query: ListQuery, limit: int, before: str | None = None
    ) -> tuple[list[Item], str | None]:
        """The newest ``limit`` executions matching ``query`` created before the position
        ``before`` (a ``listSK``), whole; and the position to go on from (None at the end)."""
        source = tag_scope(query.tags[0], query.scope) if query.tags else query.scope
        top = f"{query.until + 1:015d}" if query.until is not None else "9" * 16  # above its listSKs
        low = f"{query.since:015d}" if query.since is not None else _OLDEST
        top = top if before is None else min(top, before)
        shards = [_Shard(list_pk(s, source), top) for s in range(LIST_SHARDS)]
        # A tag's list has no status to filter on: the status is checked on the executions read.
        status = None if query.tags else query.status
        found: list[Item] = []
        pending: list[Item] = []
        examined = 0
        while True:
            ready, boundary, evaluated = self._round(shards, pending, (low, top), limit, status)
            examined += evaluated
            taken, consumed = self._take(ready, query, limit - len(found))
            found += taken
            if len(found) >= limit:
                more = boundary is not None or bool(pending) or consumed != str(ready[-1][LIST_SK])
                return found, (consumed if more else None)
            if boundary is None:
                return found, None
            if examined >= MAX_EXAMINED:
                return found, boundary

    def _round(
        self, shards: list[_Shard], pending: list[Item], span: tuple[str, str], limit: int, status: str | None
    ) -> tuple[list[Item], str | None, int]:
        """One query of every shard not yet done, its entries added to ``pending``; the pending
        entries that are surely in order (newest first: no unread entry of any shard sorts above
        them) are taken out and returned, with the position below which entries are still unread
        (None when every shard is done) and how many index items the queries evaluated."""
        evaluated = 0
        low, top = span
        for shard in (s for s in shards if not s.done):
            out = self._db.query(IndexName=LIST_INDEX, **self._shard_query(shard, low, top, limit, status))
            evaluated += min(limit, int(out.get("ScannedCount", 0)))  # moto counts the partition
            # top is exclusive (the cursor, or above every listSK of the range): BETWEEN includes it
            pending += [e for e in map(from_item, out.get("Items", [])) if str(e[LIST_SK]) != top]
            shard.start = out.get("LastEvaluatedKey")
            shard.done = shard.start is None
            shard.below = shard.below if shard.start is None else str(from_item(shard.start)[LIST_SK])
        unread = [s.below for s in shards if not s.done]
        boundary = max(unread) if unread else None
        pending.sort(key=lambda e: str(e[LIST_SK]), reverse=True)
        # The boundary is a key some shard evaluated last: its own entry (if it matched) is in order.
        cut = len(pending) if boundary is None else sum(1 for e in pending if str(e[LIST_SK]) >= boundary)
        ready = pending[:cut]
        del pending[:cut]
        return ready, boundary, evaluated

    def _take(self, ready: list[Item], query: ListQuery, need: int) -> tuple[list[Item], str | None]:
        """Up to ``need`` executions of ``ready`` that match ``query``, read whole in order (no
        more than are needed), and the listSK of the last entry looked at."""
        taken: list[Item] = []
        key_of = {_execution_id(e): str(e[LIST_SK]) for e in ready}
        at = 0
        while at < len(ready) and len(taken) < need:
            chunk = ready[at : at + need - len(taken)]
            at += len(chunk)
            taken += [m for m in self.executions([_execution_id(e) for e in chunk]) if _matches(m, query)]
        if len(taken) == need and taken:
            return taken, key_of[str(taken[-1]["executionId"])]
        return taken, (str(ready[-1][LIST_SK]) if ready else None)

    def _shard_query(
        self, shard: _Shard, low: str, top: str, limit: int, status: str | None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":p": shard.partition, ":lo": low, ":hi": top}
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": f"{LIST_PK} = :p AND {LIST_SK} BETWEEN :lo AND :hi",
            "ProjectionExpression": LIST_SK,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if shard.start is not None:
            query["ExclusiveStartKey"] = shard.start
        if status is not None:  # the index projects status: a filter that reads index items only
            query["FilterExpression"] = "#s = :s"
            query["ExpressionAttributeNames"] = {"#s": "status"}
            values[":s"] = status
        query["ExpressionAttributeValues"] = to_item(values)
        return query

    def page(
        self, limit: int, before: str | None = None, scope: str = DEFAULT_SCOPE
    ) -> tuple[list[str], str | None]:
        """The ids of the newest ``limit`` executions created before the position ``before``, and
        the position of the next page (None when there is none)."""
        found, position = self.search(ListQuery(scope=scope), limit, before)
        return [str(m["executionId"]) for m in found], position

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


def _matches(execution: Item, query: ListQuery) -> bool:
    if query.status is not None and execution.get("status") != query.status:
        return False
    return set(query.tags) <= set(execution.get("tags") or ())


def _execution_id(entry: Item) -> str:
    return str(entry[LIST_SK]).split("#", 1)[1]
