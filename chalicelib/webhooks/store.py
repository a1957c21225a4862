"""The webhook items in the events table, and their keys: registrations, deliveries, lanes and the
retry function's due entries. Each method is one store operation.

Items (one table, see docs/architecture.md):
- ``WEBHOOKS`` / ``HOOK#<id>``: url, types, executionId, description, secret (the HMAC key,
  KMS-encrypted: a secret registered before ``whsec_`` is its UTF-8 bytes, so old items read as they are)
- ``HOOK#<id>`` / ``DLV#<executionId>#<seq>``: one delivery (body, status, attempts, last error)
- ``HOOK#<id>`` / ``LANE#<executionId>``: cursor (last seq settled), lease (holder, leaseUntil,
  ``asked``: another sender wants it after the holder), nextAttemptAt and failedSeq (backing off)
- ``WEBHOOKS#DUE`` / ``<id>#<executionId>``: a lane the retry function must look at, and when

It also reads an execution's event log (``EXEC#<id>`` / ``EVT#<seq>``, never writes it): a lane's
source is the log, not the stream records that trigger it (docs/architecture.md § Fan-out).

DynamoDB's error codes stop here: a lost lease race is an answer (``acquire`` → not taken), not an
exception. It does not decide when to send or retry (dispatcher.py) nor what a delivery holds
(models.py); it does not send anything.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ..domain import typefilter
from ..domain.model import now_ms
from ..persistence.logreads import event_items_after
from ..persistence.table import Item, Table, from_item, to_item
from ..tenants import DEFAULT_TENANT
from .models import Hook

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

LEASE_MS: Final = 60_000  # a lane's lease: a holder that dies is replaced after this long

# ------------------------------------------------------------------------------------------- keys

HOOKS_PK: Final = "WEBHOOKS"
DUE_PK: Final = "WEBHOOKS#DUE"
_SEQ_WIDTH = 12  # digits of a delivery's seq in its sort key, so the keys sort in seq order


def hook_pk(webhook_id: str) -> str:
    return f"HOOK#{webhook_id}"


def delivery_sk(execution_id: str, seq: int) -> str:
    return f"DLV#{execution_id}#{seq:0{_SEQ_WIDTH}d}"


def deliveries_prefix(execution_id: str | None) -> str:
    """The sort-key prefix of a hook's deliveries: all of them, or one execution's."""
    return f"DLV#{execution_id}#" if execution_id else "DLV#"


def lane_sk(execution_id: str) -> str:
    return f"LANE#{execution_id}"


def due_sk(webhook_id: str, execution_id: str) -> str:
    return f"{webhook_id}#{execution_id}"


def _lane_key(webhook_id: str, execution_id: str) -> dict[str, Any]:
    return to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)})


# ------------------------------------------------------------------------------------------ items


def hook_item(hook: Hook) -> Item:
    return {
        "PK": HOOKS_PK,
        "SK": hook_pk(hook.id),
        "webhookId": hook.id,
        "url": hook.url,
        "types": list(hook.types.patterns) if hook.types else None,
        "executionId": hook.execution_id,
        "description": hook.description,
        "secret": hook.sealed_secret,
        "createdAt": hook.created_at,
        **({"tenant": hook.tenant} if hook.tenant != DEFAULT_TENANT else {}),
    }


def hook_of(item: Mapping[str, Any]) -> Hook:
    types = item.get("types")
    return Hook(
        id=str(item["webhookId"]),
        url=str(item["url"]),
        types=typefilter.TypeFilter(tuple(types)) if types else None,
        execution_id=item.get("executionId"),
        sealed_secret=bytes(item["secret"]),
        created_at=int(item["createdAt"]),
        description=str(item.get("description", "")),
        tenant=str(item.get("tenant") or DEFAULT_TENANT),  # a hook stored before tenants: default's
    )


def keyed_delivery(delivery: Mapping[str, Any]) -> Item:
    """A delivery (models.delivery_item) with the keys of its item."""
    keys = {"PK": hook_pk(str(delivery["webhookId"]))}
    keys["SK"] = delivery_sk(str(delivery["executionId"]), int(delivery["seq"]))
    return {**keys, **delivery}


# ------------------------------------------------------------------------------------------ store


class WebhookStore(Table):
    def __init__(self, client: DynamoDBClient, table_name: str, retention_days: int = 14) -> None:
        super().__init__(client, table_name)
        self._retention_s = retention_days * 86_400

    def _expires(self) -> int:
        return int(time.time()) + self._retention_s

    # registrations
    def put_hook(self, hook: Hook) -> None:
        self._db.put_item(TableName=self._table, Item=to_item(hook_item(hook)))

    def hooks(self) -> list[Hook]:
        return [hook_of(i) for i in self._query_partition(HOOKS_PK, "HOOK#")]

    def get_hook(self, webhook_id: str) -> Hook | None:
        out = self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": HOOKS_PK, "SK": hook_pk(webhook_id)}),
            ConsistentRead=True,
        )
        return hook_of(from_item(out["Item"])) if "Item" in out else None

    def delete_hook(self, webhook_id: str) -> bool:
        out = self._db.delete_item(
            TableName=self._table,
            Key=to_item({"PK": HOOKS_PK, "SK": hook_pk(webhook_id)}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in out

    def forget_execution(self, execution_id: str) -> int:
        """Delete an execution's deliveries, lanes and due entries under every registered hook (a
        deleted hook's deliveries expire with their TTL); how many items went."""
        keys: list[dict[str, Any]] = []
        for hook in self.hooks():
            for item in self._query_partition(
                hook_pk(hook.id), deliveries_prefix(execution_id), projection="PK, SK"
            ):
                keys.append({"PK": item["PK"], "SK": item["SK"]})
            keys.append({"PK": hook_pk(hook.id), "SK": lane_sk(execution_id)})
            keys.append({"PK": DUE_PK, "SK": due_sk(hook.id, execution_id)})
        self._batch_write([{"DeleteRequest": {"Key": to_item(k)}} for k in keys])
        return len(keys)

    # deliveries
    def enqueue(self, deliveries: list[Item]) -> list[Item]:
        """Write new deliveries (models.delivery_item); ones already there (a redelivered stream
        batch, or written by the lane itself from the log) are kept as they are. Each new one is a
        conditional put: an unconditional write could reset a delivery the lane created and
        delivered meanwhile. Answers the deliveries as they are stored now."""
        keyed = [keyed_delivery(d) for d in deliveries]
        keys = [to_item({"PK": d["PK"], "SK": d["SK"]}) for d in keyed]
        stored = {(d["PK"], d["SK"]): d for d in map(from_item, self._batch_get(keys))}
        expires = self._expires()
        # the missing ones; one written by another sender between the read and the put stands
        missing = [{**d, "expiresAt": expires} for d in keyed if (d["PK"], d["SK"]) not in stored]
        stored.update(((d["PK"], d["SK"]), d) for d in self.create(missing))
        return list(stored.values())

    def as_stored(self, delivery: Mapping[str, Any]) -> Item:
        """A new delivery (models.delivery_item) as ``create`` would store it: keys and expiry."""
        return {**keyed_delivery(delivery), "expiresAt": self._expires()}

    def create(self, deliveries: list[Item]) -> list[Item]:
        """Write new deliveries (as ``as_stored`` makes them), one conditional put each, and answer
        them as stored now: the new item, or the one already there (a redelivered stream record, or
        one a lane wrote from the log), which the refused put hands back — no read before or after."""
        stored: list[Item] = []
        for item in deliveries:
            applied, found = self._write_or_found(
                "put_item", Item=to_item(item), ConditionExpression="attribute_not_exists(PK)"
            )
            if applied is None:  # there already: the item as stored is what the lane holds
                item = found
            if item:  # (an answer without the item: the lane reads it)
                stored.append(item)
        return stored

    def save(self, deliveries: list[Item]) -> None:
        """Write back deliveries read from the store (keys included); an attribute set to None is
        removed."""
        self._batch_write([{"PutRequest": {"Item": to_item(d)}} for d in deliveries])

    def log_after(self, execution_id: str, after_seq: int, limit: int) -> list[Item]:
        """The execution's event items (``seq``, ``type``, ``data``: the event as stored) with seq >
        ``after_seq``, in seq order, at most ``limit``; a consistent read, so every event written
        before the call is there (the log is gapless: seq n+1 is only ever put after seq n)."""
        return event_items_after(self._db, self._table, execution_id, after_seq, limit)

    def get_delivery(self, webhook_id: str, execution_id: str, seq: int) -> Item | None:
        out = self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": hook_pk(webhook_id), "SK": delivery_sk(execution_id, seq)}),
            ConsistentRead=True,
        )
        return from_item(out["Item"]) if "Item" in out else None

    def deliveries(
        self, webhook_id: str, execution_id: str | None, status: str | None, limit: int, start: str | None
    ) -> tuple[list[Item], str | None]:
        """Deliveries by execution then seq; ``start`` is the last SK of the previous page."""
        values: dict[str, Any] = {":p": hook_pk(webhook_id), ":s": deliveries_prefix(execution_id)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :s)",
            "ConsistentRead": True,
        }
        if status:
            kwargs["FilterExpression"] = "#st = :st"
            kwargs["ExpressionAttributeNames"] = {"#st": "status"}
            values[":st"] = status
        kwargs["ExpressionAttributeValues"] = to_item(values)
        if start:
            kwargs["ExclusiveStartKey"] = to_item({"PK": hook_pk(webhook_id), "SK": start})
        found: list[Item] = []
        while True:
            # A filtered page may match few items: read full pages then; unfiltered, just what is left.
            kwargs["Limit"] = 100 if status else limit - len(found)
            out = self._db.query(**kwargs)
            for raw in out.get("Items", []):
                if len(found) == limit:
                    return found, str(found[-1]["SK"])
                found.append(from_item(raw))
            if "LastEvaluatedKey" not in out:
                return found, None
            if len(found) == limit:
                return found, str(found[-1]["SK"])
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    # lanes
    def acquire(self, webhook_id: str, execution_id: str, owner: str, now: int) -> tuple[bool, Item]:
        """Take the lane's lease unless it is held or backing off; (taken, the lane as it is now)."""
        out, found = self._write_or_found(
            "update_item",
            Key=_lane_key(webhook_id, execution_id),
            UpdateExpression="SET holder = :o, leaseUntil = :l, expiresAt = :x",
            ConditionExpression=(
                "(attribute_not_exists(leaseUntil) OR leaseUntil < :now) AND "
                "(attribute_not_exists(nextAttemptAt) OR nextAttemptAt <= :now)"
            ),
            ExpressionAttributeValues=to_item(
                {":o": owner, ":l": now + LEASE_MS, ":now": now, ":x": self._expires()}
            ),
            ReturnValues="ALL_NEW",
        )
        return (True, from_item(out["Attributes"])) if out is not None else (False, found)

    def release(
        self, webhook_id: str, execution_id: str, owner: str, cursor: int, retry_at: int | None
    ) -> bool:
        """Give the lease back with the cursor reached (and, when backing off, when to try again and
        which delivery failed: ``failedSeq``, so a sender holding that delivery as it was before the
        attempt knows to read it again); a no-op for an owner whose lease was taken over. Whether
        another sender asked for the lane while it was held (``ask``): it wrote a delivery the
        holder may not have read."""
        values: dict[str, Any] = {":c": cursor, ":o": owner}
        if retry_at is None:
            update = "SET #c = :c REMOVE holder, leaseUntil, nextAttemptAt, asked"
        else:
            # a lane stops at its first failure: the delivery right after the cursor
            update = "SET #c = :c, nextAttemptAt = :n, failedSeq = :f REMOVE holder, leaseUntil, asked"
            values[":n"], values[":f"] = retry_at, cursor + 1
        out = self._update_if(
            Key=_lane_key(webhook_id, execution_id),
            UpdateExpression=update,
            ConditionExpression="holder = :o",
            ExpressionAttributeNames={"#c": "cursor"},
            ExpressionAttributeValues=to_item(values),
            ReturnValues="UPDATED_OLD",
        )
        return out is not None and "asked" in out.get("Attributes", {})

    def ask(self, webhook_id: str, execution_id: str, holder: str) -> bool:
        """Tell the lane's holder to go round once more before it lets the lane go; False when
        ``holder`` no longer holds it (it released: the asker may take the lane itself). Atomic
        with ``release``'s condition on the same holder, so an ask either lands before the
        release (which answers it) or fails."""
        return (
            self._update_if(
                Key=_lane_key(webhook_id, execution_id),
                UpdateExpression="SET asked = :t",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=to_item({":t": True, ":h": holder}),
            )
            is not None
        )

    def retry_now(self, webhook_id: str, execution_id: str) -> None:
        self._update_if(
            Key=_lane_key(webhook_id, execution_id),
            UpdateExpression="REMOVE nextAttemptAt",
            ConditionExpression="attribute_exists(PK)",
        )
        self.set_due(webhook_id, execution_id, now_ms())

    # the retry function's due entries
    def set_due(self, webhook_id: str, execution_id: str, at: int) -> None:
        """Tell the retry function to look at the lane at ``at``; the lane remembers it has an entry."""
        self._db.update_item(
            TableName=self._table,
            Key=_lane_key(webhook_id, execution_id),
            UpdateExpression="SET dueSet = :t, expiresAt = :x",
            ExpressionAttributeValues=to_item({":t": True, ":x": self._expires()}),
        )
        self._db.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "PK": DUE_PK,
                    "SK": due_sk(webhook_id, execution_id),
                    "webhookId": webhook_id,
                    "executionId": execution_id,
                    "dueAt": at,
                    "expiresAt": self._expires(),
                }
            ),
        )

    def clear_due(self, webhook_id: str, execution_id: str) -> None:
        self._db.delete_item(
            TableName=self._table, Key=to_item({"PK": DUE_PK, "SK": due_sk(webhook_id, execution_id)})
        )
        self._db.update_item(
            TableName=self._table,
            Key=_lane_key(webhook_id, execution_id),
            UpdateExpression="REMOVE dueSet",
        )

    def due_items(self) -> list[Item]:
        return list(self._query_partition(DUE_PK))

    def due(self, now: int) -> list[tuple[str, str]]:
        return [
            (str(i["webhookId"]), str(i["executionId"])) for i in self.due_items() if int(i["dueAt"]) <= now
        ]
