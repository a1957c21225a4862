"""The append lease: who drains an execution's event queue right now, and until when.

One ``QUEUE#<id> / LEASE`` item per execution: a holder id and an expiry. Taking it is a
conditional write (free, or expired); renewing and releasing are conditional on still being the
holder. The lease is what keeps two drainers from writing at once: a drainer writes only while its
lease lasts (eventlog.py stops a chunk ``_LEASE_MARGIN_S`` before it would run out), and whoever
takes over an *expired* lease is told so, because the previous holder may have died between
writing its events and writing their markers.

It does not drain anything itself (eventlog.py does) and knows nothing of events.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from ..domain.model import now_ms
from .keys import LEASE_SK, TTL_ATTRIBUTE, queue_pk
from .table import Table, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

log = logging.getLogger(__name__)

LEASE_MS = 10_000


class Taken(NamedTuple):
    holder: str
    took_over: bool  # the lease had a holder whose time ran out (not released): it may have died mid-chunk


class LeaseLost(Exception):
    """A drainer's write was refused because the lease is another holder's now: it writes nothing
    more (the new holder drains what is left)."""


class AppendLease(Table):
    def __init__(
        self, client: DynamoDBClient, table_name: str, expiry: Callable[[str], int | None] = lambda _: None
    ) -> None:
        super().__init__(client, table_name)
        self._expiry = expiry  # the execution's TTL (expiry.py): a dead holder's lease item goes too

    def acquire(self, execution_id: str) -> Taken | None:
        """The lease, if it is free or expired; None if someone holds it."""
        holder = uuid.uuid4().hex
        now = now_ms()
        values = {":h": holder, ":e": now + LEASE_MS, ":now": now}
        update = "SET holder = :h, expires = :e"
        expiry = self._expiry(execution_id)
        if expiry is not None:
            values[":ttl"] = expiry
            update += f", {TTL_ATTRIBUTE} = :ttl"
        answer, found = self._write_or_found(
            "update_item",
            Key=self.key(execution_id),
            UpdateExpression=update,
            ConditionExpression="attribute_not_exists(holder) OR expires < :now",
            ExpressionAttributeValues=to_item(values),
            ReturnValues="UPDATED_OLD",
        )
        if answer is None:
            # Held — by us, when the write applied and its answer was lost: botocore's retry of
            # the same call then finds our own holder id. It is ours (else the execution's events
            # would wait out the lease, 10 s); whether we took it over from a holder that died is
            # not known, so say so: the drainer then checks for a half-written chunk.
            return Taken(holder, True) if found.get("holder") == holder else None
        return Taken(holder, "holder" in answer.get("Attributes", {}))

    def renew(self, execution_id: str, holder: str) -> float | None:
        """Extend our lease; the time (time.time()) until which it is ours, or None if it is not."""
        until = time.time() + LEASE_MS / 1000
        renewed = self._update_if(
            Key=self.key(execution_id),
            UpdateExpression="SET expires = :e",
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=to_item({":h": holder, ":e": int(until * 1000)}),
        )
        return until if renewed is not None else None

    def release(self, execution_id: str, holder: str) -> None:
        """Give the lease back; a no-op when it ran out and someone else holds it now."""
        try:
            self._delete_if(
                Key=self.key(execution_id),
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=to_item({":h": holder}),
            )
        except ClientError as exc:
            # Releasing is an optimisation: it lets the next writer drain at once. Left alone, the
            # lease expires LEASE_MS after its last renewal and the next writer takes it over, so a
            # throttled or failed release must not fail an append whose events are written.
            log.warning("could not release the append lease of %s (%s); it will expire", execution_id, exc)

    def run_out(self, execution_id: str, holder: str) -> None:
        """Give the lease back as run out, not released: for a drain that failed midway, which may
        have written a chunk it has not marked. Whoever takes it next is told it took the lease
        over (``Taken.took_over``) and marks the newest events before writing any; a plain release
        would let it take the unmarked events for unwritten and write them again. If this call
        fails too, the lease runs out by itself (``LEASE_MS``) with the same effect."""
        try:
            self._update_if(
                Key=self.key(execution_id),
                UpdateExpression="SET expires = :e",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=to_item({":h": holder, ":e": 0}),
            )
        except ClientError as exc:
            log.warning("could not hand on the append lease of %s (%s); it will expire", execution_id, exc)

    def held_by(self, execution_id: str, holder: str) -> dict[str, Any]:
        """A ConditionCheck for a drainer's transactions: the lease is still ``holder``'s. A drain
        stops ``_LEASE_MARGIN_S`` before its lease runs out by its own clock, but botocore retries a
        throttled call with back-off and a request can be held up in the network: a write that
        arrives after another holder took the lease over (and marked the newest events) would land
        unmarked below that holder's tail, and its events be written again. With the check it is
        refused instead. The lease item is in the transaction, so the takeover and the write are
        ordered: whichever DynamoDB applies first, the other sees it."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": self.key(execution_id),
                "ConditionExpression": "holder = :h",
                "ExpressionAttributeValues": to_item({":h": holder}),
            }
        }

    @staticmethod
    def key(execution_id: str) -> dict[str, Any]:
        """The lease item's key (a waiter reads it alongside its marker, in one BatchGetItem)."""
        return to_item({"PK": queue_pk(execution_id), "SK": LEASE_SK})

    @staticmethod
    def is_free(lease: Mapping[str, Any] | None) -> bool:
        """Whether a lease item read from the table may be taken: no holder, or its time ran out
        (the condition ``acquire`` writes with)."""
        return lease is None or "holder" not in lease or int(lease["expires"]) < now_ms()
