"""How many streams may be open at once, per client IP, per execution and per tenant (its
``maxStreams``, chalicelib/tenants.py): the SSE endpoint's admission count (docs/sse.md#limits).

Two counts, the first always, the second when ``stream_leases`` is on:

- ``Limits``, in this process: exact for one process (the local stack, a Managed Instances
  environment), no I/O, and it refuses first, so a flood from one client costs no table call;
- ``StreamLeases``, in the table (``persistence/streamleases.py``): a slot per scope per open
  stream, the count every process sees — in on-demand Lambda each stream is a process of its own,
  and a count per process would never reach a cap. One task per process renews the leases of its
  streams every third of ``stream_lease_seconds``; a stream that ends releases its slots; a process
  that dies leaves them to expire. A stream whose lease was taken over (its process stalled past
  the lease) is told through ``Admission.on_lost`` and must end, so the cap holds.

Either refusal is ``TooManyStreams`` (429 with Retry-After, through chalicelib/http/errors.py).
It does not know the request or the stream: the endpoint asks, and releases what it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..domain.errors import TooManyStreams
from ..persistence.executions import DynamoStore
from ..persistence.keys import client_streams_pk, execution_streams_pk, tenant_streams_pk
from ..persistence.streamleases import StreamSlots

log = logging.getLogger(__name__)

# A stream refused for the limits may try again this much later (Retry-After): streams end all
# the time (terminal events, max_stream_seconds), so a slot is soon free.
RETRY_AFTER_SECONDS = 5


def _too_many_from(ip: str, cap: int) -> TooManyStreams:
    return TooManyStreams(f"too many concurrent streams from {ip} (limit {cap})", RETRY_AFTER_SECONDS)


def _too_many_of(tenant: str, cap: int) -> TooManyStreams:
    return TooManyStreams(
        f"tenant {tenant!r} is at its quota maxStreams ({cap} concurrent streams)", RETRY_AFTER_SECONDS
    )


def _too_many_for(cap: int) -> TooManyStreams:
    return TooManyStreams(
        f"too many concurrent streams for this execution (limit {cap})", RETRY_AFTER_SECONDS
    )


# A stream's tenant and that tenant's maxStreams (0: no limit).
TenantCap = tuple[str, int]
NO_TENANT_CAP: TenantCap = ("default", 0)


class Limits:
    """Concurrent streams per client IP, per execution and per tenant, in this process."""

    def __init__(self, per_ip: int, per_execution: int) -> None:
        self.per_ip = per_ip
        self.per_execution = per_execution
        self.by_ip: dict[str, int] = {}
        self.by_execution: dict[str, int] = {}
        self.by_tenant: dict[str, int] = {}

    def acquire(self, ip: str, execution_id: str, tenant: TenantCap = NO_TENANT_CAP) -> None:
        """Count one more stream, or raise TooManyStreams when a limit is reached."""
        if self.by_ip.get(ip, 0) >= self.per_ip:
            raise _too_many_from(ip, self.per_ip)
        if self.by_execution.get(execution_id, 0) >= self.per_execution:
            raise _too_many_for(self.per_execution)
        name, cap = tenant
        if cap and self.by_tenant.get(name, 0) >= cap:
            raise _too_many_of(name, cap)
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        self.by_execution[execution_id] = self.by_execution.get(execution_id, 0) + 1
        self.by_tenant[name] = self.by_tenant.get(name, 0) + 1

    def release(self, ip: str, execution_id: str, tenant: str = NO_TENANT_CAP[0]) -> None:
        for table, key in ((self.by_ip, ip), (self.by_execution, execution_id), (self.by_tenant, tenant)):
            left = table.get(key, 0) - 1
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)


@dataclass(eq=False)
class Lease:
    """One stream's slots in the table: (scope, slot number) per scope, under one holder id."""

    holder: str
    slots: list[tuple[str, int]] = field(default_factory=list)
    on_lost: Callable[[], object] | None = None
    lost: bool = False


