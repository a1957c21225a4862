"""Where each item lives in the one table: its key layout, and the table's schema.

Key layout (``PK`` / ``SK``, all strings)::

    EXEC#<id>  META             the execution: status, totals, counters as number sets
    EXEC#<id>  TASK#<taskId>    one task: status, dependencies, callback token, result or error
    EXEC#<id>  RESULT#<t>#<run>#<n>  one chunk of a large task result (``run``: the task's
                                resultRun, so that two runs of one attempt never mix chunks)
    EXEC#<id>  EVT#<seq>        one event, stored exactly as clients receive it (``data``)
    EXEC#<id>  EVT~Q#<ticket>   an event waiting in the append queue (under contention only)
    EXEC#<id>  KEY#<eventKey>   idempotency marker: the seq that event key was given
    QUEUE#<id> TICKET | LEASE   the append queue's counter, and who drains it right now
    STREAMS#EXEC#<id>    SLOT#<n>  one open stream of that execution: holder, leaseUntil, expiresAt
    STREAMS#CLIENT#<ip>  SLOT#<n>  one open stream from that client (persistence/streamleases.py)
    STREAMS#TENANT#<t>   SLOT#<n>  one open stream of that tenant (its maxStreams)
    TENANT#<t>  SUBMITS#<s> | EXECUTIONS | TASKS   a tenant's quota counts (persistence/quotas.py)
    APIKEY#<digest>  APIKEY     a registered API key: its tenant (persistence/apikeys.py)
    ACTIVITY#<tenant>#<shard>  <writtenAt>#<id>#<seq>  one execution-level event in the tenant's
                                activity log (persistence/activity.py; the many-run stream's source)

    EXEC#<id>  META#REQUEST     the job's originalRequest (up to 100,000 characters), tags and
                                metadata, kept off META
    EXEC#<id>  LIST#TAG#<tag>   the execution on the list of one of its tags (the list index only)
    IDEM#<scope>#<key>  IDEM    an Idempotency-Key's claim: the body's hash, its execution, expiresAt

The list index (``ListIndex``, one GSI designed for every list to come). META carries
``listPK`` = ``EXECS#<scope>#<shard>`` and ``listSK`` = ``<createdAt, 15 digits>#<id>``:

- *no hot key:* ``shard`` is ``crc32(id) % LIST_SHARDS``, so an account's executions spread over
  ``LIST_SHARDS`` index partitions (each takes 1,000 WCU/s); a list queries every shard newest first
  and merges them (the newest ``n`` overall are among the newest ``n`` of each shard);
- *scope:* the execution's tenant (``default`` for one stored before tenants, or submitted with a
  plain key), so a tenant's list is its own ``LIST_SHARDS`` partitions and never shows another's.
  A list by tag is one small item per tag (``EXEC#<id> LIST#TAG#<tag>``, written with the
  execution, never updated) with the scope ``<tenant>#TAG#<tag>`` in the same index; it carries no
  ``status`` (that changes when the execution ends: a filter on it reads META, persistence/listing.py);
- *by time range, paginated:* ``listSK`` sorts by creation time: a cursor is the last ``listSK``
  returned (``listSK < :cursor``), a range is ``BETWEEN``;
- *by status:* ``status`` is projected, so a filter on it reads index items only;
- *cheap to write:* the index projects only ``LIST_PROJECTION`` (what never changes per task).
  DynamoDB writes an index only when a key or projected attribute changes, so the per-task
  updates of META's counter sets cost the index nothing; only creation and the final status do.

``GSI1`` (``GSI1PK`` = ``EXECUTIONS``, projection ALL) is the retired index: nothing writes its keys
any more and ``dagcast migrate`` removes them from old items. It stays declared one release, because
CloudFormation cannot add one index and delete another in the same update.

Pure functions and constants only: no client, no I/O, no marshalling (``table.py``). The webhook
items share the table under their own keys, which ``chalicelib.webhooks`` defines.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Final

EXECUTION_PREFIX: Final = "EXEC#"
META_SK: Final = "META"
TASK_PREFIX: Final = "TASK#"
RESULT_PREFIX: Final = "RESULT#"
EVENT_PREFIX: Final = "EVT#"
# A queued event: sorts after every EVT# item (``~`` > ``#``) and matches no EVT# prefix, so that
# one query finds the tail and the queue together, and no stream consumer takes it for an event.
QUEUED_PREFIX: Final = "EVT~Q#"
MARKER_PREFIX: Final = "KEY#"
QUEUE_PREFIX: Final = "QUEUE#"
TICKET_SK: Final = "TICKET"
LEASE_SK: Final = "LEASE"
# Stream slots live in partitions of their own, never in the execution's: admitting a viewer
# reads and writes no item of the partition the orchestrator and the streams poll.
STREAMS_PREFIX: Final = "STREAMS#"
SLOT_PREFIX: Final = "SLOT#"
# DynamoDB's TTL attribute of the table (template.yaml's TimeToLiveSpecification): epoch seconds.
TTL_ATTRIBUTE: Final = "expiresAt"

REQUEST_SK: Final = "META#REQUEST"  # begins with META: one Query reads META and the request

LIST_INDEX: Final = "ListIndex"
LIST_PK: Final = "listPK"
LIST_SK: Final = "listSK"
LIST_SHARDS: Final = 8  # changing it re-keys every execution: a `dagcast migrate` step
DEFAULT_SCOPE: Final = "default"
TAG_LIST_PREFIX: Final = "LIST#TAG#"
IDEMPOTENCY_PREFIX: Final = "IDEM#"
IDEMPOTENCY_SK: Final = "IDEM"
# What lists show without reading META; never a counter set or anything a task changes.
LIST_PROJECTION: Final = ("executionId", "status", "createdAt", "finishedAt", "totalTasks")
# The retired index (see the module docstring): read by nothing, its keys removed by migrate.
LEGACY_INDEX: Final = "GSI1"
LEGACY_INDEX_PK: Final = "GSI1PK"
LEGACY_INDEX_SK: Final = "GSI1SK"

# The tenant's activity log (persistence/activity.py): ACTIVITY_SHARDS partitions per tenant, an
# execution always in the same one (crc32, as the list index), so no key takes a tenant's load.
ACTIVITY_PREFIX: Final = "ACTIVITY#"
ACTIVITY_SHARDS: Final = 8
# META's attribute holding a job's tags: the one place that names it for the activity log and the
# many-run stream's filter.
META_TAGS: Final = "tags"

_SEQ_WIDTH = 12
_TASK_WIDTH = 16
_SLOT_WIDTH = 6
# The greatest sort keys an event and a queued event can have: upper bounds of BETWEEN queries.
LAST_EVENT_SK: Final = EVENT_PREFIX + "9" * _SEQ_WIDTH
LAST_QUEUED_SK: Final = QUEUED_PREFIX + "9" * _SEQ_WIDTH


def pk(execution_id: str) -> str:
    return f"{EXECUTION_PREFIX}{execution_id}"


def task_sk(task_id: int) -> str:
    return f"{TASK_PREFIX}{task_id:0{_TASK_WIDTH}d}"


def result_sk(task_id: int, chunk: int, run: str = "") -> str:
    """``run`` empty: chunks of a task item that has ``resultChunks`` but no ``resultRun``; tables
    may hold such items, and they are read the same way."""
    prefix = f"{RESULT_PREFIX}{task_id:0{_TASK_WIDTH}d}#"
    return f"{prefix}{run}#{chunk:04d}" if run else f"{prefix}{chunk:04d}"


def event_sk(seq: int) -> str:
    return f"{EVENT_PREFIX}{seq:0{_SEQ_WIDTH}d}"


def queued_sk(ticket: int) -> str:
    return f"{QUEUED_PREFIX}{ticket:0{_SEQ_WIDTH}d}"


def marker_sk(event_key: str) -> str:
    return f"{MARKER_PREFIX}{event_key}"


def queue_pk(execution_id: str) -> str:
    return f"{QUEUE_PREFIX}{execution_id}"


def execution_streams_pk(execution_id: str) -> str:
    return f"{STREAMS_PREFIX}EXEC#{execution_id}"


def client_streams_pk(client: str) -> str:
    return f"{STREAMS_PREFIX}CLIENT#{client}"


def tenant_streams_pk(tenant: str) -> str:
    return f"{STREAMS_PREFIX}TENANT#{tenant}"


def slot_sk(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot:0{_SLOT_WIDTH}d}"


def slot_number(sk_value: str) -> int | None:
    """The inverse of ``slot_sk`` (None for any other sort key)."""
    raw = sk_value.removeprefix(SLOT_PREFIX)
    return int(raw) if sk_value.startswith(SLOT_PREFIX) and raw.isascii() and raw.isdigit() else None


def list_shard(execution_id: str) -> int:
    """The execution's shard of the list index: stable across processes (unlike ``hash``)."""
    return zlib.crc32(execution_id.encode()) % LIST_SHARDS


