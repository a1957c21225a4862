"""Releasing tasks: when a task's callback token is stored and every dependency is done, send the
token back so the state machine runs it; under maxConcurrency only into a free slot, else into the
queue that finishing tasks drain, lowest id first. An approval task takes no slot (it is released
at once: it only waits for its decision, decisions.py).

Whoever sees "token stored and every dependency done" — the task's registration, its last
finishing dependency, or both — sends the token, then records it as ``released`` so later callers
skip the send. There is no claim before the send: a claim won by a caller that then died (or whose
answer was lost) would leave the task parked for good, while a second send of one token is
harmless (the token is gone; the adapter reports it and nothing happens).

Not here: whether a released task runs (attempt.py), or what its finishing records (engine.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging

from ..domain.model import APPROVAL_ACTION, TaskStatus
from ..persistence.table import Item
from .ports import OrchestrationStore, StateMachine

log = logging.getLogger(__name__)

# Threads releasing a finished task's dependents: a 500-wide fan-out is 500 × (mark, send) — one
# after the other that would be seconds of a Lambda's time. Shared by every releaser in the process
# so the tests and the local stack, which build many Orchestrators, keep one pool; its threads
# start on first use, not at import.
_RELEASE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="dagcast-release")


class Releaser:
    def __init__(self, store: OrchestrationStore, state_machine: StateMachine) -> None:
        self._store = store
        self._state_machine = state_machine

    def maybe_release(self, execution_id: str, task: Item, meta: Item | None = None) -> None:
        """Release the task if its token is stored, every dependency is done and it has not been
        released with this token yet; with maxConcurrency, take a slot or join the queue."""
        ready = len(task.get("doneDeps", ())) >= len(task.get("dependencies", []))
        token = task.get("token")
        if not (ready and token) or task.get("released") == token:
            return
        if meta is None:
            meta = self._store.get_meta(execution_id)
        limit = meta.get("maxConcurrency")
        task_id = int(task["taskId"])
        # An approval holds no slot: it waits for a person (for days), not for a share of the work.
        takes_slot = task.get("action") != APPROVAL_ACTION
        if limit and takes_slot and not self._store.acquire_slot(execution_id, task_id, int(limit)):
            # Queue first, then look for a free slot: a slot freed meanwhile is not missed.
            self._store.queue_for_slot(execution_id, task_id)
            self._drain_slots(execution_id, int(limit))
            return
        self._send(execution_id, task_id, str(token))

    def release_dependents(self, execution_id: str, task: Item, meta: Item) -> None:
        """For a finished task: free its slot, mark it done on each dependent (failed unless it
        completed), release those now ready, and hand free slots to queued tasks."""
        task_id = int(task["taskId"])
        failed = task["status"] != TaskStatus.COMPLETED
        limit = meta.get("maxConcurrency")
        if limit:
            self._store.release_slot(execution_id, task_id)

        def release(dependent: int) -> None:
            item = self._store.mark_dependency_done(execution_id, dependent, task_id, failed=failed)
            self.maybe_release(execution_id, item, meta)

        dependents = [int(d) for d in task.get("dependents", [])]
        if len(dependents) == 1:
            release(dependents[0])
        else:
            list(_RELEASE_POOL.map(release, dependents))  # list(): re-raises the first error
        if limit:
            self._drain_slots(execution_id, int(limit))

    def _drain_slots(self, execution_id: str, limit: int) -> None:
        """Give free slots to queued ready tasks, lowest id first."""
        while True:
            meta = self._store.get_meta(execution_id)
            queued = sorted(set(meta.get("queued", ())))
            if not queued or len(meta.get("holding", ())) >= limit:
                return
            if self._store.acquire_slot(execution_id, queued[0], limit, from_queue=True):
                task = self._store.get_task(execution_id, queued[0])
                self._send(execution_id, queued[0], str(task["token"]))

    def _send(self, execution_id: str, task_id: int, token: str) -> None:
        """Send the task's callback token, then remember it was sent."""
        if not self._state_machine.send_task_success(token, json.dumps({"released": True})):
            log.info("token of task %s in %s was already used", task_id, execution_id)
        self._store.mark_released(execution_id, task_id, token)
