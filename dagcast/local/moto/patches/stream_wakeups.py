"""Patches ``moto.dynamodb.models.table.StreamShard.add``: a table write wakes the stream poller.

The stream poller (moto/poller.py) sleeps ``idle_seconds`` (0.2 s) after a pass that found nothing;
a record written meanwhile waited out the rest of the sleep before the fan-out saw it — on average
half of it on every event's path to a webhook. The patch calls each listener registered with
``on_stream_write`` after moto appends a stream record, so the poller reads it at once. Listeners
run inside the write (under moto's DynamoDB lock): they must only signal, never call moto.

Locally only: an AWS event source mapping polls a shard about four times a second, so in AWS up to
~0.25 s of polling stays on that path (docs/local-mode.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import table as ddb_table

_listeners: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_stream_write(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` after every stream record moto writes; returns what unregisters it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def wake_on_stream_writes() -> None:
    shard_cls = ddb_table.StreamShard
    if getattr(shard_cls, "_dagcast_wakes", False):
        return
    add = shard_cls.add

    @functools.wraps(add)
    def add_and_wake(self: Any, old: Any, new: Any) -> None:
        add(self, old, new)
        for listener in tuple(_listeners):
            listener()

    setattr(shard_cls, "add", add_and_wake)  # noqa: B010
    setattr(shard_cls, "_dagcast_wakes", True)  # noqa: B010
