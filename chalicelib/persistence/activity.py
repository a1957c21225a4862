"""A tenant's activity log: its executions' execution-level events in one order, the source the
many-run stream (``GET /api/v1/dag-executions/events``) reads and resumes from.

The fan-out (chalicelib/fanout.py) appends ``execution.created``, ``.updated``, ``.completed`` and
``.failed`` as it sees them; each item is ``ACTIVITY#<tenant>#<shard>`` / ``<writtenAt>#<id>#<seq>``
(keys.py), holding the event as it is stored (``data``), its type and the execution's tags.

- *No hot key.* An execution's items go to one of ``ACTIVITY_SHARDS`` partitions of its tenant
  (crc32 of its id, as the list index): a tenant's writes spread over 8 partitions of 1,000 WCU/s
  each, and one busy execution loads one of them, never every tenant's.
- *One order over the shards.* Every sort key begins with the time it was written (epoch ms), so
  merging the shards by sort key gives one total order; a position in it is one sort key.
- *The settle window.* A reader reads only what was written at least ``SETTLE_MS`` ago (consistent
  reads); a writer whose put finished more than ``LATE_MS`` after its ``writtenAt`` (a stalled
  Lambda, throttling retries) writes the item again at a later time, so nothing appears behind a
  position a reader has passed. The gap between the two is what clock skew between the fan-out's
  and the stream's hosts may take. The price: an event reaches the many-run stream about
  ``SETTLE_MS`` after it was fanned out, and a late write can be read twice (at-least-once; the
  stream drops a seq it has sent, clients keep the highest seq per execution).

Items expire with their execution (its ``expiresAt``). It does not decide which events go in or how
often (fanout.py), nor what a stream sends (stream/manyrun.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from ..domain.errors import StoreError
from ..domain.model import now_ms
from .expiry import is_gone
from .keys import (
    ACTIVITY_SHARDS,
    META_SK,
    META_TAGS,
    REQUEST_SK,
    TTL_ATTRIBUTE,
    activity_pk,
    activity_shard,
    activity_sk,
    pk,
)
from .table import Table, from_item, to_item

LATE_MS: Final = 1_000
SETTLE_MS: Final = 2_500
_PUT_TRIES = 5
_DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Owner:
    """What the log needs of an execution, read once from META: whose it is, its tags, its expiry."""

    tenant: str
    tags: tuple[str, ...] = ()
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """One entry: its position (sort key), the event's execution, seq, type, stored JSON and tags."""

    position: str
    execution_id: str
    seq: int
    type: str
    data: str
    tags: tuple[str, ...]


def end_of(ms: int) -> str:
    """The greatest position written at ``ms``: ``~`` sorts after every id character."""
    return f"{ms:015d}#~"


def _tags(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, Iterable):
        return tuple(sorted(str(t) for t in raw))
    return ()


# the attributes ``owner`` reads: "tags" is no reserved word, but the TTL attribute's name may be
_OWNER_NAMES: Final = {"#tags": META_TAGS, "#exp": TTL_ATTRIBUTE}


class ActivityLog(Table):
    def __init__(self, client: Any, table_name: str, clock: Callable[[], int] = now_ms) -> None:
        super().__init__(client, table_name)
        self._clock = clock

    def owner(self, execution_id: str) -> Owner | None:
        """The execution's tenant and expiry (META) and tags (its request item, where the job's
        labels are kept off META): one consistent Query of three attributes of the two items; None
        when it is gone."""
        found = {
            str(item["SK"]): item
            for item in self._query_partition(
                pk(execution_id), META_SK, projection="SK, tenant, #tags, #exp", names=_OWNER_NAMES
            )
        }
        meta = found.get(META_SK)
        if meta is None or is_gone(meta):
            return None
        expires = meta.get(TTL_ATTRIBUTE)
        tags = found.get(REQUEST_SK, {}).get(META_TAGS, meta.get(META_TAGS))
        return Owner(
            str(meta.get("tenant") or _DEFAULT_TENANT),
            _tags(tags),
            int(expires) if expires is not None else None,
        )

    def append(self, owner: Owner, event_type: str, execution_id: str, seq: int, data: str) -> str:
        """Put the entry, again at a later time while a put finishes late (see the module); its
        position."""
        for _ in range(_PUT_TRIES):
            written_at = self._clock()
            position = activity_sk(written_at, execution_id, seq)
            item: dict[str, Any] = {
                "PK": activity_pk(owner.tenant, activity_shard(execution_id)),
                "SK": position,
                "executionId": execution_id,
                "seq": seq,
                "type": event_type,
                "data": data,
            }
            if owner.tags:
                item[META_TAGS] = list(owner.tags)
            if owner.expires_at is not None:
                item[TTL_ATTRIBUTE] = owner.expires_at
            self._db.put_item(TableName=self._table, Item=to_item(item))
            if self._clock() - written_at <= LATE_MS:
                return position
        raise StoreError(f"activity of {execution_id}:{seq} kept finishing late; the stream retries it")

    def read(self, tenant: str, after: str, upto_ms: int, limit: int = 200) -> list[Activity]:
        """Entries after the position ``after`` up to ``upto_ms`` included, in log order, at most
        ``limit`` (the newest ``limit`` of every shard hold the first ``limit`` of all)."""
        upto = end_of(upto_ms)
        if after >= upto:
            return []
        found: list[Activity] = []
        for shard in range(ACTIVITY_SHARDS):
            found += self._shard(activity_pk(tenant, shard), after, upto, limit)
        found.sort(key=lambda a: a.position)
        return found[:limit]

    def _shard(self, partition: str, after: str, upto: str, limit: int) -> list[Activity]:
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :a AND :u",
            ExpressionAttributeValues=to_item({":p": partition, ":a": after, ":u": upto}),
            ConsistentRead=True,
            Limit=limit + 1,  # BETWEEN includes ``after`` itself
        )
        entries = []
        for raw in out.get("Items", []):
            item = from_item(raw)
            if str(item["SK"]) == after:
                continue
            entries.append(
                Activity(
                    str(item["SK"]),
                    str(item["executionId"]),
                    int(item["seq"]),
                    str(item["type"]),
                    str(item["data"]),
                    _tags(item.get(META_TAGS)),
                )
            )
        return entries[:limit]
