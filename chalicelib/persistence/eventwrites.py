"""The writes of the event log's items: an event item built from its payload (redacted), its
``KEY#`` marker, and the transaction that puts an event with its marker (and the writes that go
with it). ``EventLog`` (eventlog.py) decides when; here only what one write holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ..domain import events as ev
from ..domain.errors import StoreError
from ..domain.model import now_ms
from ..domain.wire import dumps
from ..redact import Redactor
from .appendlease import LeaseLost
from .appendqueue import PROGRESS, AppendQueue
from .expiry import with_expiry
from .keys import event_sk, marker_sk, pk
from .table import Item, from_item, to_item

Payload = ev.Event | Callable[[], ev.Event] | str
# What a transactional append found (``_transact_event``).
_WRITTEN, _DUPLICATE, _RACE, _REFUSED = "written", "duplicate", "race", "refused"


class Progress(NamedTuple):
    """An ``execution.updated`` that goes with an event: its key, and the change the event's
    writes make to META's counters (applied to META as read, for the event's counters)."""

    key: str
    apply: Callable[[Item], Item]


class EventWrites(AppendQueue):
    _redactor: Redactor
    _read_meta: Callable[[str], Item]
    _expiry: Callable[[str], int | None]

    def _transact_event(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None,
        tail: Item | None,
        writes: Sequence[Mapping[str, Any]],
        progress: Progress | None = None,
    ) -> str:
        """Put ``EVT#<tail+1>`` and its own ``KEY#`` marker (both conditional on being new), the
        tail's marker if the tail is not ``marked`` (a drained event, or one older than this
        protocol), and ``writes``, in one transaction: the marker's condition is the duplicate
        check, with no read of the marker first and no separate put of the tail's.
        ``progress``: an ``execution.updated`` right after it, in the same write, its counters
        read now (after the tail) with the writes' own change applied (``Progress.apply``).
        ``_WRITTEN``, ``_DUPLICATE`` (the key has a marker), ``_RACE`` (the seq is taken) or
        ``_REFUSED`` (one of ``writes`` failed its condition)."""
        seq = int(tail["seq"]) + 1 if tail is not None else 1
        event = self._event_item(execution_id, key, payload, timestamp, seq)
        event["marked"] = True  # its marker is written with it: the next writer need not
        new = {"TableName": self._table, "ConditionExpression": "attribute_not_exists(PK)"}
        events = [{"Put": {**new, "Item": to_item(event)}}]
        markers = [{"Put": {**new, "Item": self._marker(execution_id, key, seq)}}]
        if progress is not None:
            body = ev.execution_updated(progress.apply(self._read_meta(execution_id)))
            after = self._event_item(execution_id, progress.key, body, timestamp, seq + 1)
            after["marked"] = True
            events.append({"Put": {**new, "Item": to_item(after)}})
            markers.append({"Put": {**new, "Item": self._marker(execution_id, progress.key, seq + 1)}})
        if tail is not None and not tail.get("marked"):
            tail_marker = self._marker(execution_id, str(tail["idemKey"]), int(tail["seq"]))
            markers.append({"Put": {"TableName": self._table, "Item": tail_marker}})
        # The events last: moto applies a transaction's items in order, so a stream consumer that
        # has read an event has read everything its write holds (AWS's stream makes no such
        # promise within a transaction; nothing relies on it).
        updates = [{"Update": {"TableName": self._table, **w}} for w in writes]
        failed = self._transact([*updates, *markers, *events])
        if not failed:
            return _WRITTEN
        w, m = len(updates), len(markers)
        if any(failed[w : w + m]):
            return _DUPLICATE
        if any(failed[w + m :]):
            return _RACE
        if any(failed[:w]):
            return _REFUSED
        raise StoreError(f"an append to {execution_id} was cancelled for no condition of its own")

    def _marker(self, execution_id: str, key: str, seq: int) -> dict[str, Any]:
        marker = {"PK": pk(execution_id), "SK": marker_sk(key), "seq": seq}
        return to_item(with_expiry(marker, self._expiry(execution_id)))

    def _event_item(
        self, execution_id: str, key: str, payload: Payload, timestamp: int | None, seq: int
    ) -> Item:
        """The ``EVT#<seq>`` item: the body built now (``PROGRESS``: from META read now), redacted."""
        if payload == PROGRESS:
            body = ev.execution_updated(self._read_meta(execution_id))
        elif callable(payload):
            body = dict(payload())
        else:
            assert isinstance(payload, dict)
            body = dict(payload)
        # Secrets never reach the log: redacted here, before the event is stored.
        body = self._redactor.apply(body)
        body["executionId"] = execution_id
        body["timestamp"] = timestamp if timestamp is not None else now_ms()
        body["seq"] = seq
        item = {
            "PK": pk(execution_id),
            "SK": event_sk(seq),
            "seq": seq,
            "type": body["type"],
            "idemKey": key,
            "data": dumps(body),
        }
        return with_expiry(item, self._expiry(execution_id))

    def _put_event(
        self,
        execution_id: str,
        key: str,
        payload: Payload,
        timestamp: int | None,
        seq: int,
        lease_held: Mapping[str, Any],
    ) -> int | None:
        """Put ``EVT#<seq>`` alone (a drained chunk's: markers follow), with ``lease_held``
        (``_put_drained``); None if the seq is taken."""
        item = self._event_item(execution_id, key, payload, timestamp, seq)
        return seq if self._put_drained(execution_id, [item], lease_held) else None

    def _put_drained(self, execution_id: str, items: list[Item], lease_held: Mapping[str, Any]) -> bool:
        """Put drained event items, each conditional on its seq being free, in one transaction with
        ``lease_held`` (``AppendLease.held_by``): whether they are written — also when the
        transaction was applied and its answer lost (``_landed``) — or not, a seq being taken.
        Raises ``LeaseLost`` when the lease is someone else's."""
        new = {"TableName": self._table, "ConditionExpression": "attribute_not_exists(PK)"}
        failed = self._transact([{"Put": {**new, "Item": to_item(i)}} for i in items] + [dict(lease_held)])
        if not failed or self._landed(items):
            return True
        if failed[-1]:
            raise LeaseLost(execution_id)
        return False

    def _landed(self, puts: list[Item]) -> bool:
        """Whether a drained transaction that failed had in fact been applied: its answer was lost
        and botocore's retry of it found its own events (every planned seq holds its planned key;
        a transaction is all or nothing). Without this the events, not yet marked, would be written
        again above themselves: a chunk's, or one put of the one-at-a-time path."""
        found = self._batch_get([to_item({"PK": p["PK"], "SK": p["SK"]}) for p in puts])
        keys = {str(i["SK"]): i.get("idemKey") for i in map(from_item, found)}
        return all(keys.get(str(p["SK"])) == p["idemKey"] for p in puts)
