"""Data changes between item layouts (``dagcast migrate``): each a step applied to every item of
the table by a scan whose position is saved in the table, so that a run can stop anywhere (killed,
throttled, out of time) and the next run goes on from there.

A step must be idempotent: it looks at the item and writes only what is missing, so a page redone
after a stop (the position is saved after each page) changes nothing twice, and a second run over
a migrated table writes nothing at all. A migration that has finished is recorded as done and is
not scanned again.

It changes items only; the table's schema is the template's (``keys.table_definition`` locally).
It runs where the operator runs ``dagcast``, never in a Lambda: no function role needs Scan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.persistence.keys import (
    LEGACY_INDEX_PK,
    LEGACY_INDEX_SK,
    LIST_PK,
    LIST_SK,
    META_SK,
    REQUEST_SK,
    list_keys,
)
from chalicelib.persistence.table import Item, Table, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

STATE_PREFIX: Final = "MIGRATION#"  # PK of a migration's saved position; SK STATE_SK
STATE_SK: Final = "STATE"


@dataclass(frozen=True)
class Migration:
    name: str
    about: str
    # The item's raw (wire) form → the writes it made (0: nothing to do); ``scan_sk``: the sort
    # key of the only items it looks at (the scan filters on it).
    step: Callable[[Table, Mapping[str, Any]], int]
    scan_sk: str


def _list_index_step(table: Table, raw: Mapping[str, Any]) -> int:
    """META → on the sharded list index, its request in its own item, off the retired GSI1. The
    request is copied before it is removed from META, so a stop in between loses nothing."""
    meta = from_item(raw)
    if "originalRequest" not in meta and LEGACY_INDEX_PK not in meta and LIST_PK in meta:
        return 0
    writes = 0
    if "originalRequest" in meta:
        request = {"PK": meta["PK"], "SK": REQUEST_SK, "originalRequest": meta["originalRequest"]}
        table._db.put_item(TableName=table._table, Item=to_item(request))
        writes += 1
    keys = list_keys(int(meta["createdAt"]), str(meta["executionId"]))
    table._update_if(
        Key=to_item({"PK": meta["PK"], "SK": META_SK}),
        UpdateExpression="SET #lp = :lp, #ls = :ls REMOVE originalRequest, #gp, #gs",
        ConditionExpression="attribute_exists(PK)",
        ExpressionAttributeNames={
            "#lp": LIST_PK,
            "#ls": LIST_SK,
            "#gp": LEGACY_INDEX_PK,
            "#gs": LEGACY_INDEX_SK,
        },
        ExpressionAttributeValues=to_item({":lp": keys[LIST_PK], ":ls": keys[LIST_SK]}),
    )
    return writes + 1


MIGRATIONS: Final = (
    Migration(
        "2025-list-index",
        "executions onto the sharded list index; originalRequest off META",
        _list_index_step,
        META_SK,
    ),
)


@dataclass
class Progress:
    name: str
    scanned: int = 0
    changed: int = 0
    done: bool = False
    already_done: bool = False


class Migrator(Table):
    """Runs ``MIGRATIONS`` in order, each from its saved position."""

    def __init__(self, client: DynamoDBClient, table_name: str, page_size: int = 200) -> None:
        super().__init__(client, table_name)
        self._page_size = page_size

    def run(self, report: Callable[[Progress], None] = lambda _: None) -> list[Progress]:
        return [self._run_one(m, report) for m in MIGRATIONS]

    def _state_key(self, migration: Migration) -> dict[str, Any]:
        return to_item({"PK": STATE_PREFIX + migration.name, "SK": STATE_SK})

    def _run_one(self, migration: Migration, report: Callable[[Progress], None]) -> Progress:
        out = self._db.get_item(TableName=self._table, Key=self._state_key(migration), ConsistentRead=True)
        state = out.get("Item", {})
        progress = Progress(
            migration.name,
            int(state.get("scanned", {"N": "0"})["N"]),
            int(state.get("changed", {"N": "0"})["N"]),
        )
        if state.get("done", {}).get("BOOL"):
            progress.done = progress.already_done = True
            report(progress)
            return progress
        position = state.get("position", {}).get("M")
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "Limit": self._page_size,
                "ConsistentRead": True,
                "FilterExpression": "SK = :sk",
                "ExpressionAttributeValues": to_item({":sk": migration.scan_sk}),
            }
            if position:
                kwargs["ExclusiveStartKey"] = position
            page = self._db.scan(**kwargs)
            for raw in page.get("Items", []):
                progress.changed += 1 if migration.step(self, raw) else 0
            progress.scanned += int(page.get("ScannedCount", 0))
            position = page.get("LastEvaluatedKey")
            progress.done = position is None
            self._save(migration, progress, position)
            report(progress)
            if progress.done:
                return progress

    def _save(self, migration: Migration, progress: Progress, position: Mapping[str, Any] | None) -> None:
        state: Item = {"scanned": progress.scanned, "changed": progress.changed, "done": progress.done}
        item = {**self._state_key(migration), **to_item(state)}
        if position is not None:
            item["position"] = {"M": dict(position)}
        self._db.put_item(TableName=self._table, Item=item)