def list_pk(shard: int, scope: str = DEFAULT_SCOPE) -> str:
    return f"EXECS#{scope}#{shard:02d}"


def list_sk(created_at: int, execution_id: str) -> str:
    return f"{created_at:015d}#{execution_id}"


def list_keys(created_at: int, execution_id: str, scope: str = DEFAULT_SCOPE) -> dict[str, str]:
    """The list index's key attributes of an execution's META."""
    return {
        LIST_PK: list_pk(list_shard(execution_id), scope),
        LIST_SK: list_sk(created_at, execution_id),
    }


def tag_scope(tag: str, scope: str = DEFAULT_SCOPE) -> str:
    """The list scope of one tag's list (a tag has no "#": chalicelib/domain/dag.py)."""
    return f"{scope}#TAG#{tag}"


def tag_list_item(tag: str, created_at: int, execution_id: str, scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
    """The item that puts an execution on ``tag``'s list, with what the list index projects."""
    return {
        "PK": pk(execution_id),
        "SK": f"{TAG_LIST_PREFIX}{tag}",
        "executionId": execution_id,
        "createdAt": created_at,
        **list_keys(created_at, execution_id, tag_scope(tag, scope)),
    }


def idempotency_pk(key: str, scope: str = DEFAULT_SCOPE) -> str:
    """An Idempotency-Key's own partition: keys are per scope (the tenant), never shared."""
    return f"{IDEMPOTENCY_PREFIX}{scope}#{key}"


def activity_pk(tenant: str, shard: int) -> str:
    return f"{ACTIVITY_PREFIX}{tenant}#{shard:02d}"


def activity_sk(written_at: int, execution_id: str, seq: int) -> str:
    """Sorts by the time it was written, then execution and seq: one order over every shard."""
    return f"{written_at:015d}#{execution_id}#{seq:0{_SEQ_WIDTH}d}"


def activity_shard(execution_id: str) -> int:
    return zlib.crc32(execution_id.encode()) % ACTIVITY_SHARDS


def is_event_sk(sort_key: object) -> bool:
    """Whether a sort key is an event item's (``EVT#…``); a queued event's (``EVT~Q#…``) is not."""
    return isinstance(sort_key, str) and sort_key.startswith(EVENT_PREFIX)


def event_position(pk_value: str, sk_value: str) -> tuple[str, int | None]:
    """(execution id, seq) from an item's keys, the inverse of ``pk`` and ``event_sk``; seq is None
    unless the sort key is ``EVT#`` and ASCII digits (str.isdigit() also takes '²', int() does not)."""
    raw = sk_value.removeprefix(EVENT_PREFIX)
    seq = int(raw) if is_event_sk(sk_value) and raw.isascii() and raw.isdigit() else None
    return pk_value.removeprefix(EXECUTION_PREFIX), seq


def record_position(record: Mapping[str, Any]) -> tuple[str, int | None]:
    """``event_position`` of a DynamoDB stream record's item, its keys typed as the stream hands
    them (``{"PK": {"S": ...}}``)."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    return event_position(str((keys.get("PK") or {}).get("S", "")), str((keys.get("SK") or {}).get("S", "")))


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; template.yaml declares the same table for AWS (a test compares them)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": LIST_PK, "AttributeType": "S"},
            {"AttributeName": LIST_SK, "AttributeType": "S"},
            {"AttributeName": LEGACY_INDEX_PK, "AttributeType": "S"},
            {"AttributeName": LEGACY_INDEX_SK, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": LIST_PK, "KeyType": "HASH"},
                    {"AttributeName": LIST_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(LIST_PROJECTION)},
            },
            {
                "IndexName": LEGACY_INDEX,
                "KeySchema": [
                    {"AttributeName": LEGACY_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": LEGACY_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    }
