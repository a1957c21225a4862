"""Idempotency-Key claims: which execution a key stands for, within one scope, for 24 hours.

One item per key (``IDEM#<scope>#<key>`` / ``IDEM``, its own partition): the hash of the body it
came with, the execution it created, whether that execution has been created (``done``), when
it was claimed, and ``expiresAt`` (the table's TTL attribute) 24 hours on. DynamoDB's TTL
deletes an expired item within days, not at once, so a claim past ``expiresAt`` counts as absent:
the conditional put replaces it.

The decisions (same body or not, still being created, taken over) are the orchestration's
(``orchestration/idempotent.py``); here are the single-item conditional writes they rest on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..domain.errors import StoreError
from .keys import DEFAULT_SCOPE, IDEMPOTENCY_SK, TTL_ATTRIBUTE, idempotency_pk
from .table import Item, Table, from_item, to_item

WINDOW_SECONDS: Final = 86_400  # how long a key answers with its first execution
_DONE: Final = {"#d": "done"}  # by name: keep clear of DynamoDB's reserved words


@dataclass(frozen=True)
class Claim:
    body_hash: str
    execution_id: str
    done: bool  # the execution exists (its creation returned)
    claimed_at: int  # epoch ms

    @classmethod
    def of(cls, item: Item) -> Claim:
        return cls(
            str(item["bodyHash"]), str(item["executionId"]), bool(item["done"]), int(item["claimedAt"])
        )


class IdempotencyRecords(Table):
    """The claims of Idempotency-Keys."""

    def claim(
        self, key: str, body_hash: str, execution_id: str, now_ms: int, scope: str = DEFAULT_SCOPE
    ) -> Claim | None:
        """Claim ``key`` for a new execution ``execution_id``: None when claimed, else the live
        claim that holds it."""
        item = {
            "PK": idempotency_pk(key, scope),
            "SK": IDEMPOTENCY_SK,
            "bodyHash": body_hash,
            "executionId": execution_id,
            "done": False,
            "claimedAt": now_ms,
            TTL_ATTRIBUTE: now_ms // 1000 + WINDOW_SECONDS,
        }
        for _ in range(3):
            if self._put_if(
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(PK) OR #x < :now",
                ExpressionAttributeNames={"#x": TTL_ATTRIBUTE},
                ExpressionAttributeValues=to_item({":now": now_ms // 1000}),
            ):
                return None
            out = self._db.get_item(TableName=self._table, Key=self._key(key, scope), ConsistentRead=True)
            if "Item" in out:
                return Claim.of(from_item(out["Item"]))
            # released between the two calls (its first request failed): claim it again
        raise StoreError(f"the Idempotency-Key {key[:80]!r} kept changing hands; send the request again")

    def mark_done(self, key: str, execution_id: str, scope: str = DEFAULT_SCOPE) -> None:
        """The claim's execution exists: from now on the key answers with it."""
        self._update_if(
            Key=self._key(key, scope),
            UpdateExpression="SET #d = :t",
            ConditionExpression="executionId = :e",
            ExpressionAttributeNames=_DONE,
            ExpressionAttributeValues=to_item({":t": True, ":e": execution_id}),
        )

    def release(self, key: str, execution_id: str, scope: str = DEFAULT_SCOPE) -> None:
        """Drop the claim (its execution could not be created): a retry with the key starts afresh."""
        self._delete_if(
            Key=self._key(key, scope),
            ConditionExpression="executionId = :e AND #d = :f",
            ExpressionAttributeNames=_DONE,
            ExpressionAttributeValues=to_item({":e": execution_id, ":f": False}),
        )

    def take_over(
        self, key: str, stale: Claim, execution_id: str, now_ms: int, scope: str = DEFAULT_SCOPE
    ) -> bool:
        """Claim ``key`` from a claim whose request died while creating; False if someone else did."""
        return (
            self._update_if(
                Key=self._key(key, scope),
                UpdateExpression="SET executionId = :e, claimedAt = :now",
                ConditionExpression="executionId = :old AND claimedAt = :at AND #d = :f",
                ExpressionAttributeNames=_DONE,
                ExpressionAttributeValues=to_item(
                    {
                        ":e": execution_id,
                        ":now": now_ms,
                        ":old": stale.execution_id,
                        ":at": stale.claimed_at,
                        ":f": False,
                    }
                ),
            )
            is not None
        )

    @staticmethod
    def _key(key: str, scope: str) -> dict[str, dict[str, str]]:
        return to_item({"PK": idempotency_pk(key, scope), "SK": IDEMPOTENCY_SK})
