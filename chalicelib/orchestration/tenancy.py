"""A tenant's quotas as executions start and end: the submit rate and running executions counted
at submission (or refused), and the running-task slots an ended execution frees handed to the
tenant's waiting tasks (persistence/quotas.py holds the counts; release.py hands the slots on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..domain.errors import QuotaExceeded
from ..tenants import Tenants
from .ports import TenantExecutions, TenantTaskSlots
from .release import Releaser

# Retry-After of a submit refused for maxRunningExecutions: executions end all the time, but no
# answer can say when the next one will.
EXECUTIONS_RETRY_AFTER_SECONDS = 5


class TenantQuotaStore(TenantExecutions, TenantTaskSlots, Protocol):
    """What the tenant quotas need from the table (persistence/quotas.py)."""


@dataclass(frozen=True)
class Freed:
    """A tenant's task slots an ended execution freed: (slots held, queued entries) after."""

    tenant: str
    limit: int
    usage: tuple[int, list[str]]


class Tenancy:
    """The quotas of ``tenants`` counted in ``quotas`` (None: no quotas at all)."""

    def __init__(self, quotas: TenantQuotaStore | None, tenants: Tenants, releases: Releaser) -> None:
        self.quotas = quotas
        self.tenants = tenants
        self._releases = releases

    def admit(self, tenant: str, execution_id: str, now: int) -> None:
        """Count the submit and the running execution against the tenant's quotas, or refuse."""
        policy = self.tenants.policy(tenant)
        if self.quotas is None:
            return
        if policy.submitsPerSecond and not self.quotas.take_submit(
            tenant, policy.submitsPerSecond, now // 1000
        ):
            raise QuotaExceeded(tenant, "submitsPerSecond", policy.submitsPerSecond, 1)
        limit = policy.maxRunningExecutions
        if limit and not self.quotas.acquire_execution(tenant, execution_id, limit):
            raise QuotaExceeded(tenant, "maxRunningExecutions", limit, EXECUTIONS_RETRY_AFTER_SECONDS)

    def ended(self, tenant: str, execution_id: str) -> Freed | None:
        """The execution ended (or never started): free its place among the tenant's running
        executions, and every task slot or queue place its tasks still have. Idempotent. What it
        freed goes to the tenant's queued tasks through ``hand_on``, which only the state
        machine's functions call: the public API sends no task token but an approval's
        (tests/unit/test_iam.py), so a cancel leaves that to ``reconcile``, which its ABORTED
        status reaches."""
        if self.quotas is None:
            return None
        policy = self.tenants.policy(tenant)
        if policy.maxRunningExecutions:
            self.quotas.release_execution(tenant, execution_id)
        if not policy.maxRunningTasks:
            return None
        return Freed(
            tenant, policy.maxRunningTasks, self.quotas.release_execution_tasks(tenant, execution_id)
        )

    def hand_on(self, freed: Freed | None) -> None:
        if freed is not None and freed.usage[1]:
            self._releases.drain_tenant(freed.tenant, freed.limit, freed.usage)
