"""Stream slots: at most ``cap`` open streams per scope (an execution, a client), counted in the
table so that every process sees the same count — in Lambda each stream is its own process.

A scope is a partition (``keys.execution_streams_pk`` / ``keys.client_streams_pk``) of numbered
slot items ``SLOT#0 … SLOT#<cap-1>``. A stream holds one slot per scope, as a lease::

    holder      who holds it (a random id per stream)
    leaseUntil  epoch ms; the holder renews it while its stream runs
    expiresAt   epoch s, the table's TTL attribute: DynamoDB deletes slots nobody released

Why the cap cannot be overshot, even by admissions racing in many processes: a slot is taken with
one conditional PutItem (``attribute_not_exists(PK) OR leaseUntil < :now``), and DynamoDB applies
the conditional writes to one item one at a time, so each slot has at most one unexpired holder;
slots are numbered below the cap, so at most ``cap`` unexpired leases exist in a scope at any
moment. The query that picks a free slot is only a hint (eventually consistent: a stale answer
costs a failed condition and another try). TTL deletion is not relied upon — it runs late (up to
days) and an expired slot is taken over by the condition anyway; DynamoDB does not delete an item
whose TTL attribute was moved into the future before its deletion ran.

Holders' clocks are compared with each other's (``leaseUntil`` is written by the holder, read by a
claimant): clock skew between environments shifts when a slot counts as expired by that skew.

It knows no HTTP and no stream: ``chalicelib/stream/limits.py`` decides what a refusal means and
renews the leases of the streams it admitted.
"""

from __future__ import annotations

import math
import random

from .keys import SLOT_PREFIX, TTL_ATTRIBUTE, slot_number, slot_sk
from .table import Table, to_item

# Tries to take a slot while racing other admissions for the free ones; after that the stream is
# refused (429, Retry-After) like a full scope: a burst that fills the scope is about to be full.
TAKE_ATTEMPTS = 4
# TTL deletion is only housekeeping: an expired slot is kept this long for whoever reads the table.
_TTL_GRACE_S = 3600


class StreamSlots(Table):
    """The slot items of every scope, through one low-level DynamoDB client."""

    @classmethod
    def beside(cls, table: Table) -> StreamSlots:
        """Slots in ``table``'s table, through its client (the SSE function's one store)."""
        return cls(table._db, table._table)

    def live_slots(self, scope: str, now: int) -> set[int]:
        """Numbers of the slots in ``scope`` with an unexpired lease (eventually consistent)."""
        slots = self._query_partition(scope, SLOT_PREFIX, consistent=False, projection="SK, leaseUntil")
        return {
            n
            for slot in slots
            if int(slot.get("leaseUntil", 0)) >= now and (n := slot_number(str(slot["SK"]))) is not None
        }

    def take(self, scope: str, cap: int, holder: str, until: int, now: int) -> int | None:
        """A slot of ``scope`` leased to ``holder`` until ``until`` (epoch ms), or None when
        ``cap`` slots are held (or the race for the free ones was lost ``TAKE_ATTEMPTS`` times)."""
        for _ in range(TAKE_ATTEMPTS):
            live = self.live_slots(scope, now)
            if len(live) >= cap:
                return None
            slot = _free_slot(live, cap)
            if self._claim(scope, slot, holder, until, now):
                return slot
        return None

    def _claim(self, scope: str, slot: int, holder: str, until: int, now: int) -> bool:
        item = {"PK": scope, "SK": slot_sk(slot), "holder": holder, "leaseUntil": until}
        item[TTL_ATTRIBUTE] = _ttl(until)
        return self._put_if(
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(PK) OR leaseUntil < :now",
            ExpressionAttributeValues=to_item({":now": now}),
        )

    def renew(self, scope: str, slot: int, holder: str, until: int) -> bool:
        """Move the lease on to ``until``; False when the slot has another holder (ours expired
        and was taken: the stream no longer counts, and must end)."""
        out = self._update_if(
            Key=to_item({"PK": scope, "SK": slot_sk(slot)}),
            UpdateExpression="SET leaseUntil = :u, #ttl = :e",
            ConditionExpression="holder = :h",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues=to_item({":u": until, ":e": _ttl(until), ":h": holder}),
        )
        return out is not None

    def release(self, scope: str, slot: int, holder: str) -> None:
        """Free the slot; a no-op when somebody else holds it now."""
        self._delete_if(
            Key=to_item({"PK": scope, "SK": slot_sk(slot)}),
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=to_item({":h": holder}),
        )


def _free_slot(live: set[int], cap: int) -> int:
    """A random slot number below ``cap`` not in ``live``: concurrent admissions spread over the
    free slots instead of all racing for the lowest one."""
    if len(live) * 2 < cap:  # mostly free: a few random draws find one
        while (slot := random.randrange(cap)) in live:
            pass
        return slot
    return random.choice([n for n in range(cap) if n not in live])


def _ttl(until_ms: int) -> int:
    return math.ceil(until_ms / 1000) + _TTL_GRACE_S
