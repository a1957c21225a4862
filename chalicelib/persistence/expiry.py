"""When an execution's items expire (the table's TTL attribute), and when an execution is gone.

Every item of an execution carries ``expiresAt`` (``keys.TTL_ATTRIBUTE``, epoch seconds) = its
deadline + the stage's retention (``DAGCAST_RETENTION_DAYS``), set by the write that creates the
item: nothing sweeps thousands of items when an execution ends. META holds the value from its
creation; a writer that creates an item later (an event, a marker, a queued event, a result chunk,
the append queue's counter and lease) takes it from ``Expiries``, which remembers the value of each
execution whose META this process read. The task functions read META before they write, so this
costs them no call; a process that never read it reads it once.

DynamoDB deletes expired items at different times (typically within days, in no order), so reads
never rely on it: ``is_gone`` is how a META past its expiry reads — as no execution (404), whatever
of it is still stored. An execution created before retention existed has no ``expiresAt`` and is
kept, as it always was.

Not here: deleting an execution now (``removal.py``); the webhook deliveries' own retention
(``chalicelib.webhooks.store``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from .keys import TTL_ATTRIBUTE

DAY_S: Final = 86_400
_REMEMBERED = 4096  # executions whose expiry a process keeps (a warm Lambda sees many in turn)


def expires_at(deadline_ms: int, retention_days: int) -> int:
    """The TTL value of every item of an execution with that deadline (epoch ms)."""
    return math.ceil(deadline_ms / 1000) + retention_days * DAY_S


def is_gone(meta: Mapping[str, Any], now_s: float | None = None) -> bool:
    """Whether an execution's META is past its expiry: it reads as no execution at all."""
    expiry = meta.get(TTL_ATTRIBUTE)
    return expiry is not None and int(expiry) <= (time.time() if now_s is None else now_s)


def with_expiry(item: Mapping[str, Any], expiry: int | None) -> dict[str, Any]:
    """``item`` with the TTL attribute when the execution has an expiry."""
    return {**item, TTL_ATTRIBUTE: expiry} if expiry is not None else dict(item)


class Expiries:
    """The expiry of each execution this process has seen, by id (None: it has none)."""

    def __init__(self, read_meta: Callable[[str], Mapping[str, Any]]) -> None:
        self._read_meta = read_meta  # remembers what it reads (DynamoStore.get_meta)
        self._known: OrderedDict[str, int | None] = OrderedDict()
        self._lock = threading.Lock()  # the local stack's threads share one store

    def remember(self, execution_id: str, meta: Mapping[str, Any]) -> None:
        expiry = meta.get(TTL_ATTRIBUTE)
        with self._lock:
            self._known[execution_id] = None if expiry is None else int(expiry)
            self._known.move_to_end(execution_id)
            while len(self._known) > _REMEMBERED:
                self._known.popitem(last=False)

    def of(self, execution_id: str) -> int | None:
        """The execution's expiry; reads its META only if this process has not seen it."""
        with self._lock:
            if execution_id in self._known:
                return self._known[execution_id]
        meta = self._read_meta(execution_id)
        self.remember(execution_id, meta)
        return None if meta.get(TTL_ATTRIBUTE) is None else int(meta[TTL_ATTRIBUTE])