class StreamLeases:
    """The count across processes: a leased slot per scope, renewed while the stream runs."""

    def __init__(
        self,
        table: Callable[[], DynamoStore],
        per_ip: int,
        per_execution: int,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table  # the store: its client is built on the first stream, not before
        self._built: StreamSlots | None = None
        self.per_ip = per_ip
        self.per_execution = per_execution
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.held: set[Lease] = set()
        self.lost = 0  # leases found taken over at renewal (their streams were ended)
        self._keeper: asyncio.Task[None] | None = None

    def _slots(self) -> StreamSlots:
        if self._built is None:
            self._built = StreamSlots.beside(self._table())
        return self._built

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def take(self, ip: str, execution_id: str, tenant: TenantCap = NO_TENANT_CAP) -> Lease:
        """Every slot (the client's first: a client over its cap never touches the execution's
        partition; the tenant's last), or TooManyStreams with nothing held. Blocking: call it off
        the event loop."""
        lease = Lease(uuid.uuid4().hex)
        scopes = [
            (client_streams_pk(ip), self.per_ip, _too_many_from(ip, self.per_ip)),
            (execution_streams_pk(execution_id), self.per_execution, _too_many_for(self.per_execution)),
        ]
        if tenant[1]:
            scopes.append((tenant_streams_pk(tenant[0]), tenant[1], _too_many_of(*tenant)))
        try:
            for scope, cap, refusal in scopes:
                now = self._now_ms()
                slot = self._slots().take(scope, cap, lease.holder, now + self._lease_ms(), now)
                if slot is None:
                    raise refusal
                lease.slots.append((scope, slot))
        except BaseException:
            self.give_back(lease)
            raise
        return lease

    def _lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)

    def give_back(self, lease: Lease) -> None:
        """Release the lease's slots (blocking). A failed release only delays the slot's freedom
        until its lease expires, so it is logged, not raised."""
        for scope, slot in lease.slots:
            try:
                self._slots().release(scope, slot, lease.holder)
            except Exception:
                log.warning("could not release stream slot %s %d; it expires", scope, slot, exc_info=True)
        lease.slots = []

    async def acquire(self, ip: str, execution_id: str, tenant: TenantCap = NO_TENANT_CAP) -> Lease:
        lease = await run_in_threadpool(self.take, ip, execution_id, tenant)
        self.held.add(lease)
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep())
        return lease

    async def release(self, lease: Lease) -> None:
        self.held.discard(lease)
        await run_in_threadpool(self.give_back, lease)

    def renew(self, leases: list[Lease]) -> list[Lease]:
        """Move each lease on by ``lease_seconds`` (blocking); the leases found taken over. Their
        slots stay listed: releasing them is conditional on the holder, so it frees nobody else's."""
        lost = []
        for lease in leases:
            until = self._now_ms() + self._lease_ms()
            for scope, slot in list(lease.slots):
                try:
                    kept = self._slots().renew(scope, slot, lease.holder, until)
                except Exception:  # tried again at the next round, well before the lease ends
                    log.warning("could not renew stream slot %s %d", scope, slot, exc_info=True)
                    continue
                if not kept:
                    lost.append(lease)
                    break
        return lost

    async def _keep(self) -> None:
        """One task for every lease of this process, while there are any."""
        try:
            while self.held:
                await asyncio.sleep(self.lease_seconds / 3)
                for lease in await run_in_threadpool(self.renew, list(self.held)):
                    # A lease released meanwhile was deleted, not taken over: nothing to end.
                    if lease in self.held and not lease.lost:
                        lease.lost = True
                        self.lost += 1
                        log.warning("a stream's slot was taken over (its lease expired): ending it")
                        if lease.on_lost is not None:
                            lease.on_lost()
        finally:
            self._keeper = None


@dataclass(eq=False)
class Admission:
    """What the endpoint holds for one admitted stream and gives back when it ends."""

    ip: str
    execution_id: str
    lease: Lease | None
    tenant: str = NO_TENANT_CAP[0]

    @property
    def lost(self) -> bool:
        return self.lease is not None and self.lease.lost


class StreamLimits:
    """Admission: this process's count first (no I/O), then the table's (when ``leases``)."""

    def __init__(self, local: Limits, leases: StreamLeases | None) -> None:
        self.local = local
        self.leases = leases

    @classmethod
    def from_settings(cls, settings: Settings, table: Callable[[], DynamoStore]) -> StreamLimits:
        per_ip, per_execution = settings.max_streams_per_ip, settings.max_streams_per_execution
        leases = (
            StreamLeases(table, per_ip, per_execution, settings.stream_lease_seconds)
            if settings.stream_leases
            else None
        )
        return cls(Limits(per_ip, per_execution), leases)

    async def acquire(
        self,
        ip: str,
        execution_id: str,
        on_lost: Callable[[], object] | None = None,
        tenant: TenantCap = NO_TENANT_CAP,
    ) -> Admission:
        """Raises TooManyStreams with nothing held."""
        self.local.acquire(ip, execution_id, tenant)
        if self.leases is None:
            return Admission(ip, execution_id, None, tenant[0])
        try:
            lease = await self.leases.acquire(ip, execution_id, tenant)
        except BaseException:
            self.local.release(ip, execution_id, tenant[0])
            raise
        lease.on_lost = on_lost
        return Admission(ip, execution_id, lease, tenant[0])

    async def release(self, admission: Admission) -> None:
        self.local.release(admission.ip, admission.execution_id, admission.tenant)
        if self.leases is not None and admission.lease is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.leases.release(admission.lease)

    def stats(self) -> dict[str, int] | None:
        if self.leases is None:
            return None
        return {"held": len(self.leases.held), "lost": self.leases.lost}
