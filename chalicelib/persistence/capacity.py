"""What the reads of one DynamoDB client cost, in read capacity units (RCU); and the rules of what
a write costs in write capacity units (WCU), table and indexes, from the item's sizes.

Two figures for every read: the one *computed* from the items returned by DynamoDB's billing
rules (``item_size``, ``read_units``) — ``rcu``, the same rule in AWS and locally, so numbers
measured locally and in AWS compare — and the one DynamoDB *reports* (``ReturnConsumedCapacity:
TOTAL``, which the meter adds to each read it sees) — ``rcuReported``. In AWS the reported figure
is the bill, and the computed one should match it (a difference means the rules below are off).
moto reports a constant (1 per Query, 0.5 per GetItem, whatever the size or consistency), and the
in-process mock cannot be told from AWS by its endpoint, so the computed figure is the one counted.

The billing rules (AWS, "DynamoDB item sizes and formats" and "read and write operations"):

- an item's size is the sum of its attribute names and values: strings and binaries their
  (UTF-8) bytes; numbers 1 byte per two significant digits plus 1; booleans and nulls 1; a list or
  map 3 bytes plus its elements plus 1 byte per element; a set the sum of its elements;
- a Query is one read of the *total* size of the items it returns, rounded up to 4 KB; GetItem and
  BatchGetItem round *each* item up to 4 KB; every read is at least one unit, even of nothing;
- a strongly consistent unit is 1 RCU, an eventually consistent one 0.5.

The write rules (AWS, "read and write operations", "GSI considerations: provisioned throughput"):

- a put, update or delete costs the *larger* of the item's size before and after, in 1 KB units,
  at least one — a write whose condition fails too (on the item as it is), and nothing more;
- each global secondary index is written only when the item is in it (it has the index's key
  attributes) before or after and its projection changed: one write when it enters, leaves, or a
  projected attribute changes; two (a delete and a put) when an index key changes; none when only
  unprojected attributes change; each write in 1 KB units of the projected item;
- a transactional write costs twice the above on the table; a transaction's ConditionCheck is
  billed as a write of the item it checks.

It counts; it never decides what to read, and it only ever reads the responses (it changes one
request parameter, ReturnConsumedCapacity, and nothing in any response).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
_READS = ("Query", "GetItem", "BatchGetItem")


def _number_size(raw: str) -> int:
    digits = raw.lstrip("+-").lower().split("e")[0].replace(".", "")
    significant = digits.strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size in bytes of one attribute value in DynamoDB's wire form (``{"S": "…"}``)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size in bytes of an item in DynamoDB's wire form, as DynamoDB bills it."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def read_units(sizes: Iterable[int], consistent: bool, per_item: bool = False) -> float:
    """The RCU of one read returning items of ``sizes`` bytes: their total rounded up to 4 KB
    (a Query), or each rounded up (``per_item``: GetItem, BatchGetItem); at least one unit; half
    for an eventually consistent read."""
    sizes = list(sizes)
    if per_item:
        units = sum(max(1, math.ceil(s / UNIT_BYTES)) for s in sizes)
    else:
        units = math.ceil(sum(sizes) / UNIT_BYTES)
    units = max(1, units)
    return float(units) if consistent else units / 2


def _returned_items(operation: str, parsed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if operation == "Query":
        return list(parsed.get("Items", []))
    if operation == "GetItem":
        return [parsed["Item"]] if "Item" in parsed else []
    return [i for items in parsed.get("Responses", {}).values() for i in items]


def _reported(parsed: Mapping[str, Any]) -> float | None:
    consumed = parsed.get("ConsumedCapacity")
    if consumed is None:
        return None
    entries = consumed if isinstance(consumed, list) else [consumed]
    return float(sum(e.get("CapacityUnits", 0.0) for e in entries))


class ReadMeter:
    """The reads one boto3 DynamoDB client made (Query, GetItem, BatchGetItem) and their RCU.

    ``attach(client)`` hooks it into the client's event system; ``record`` is the accounting,
    callable without a client. Thread-safe: the stream's reads run on worker threads."""

    def __init__(self) -> None:
        self.reads = {"consistent": 0, "eventual": 0}
        self.computed = {"consistent": 0.0, "eventual": 0.0}
        self.reported = 0.0
        self.unreported = 0  # reads answered without ConsumedCapacity
        self.items = 0
        self._lock = threading.Lock()
        self._clients: set[int] = set()

    def record(
        self, operation: str, consistent: bool, items: list[Mapping[str, Any]], reported: float | None
    ) -> float:
        """Count one read; its computed RCU."""
        units = read_units(map(item_size, items), consistent, per_item=operation != "Query")
        kind = "consistent" if consistent else "eventual"
        with self._lock:
            self.reads[kind] += 1
            self.computed[kind] += units
            self.items += len(items)
            if reported is None:
                self.unreported += 1
            else:
                self.reported += reported
        return units

    @property
    def rcu(self) -> float:
        """The RCU computed from the items read (the module docstring says why not the reported)."""
        return self.computed["consistent"] + self.computed["eventual"]

    def attach(self, client: Any) -> None:
        """Meter ``client``'s reads from now on (once per client, however often it is called)."""
        with self._lock:
            if id(client) in self._clients:
                return
            self._clients.add(id(client))
        for operation in _READS:
            client.meta.events.register(f"provide-client-params.dynamodb.{operation}", self._ask)
            client.meta.events.register(f"after-call.dynamodb.{operation}", self._answered)

    @staticmethod
    def _ask(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
        if "RequestItems" in params:  # BatchGetItem: consistency is per table
            context["dagcast_consistent"] = all(
                bool(t.get("ConsistentRead")) for t in params["RequestItems"].values()
            )
        else:
            context["dagcast_consistent"] = bool(params.get("ConsistentRead"))

    def _answered(self, parsed: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            return  # a refused read (throttled): billed nothing; botocore retries it as a new call
        consistent = bool(context.get("dagcast_consistent"))
        self.record(model.name, consistent, _returned_items(model.name, parsed), _reported(parsed))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "reads": self.reads["consistent"] + self.reads["eventual"],
                "consistentReads": self.reads["consistent"],
                "eventualReads": self.reads["eventual"],
                "items": self.items,
                "rcu": round(self.rcu, 3),
                "rcuConsistent": round(self.computed["consistent"], 3),
                "rcuEventual": round(self.computed["eventual"], 3),
                "rcuReported": round(self.reported, 3),  # what DynamoDB said (moto: a constant)
                "unreportedReads": self.unreported,
            }


# ---------------------------------------------------------------------------------- writes

WireItem = Mapping[str, Mapping[str, Any]]


def write_units(size: int) -> int:
    """WCU of one write of an item of ``size`` bytes: 1 KB units, at least one."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def table_write_units(before: WireItem | None, after: WireItem | None, transactional: bool = False) -> int:
    """WCU of a put, update or delete on the table (``after`` None: a delete, or a failed
    condition — charged on the item as it is)."""
    units = write_units(max((item_size(i) for i in (before, after) if i is not None), default=0))
    return 2 * units if transactional else units


def index_entry(
    item: WireItem | None, index: Mapping[str, Any], table_keys: Iterable[str]
) -> WireItem | None:
    """What ``index`` (a DescribeTable GlobalSecondaryIndexes entry) holds of ``item``: None when
    the item lacks one of the index's key attributes (a sparse index skips it)."""
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    if item is None or any(k not in item for k in index_keys):
        return None
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return item
    kept = {*table_keys, *index_keys, *projection.get("NonKeyAttributes", ())}
    return {name: value for name, value in item.items() if name in kept}


def index_write_units(
    before: WireItem | None, after: WireItem | None, index: Mapping[str, Any], table_keys: Iterable[str]
) -> int:
    """WCU one write of the table costs ``index`` (the rules in the module docstring)."""
    keys = list(table_keys)
    old, new = index_entry(before, index, keys), index_entry(after, index, keys)
    if old == new:
        return 0  # not in the index, or nothing it holds changed
    if old is None or new is None:
        present = old if new is None else new
        return write_units(item_size(present)) if present is not None else 0
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    if any(old[k] != new[k] for k in index_keys):
        return write_units(item_size(old)) + write_units(item_size(new))
    return write_units(max(item_size(old), item_size(new)))


_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def _keys_of(
    operation: str, params: Mapping[str, Any], key_names: list[str]
) -> list[tuple[dict[str, Any], bool]]:
    """(the item's key, transactional) of every item a write call touches."""
    if operation in ("UpdateItem", "DeleteItem"):
        return [(dict(params["Key"]), False)]
    if operation == "PutItem":
        return [({k: params["Item"][k] for k in key_names}, False)]
    if operation == "BatchWriteItem":
        out = []
        for requests in params["RequestItems"].values():
            for r in requests:
                if "PutRequest" in r:
                    out.append(({k: r["PutRequest"]["Item"][k] for k in key_names}, False))
                else:
                    out.append((dict(r["DeleteRequest"]["Key"]), False))
        return out
    out = []
    for entry in params["TransactItems"]:
        (kind, body), *_ = entry.items()
        if kind == "Put":
            out.append(({k: body["Item"][k] for k in key_names}, True))
        elif kind in ("Update", "Delete", "ConditionCheck"):  # a check is billed as a write
            out.append((dict(body["Key"]), True))
    return out


class WriteMeter:
    """The WCU of the writes one boto3 client makes, by the rules above, from the item's images
    read just before and after each call by ``reader`` (another client, so that the meter's own
    reads are neither metered nor counted). A measuring tool (benchmarks, tests): it doubles the
    calls it watches. Under concurrent writers an image may include a neighbour's change."""

    def __init__(self, reader: Any, table: str) -> None:
        self._reader = reader
        self._table = table
        described = reader.describe_table(TableName=table)["Table"]
        self.key_names = [k["AttributeName"] for k in described["KeySchema"]]
        self.indexes = list(described.get("GlobalSecondaryIndexes", []))
        self.units: Counter[str] = Counter()  # "table", each index name, "META", "META writes"
        self.calls = 0
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        for operation in _WRITES:
            client.meta.events.register(f"provide-client-params.dynamodb.{operation}", self._before)
            client.meta.events.register(f"after-call.dynamodb.{operation}", self._after)

    def detach(self, client: Any) -> None:
        for operation in _WRITES:
            client.meta.events.unregister(f"provide-client-params.dynamodb.{operation}", self._before)
            client.meta.events.unregister(f"after-call.dynamodb.{operation}", self._after)

    def _image(self, key: Mapping[str, Any]) -> WireItem | None:
        out = self._reader.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item: WireItem | None = out.get("Item")
        return item

    def _before(self, params: Mapping[str, Any], context: dict[str, Any], model: Any, **_: Any) -> None:
        touched = _keys_of(model.name, params, self.key_names)
        context["dagcast_write_before"] = [(key, tx, self._image(key)) for key, tx in touched]

    def _after(self, model: Any, parsed: Mapping[str, Any], context: Mapping[str, Any], **_: Any) -> None:
        failed = "Error" in parsed  # a failed condition is charged on the item as it is
        used: Counter[str] = Counter()
        for key, tx, before in context.get("dagcast_write_before", []):
            after = before if failed else self._image(key)
            table = table_write_units(before, None if failed else after, tx)
            used["table"] += table
            if key["SK"].get("S") == "META":
                used["META"] += table
                used["META writes"] += 1
            if failed:
                continue
            for index in self.indexes:
                used[index["IndexName"]] += index_write_units(before, after, index, self.key_names)
        with self._lock:
            self.calls += 1
            self.units.update(used)
