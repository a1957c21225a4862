"""Which executions this process has recently seen contended: a queue of events, or a lost race.

A task's finish comes a moment after its start, in the same Lambda invocation; when the start found
the execution's appends queued (many tasks of it finishing at once), the finish nearly always does
too. Reading the tail only to learn that costs a call: a writer that saw contention on the
execution within ``WINDOW_S`` queues its event at once (``EventLog.append_with``). Queueing is
always allowed (the queue is drained in the order appends began), so a wrong guess costs a drain,
never an event; the memory is per process (a warm Lambda, the local stack), a hint and nothing more.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Final

WINDOW_S: Final = 2.0
_REMEMBERED = 1024  # executions whose last contention a process keeps


class RecentContention:
    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def saw(self, execution_id: str) -> None:
        with self._lock:
            self._seen[execution_id] = time.monotonic()
            self._seen.move_to_end(execution_id)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)

    def recent(self, execution_id: str) -> bool:
        with self._lock:
            seen = self._seen.get(execution_id)
        return seen is not None and time.monotonic() - seen < WINDOW_S
