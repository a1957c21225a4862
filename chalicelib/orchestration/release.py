"""Releasing tasks: when a task's callback token is stored and every dependency is done, send the
token back so the state machine runs it; under maxConcurrency only into a free slot, else into the
queue that finishing tasks drain, lowest id first. An approval task takes no slot (it is released
at once: it only waits for its decision, decisions.py).

Whoever sees "token stored and every dependency done" — the task's registration, its last
finishing dependency, or both — sends the token; the task records it as ``released`` when it
starts (in the start's own write), so later callers skip the send. There is no claim before the
send: a claim won by a caller that then died (or whose answer was lost) would leave the task
parked for good, while a second send of one token is harmless (the token is gone; the adapter
reports it and nothing happens).

A tenant's ``maxRunningTasks`` (chalicelib/tenants.py) holds tasks the same way, across the
tenant's executions: a task that has its execution's slot (or needs none) must also take one of the
tenant's (persistence/quotas.py), else it joins the tenant's queue, which the tenant's finishing
tasks drain. A held task waits parked on its token, as under maxConcurrency: it is delayed, never
failed, and a flooding tenant's tasks queue behind each other, not in front of another tenant's.
DynamoDB calls per task: one to take the slot, one to free it (whose answer says who is queued);
a queued task adds three (queue, take from the queue, read its token).

Not here: whether a released task runs (attempt.py), or what its finishing records (engine.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Callable

from ..domain.errors import StoreError
from ..domain.model import APPROVAL_ACTION, ExecutionStatus, TaskStatus
from ..persistence.quotas import parse_task_entry, task_entry
from ..persistence.table import Item
from ..tenants import DEFAULT_TENANT
from .ports import OrchestrationStore, StateMachine, TenantTaskSlots

log = logging.getLogger(__name__)

# Threads releasing a finished task's dependents: a 500-wide fan-out is 500 × (mark, send) — one
# after the other that would be seconds of a Lambda's time. Shared by every releaser in the process
# so the tests and the local stack, which build many Orchestrators, keep one pool; its threads
# start on first use, not at import.
_RELEASE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="dagcast-release")


def tenant_of(meta: Item) -> str:
    """The execution's tenant; an execution stored before tenants existed is ``default``'s."""
    return str(meta.get("tenant") or DEFAULT_TENANT)


class Releaser:
    def __init__(
        self,
        store: OrchestrationStore,
        state_machine: StateMachine,
        tenant_slots: TenantTaskSlots | None = None,
        task_limit: Callable[[str], int] = lambda tenant: 0,
    ) -> None:
        self._store = store
        self._state_machine = state_machine
        self._tenant_slots = tenant_slots
        self._task_limit = task_limit

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
            self._drain_slots(execution_id, int(limit), meta)
            return
        self._start(execution_id, task_id, str(token), meta)

    def release_dependents(self, execution_id: str, task: Item, meta: Item) -> None:
        """For a finished task: free its slot, mark it done on each dependent (failed unless it
        completed), release those now ready, and hand free slots to queued tasks."""
        task_id = int(task["taskId"])
        failed = task["status"] != TaskStatus.COMPLETED
        limit = meta.get("maxConcurrency")
        if limit:
            self._store.release_slot(execution_id, task_id)
        tenant, tenant_limit = tenant_of(meta), self._tenant_limit(meta)
        usage = None
        if tenant_limit and self._tenant_slots is not None:
            usage = self._tenant_slots.release_task(tenant, task_entry(execution_id, task_id))

        def release(dependent: int) -> None:
            item = self._store.mark_dependency_done(execution_id, dependent, task_id, failed=failed)
            self.maybe_release(execution_id, item, meta)

        dependents = [int(d) for d in task.get("dependents", [])]
        if len(dependents) == 1:
            release(dependents[0])
        else:
            list(_RELEASE_POOL.map(release, dependents))  # list(): re-raises the first error
        if limit:
            self._drain_slots(execution_id, int(limit), meta)
        if usage is not None and usage[1]:
            self.drain_tenant(tenant, tenant_limit, usage)

    def _tenant_limit(self, meta: Item) -> int:
        return self._task_limit(tenant_of(meta)) if self._tenant_slots is not None else 0

    def _drain_slots(self, execution_id: str, limit: int, execution_meta: Item) -> None:
        """Give free slots to queued ready tasks, lowest id first."""
        while True:
            meta = self._store.get_meta(execution_id)
            queued = sorted(set(meta.get("queued", ())))
            if not queued or len(meta.get("holding", ())) >= limit:
                return
            if self._store.acquire_slot(execution_id, queued[0], limit, from_queue=True):
                task = self._store.get_task(execution_id, queued[0])
                self._start(execution_id, queued[0], str(task["token"]), execution_meta)

    def _start(self, execution_id: str, task_id: int, token: str, meta: Item) -> None:
        """Send the token, once the tenant has a slot for the task (else queue it for one)."""
        tenant, limit = tenant_of(meta), self._tenant_limit(meta)
        if not limit or self._tenant_slots is None:
            self._send(execution_id, task_id, token)
            return
        entry = task_entry(execution_id, task_id)
        if not self._tenant_slots.acquire_task(tenant, entry, limit):
            # Queue first, then look for a free slot: a slot freed meanwhile is not missed.
            self._tenant_slots.queue_task(tenant, entry)
            self.drain_tenant(tenant, limit)
            return
        self._send_holding(tenant, execution_id, task_id, token)

    def drain_tenant(self, tenant: str, limit: int, usage: tuple[int, list[str]] | None = None) -> None:
        """Give the tenant's free slots to its queued tasks (``usage``: already read)."""
        assert self._tenant_slots is not None
        while True:
            held, queued = usage if usage is not None else self._tenant_slots.task_usage(tenant)
            usage = None
            if not queued or held >= limit:
                return
            if self._tenant_slots.acquire_task(tenant, queued[0], limit, from_queue=True):
                execution_id, task_id = parse_task_entry(queued[0])
                try:
                    token = str(self._store.get_task(execution_id, task_id)["token"])
                except (StoreError, KeyError):  # the execution is gone: its place goes to the next
                    self._tenant_slots.release_task(tenant, queued[0])
                    continue
                self._send_holding(tenant, execution_id, task_id, token)

    def _send_holding(self, tenant: str, execution_id: str, task_id: int, token: str) -> None:
        """Send a token whose task holds a tenant slot; a token nobody can use any more (its
        execution was stopped or ended meanwhile: ``Tenancy.ended`` may have freed its slots before
        this one was taken) gives the slot back. A token another sender of the same release used
        keeps it: that task runs (its execution still running), and frees it when it ends. Told
        apart by the execution's status, not by ``released``: the task records that when it starts
        (``start_task``), which may come after this, so a send costs no write of its own."""
        assert self._tenant_slots is not None
        if not self._state_machine.send_task_success(token, json.dumps({"released": True})):
            log.info("token of task %s in %s was already used", task_id, execution_id)
            # (two GetItems, not one BatchGetItem: register_task's role grants no batch read)
            ended = self._store.get_meta(execution_id)["status"] != ExecutionStatus.RUNNING
            if ended and self._store.get_task(execution_id, task_id)["status"] == TaskStatus.WAITING:
                self._tenant_slots.release_task(tenant, task_entry(execution_id, task_id))

    def _send(self, execution_id: str, task_id: int, token: str) -> None:
        """Send the task's callback token. The task records it as ``released`` when it starts
        (``start_task``), in the write that starts it, not in one of its own here."""
        if not self._state_machine.send_task_success(token, json.dumps({"released": True})):
            log.info("token of task %s in %s was already used", task_id, execution_id)
