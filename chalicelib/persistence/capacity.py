"""What the reads of one DynamoDB client cost, in read capacity units (RCU).

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

It counts; it never decides what to read, and it only ever reads the responses (it changes one
request parameter, ReturnConsumedCapacity, and nothing in any response).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

UNIT_BYTES = 4096
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
