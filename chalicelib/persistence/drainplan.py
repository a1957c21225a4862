"""What a drained chunk of queued events becomes, decided before anything is written: each queued
item's seq (a new one, or the one its key already has), the event items to put, the new tail.

Pure: the drainer (``EventLog._drain``) reads the queue, the tail and the markers, asks this plan,
and writes the planned events in one transaction — or, if a direct writer took a seq meanwhile, one
by one with the full protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..domain import events as ev
from .appendqueue import PROGRESS
from .table import Item

# (key, payload as queued — an event or PROGRESS —, timestamp, seq) → the EVT# item to put
EventItem = Callable[[str, "ev.Event | str", Any, int], Item]


def type_of(payload: ev.Event | str) -> str:
    return str(payload["type"]) if isinstance(payload, dict) else ev.EXECUTION_UPDATED


def coalesced_run(
    items: list[Item], start: int, tail: Item | None, marked: Mapping[str, int], chunk: Mapping[str, int]
) -> list[Item]:
    """``items[start]`` and, if it is a progress event not yet written, the progress events right
    after it: they become one event, because each would read the same counters now (every task
    they stand for recorded its counters before queueing). One already written (a step run again
    queued its update once more: ``known_seq``) stands alone: its seq is older than the tasks
    behind it, whose updates still need an event."""
    end = start + 1
    first = items[start]
    if first["payload"] == PROGRESS and known_seq(str(first["idemKey"]), tail, marked, chunk) is None:
        while end < len(items) and items[end]["payload"] == PROGRESS:
            end += 1
    return items[start:end]


def known_seq(key: str, tail: Item | None, marked: Mapping[str, int], chunk: Mapping[str, int]) -> int | None:
    """The seq ``key`` already has (in this chunk, a marker, the tail), 0 if the log has ended,
    None if it needs the next seq."""
    if key in chunk:
        return chunk[key]
    if key in marked:
        return marked[key]
    if tail is not None and tail["idemKey"] == key:
        return int(tail["seq"])
    if tail is not None and tail["type"] in ev.TERMINAL_TYPES:
        return 0
    return None


def payload_of(item: Item) -> ev.Event | str:
    raw = str(item["payload"])
    return raw if raw == PROGRESS else dict(json.loads(raw))


def plan_chunk(
    items: list[Item], tail: Item | None, marked: Mapping[str, int], event_item: EventItem
) -> tuple[list[Item], dict[str, int], Item | None]:
    """The chunk in queue order: the event items to put (seqs tail+1, tail+2, …), every queued
    key's seq (coalesced progress events share one), and the tail after them."""
    puts: list[Item] = []
    chunk: dict[str, int] = {}
    i = 0
    while i < len(items):
        run = coalesced_run(items, i, tail, marked, chunk)
        i += len(run)
        key = str(run[0]["idemKey"])
        seq = known_seq(key, tail, marked, chunk)
        if seq is None:
            seq = int(tail["seq"]) + 1 if tail is not None else 1
            payload = payload_of(run[0])
            puts.append(event_item(key, payload, run[0].get("timestamp"), seq))
            tail = {"seq": seq, "idemKey": key, "type": type_of(payload)}
        for r in run:
            chunk[str(r["idemKey"])] = seq
    return puts, chunk, tail
