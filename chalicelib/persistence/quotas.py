"""Per-tenant counts that hold across Lambda instances (docs/security.md#quotas): submits per
second, executions running at once, tasks running at once. The limits are chalicelib/tenants.py's;
this module only counts, conditionally, in the table.

Items, in a partition per tenant (``TENANT#<tenant>``):

    SUBMITS#<unix s>  ``n``: submits in that second (ADD if under the limit; expires after 2 minutes)
    EXECUTIONS        ``ids``: a string set of the running executions (a short digest each)
    TASKS             ``holding``: tasks holding a slot (``<digest of executionId>/<taskId>``, so an
                      execution's own are found when it ends); ``queued``: ready tasks waiting for
                      one (``<executionId>/<taskId>``: the releaser must find them)

Sets, not counters, so that every step is idempotent: a retried ADD or DELETE whose first answer
was lost changes nothing. A DynamoDB write is billed by item size (1 WCU per KB): a tenant running
1,000 tasks at once makes each slot write about 20 WCU, which is why the holders are 16-character
digests, and why the limits are per tenant, not one item for the stage.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from .keys import TTL_ATTRIBUTE
from .table import Table, to_item

TENANT_PREFIX: Final = "TENANT#"
EXECUTIONS_SK: Final = "EXECUTIONS"
TASKS_SK: Final = "TASKS"
_SUBMIT_WINDOW_TTL_SECONDS = 120
RUNNING_SET: Final = "ids"  # the EXECUTIONS item's set of running executions


def tenant_pk(tenant: str) -> str:
    return TENANT_PREFIX + tenant


def short(entry: str) -> str:
    """A 16-hex-character digest: what a set holds for an execution or a task (collisions: 2^-64)."""
    return hashlib.blake2b(entry.encode(), digest_size=8).hexdigest()


def task_entry(execution_id: str, task_id: int) -> str:
    return f"{execution_id}/{task_id}"


def holder(entry: str) -> str:
    """What ``holding`` keeps for a task entry: its execution's digest, its task id."""
    execution_id, _, task_id = entry.rpartition("/")
    return f"{short(execution_id)}/{task_id}"


def parse_task_entry(entry: str) -> tuple[str, int]:
    execution_id, _, task_id = entry.rpartition("/")
    return execution_id, int(task_id)


class TenantQuotas(Table):
    def _key(self, tenant: str, sk: str) -> dict[str, Any]:
        return to_item({"PK": tenant_pk(tenant), "SK": sk})

    def take_submit(self, tenant: str, per_second: int, now_s: int) -> bool:
        """Count one submit in the second ``now_s``; False (nothing counted) at the limit."""
        return (
            self._update_if(
                Key=self._key(tenant, f"SUBMITS#{now_s}"),
                UpdateExpression=f"ADD n :one SET {TTL_ATTRIBUTE} = :ttl",
                ConditionExpression="attribute_not_exists(n) OR n < :lim",
                ExpressionAttributeValues=to_item(
                    {":one": 1, ":lim": per_second, ":ttl": now_s + _SUBMIT_WINDOW_TTL_SECONDS}
                ),
            )
            is not None
        )

    def _take(self, tenant: str, sk: str, name: str, member: str, limit: int) -> bool:
        return (
            self._update_if(
                Key=self._key(tenant, sk),
                UpdateExpression=f"ADD {name} :m",
                ConditionExpression=(
                    f"attribute_not_exists({name}) OR size({name}) < :lim OR contains({name}, :e)"
                ),
                ExpressionAttributeValues=to_item({":m": {member}, ":e": member, ":lim": limit}),
            )
            is not None
        )

    def acquire_execution(self, tenant: str, execution_id: str, limit: int) -> bool:
        return self._take(tenant, EXECUTIONS_SK, RUNNING_SET, short(execution_id), limit)

    def release_execution(self, tenant: str, execution_id: str) -> None:
        self._db.update_item(
            TableName=self._table,
            Key=self._key(tenant, EXECUTIONS_SK),
            UpdateExpression=f"DELETE {RUNNING_SET} :m",
            ExpressionAttributeValues=to_item({":m": {short(execution_id)}}),
        )

    def acquire_task(self, tenant: str, entry: str, limit: int, from_queue: bool = False) -> bool:
        """A slot for the task ``entry``; ``from_queue``: only while it is queued, and it leaves the queue."""
        if not from_queue:
            return self._take(tenant, TASKS_SK, "holding", holder(entry), limit)
        free = "(attribute_not_exists(holding) OR size(holding) < :lim)"
        return (
            self._update_if(
                Key=self._key(tenant, TASKS_SK),
                UpdateExpression="ADD holding :h DELETE queued :q",
                ConditionExpression=f"contains(holding, :he) OR ({free} AND contains(queued, :e))",
                ExpressionAttributeValues=to_item(
                    {":h": {holder(entry)}, ":he": holder(entry), ":q": {entry}, ":e": entry, ":lim": limit}
                ),
            )
            is not None
        )

    def queue_task(self, tenant: str, entry: str) -> None:
        self._db.update_item(
            TableName=self._table,
            Key=self._key(tenant, TASKS_SK),
            UpdateExpression="ADD queued :q",
            ExpressionAttributeValues=to_item({":q": {entry}}),
        )

    def release_task(self, tenant: str, entry: str) -> tuple[int, list[str]]:
        """Free the task's slot (and drop it from the queue); (slots held now, queued entries), read
        from the same write's answer: a finishing task pays no second call to learn who waits."""
        return self._release(tenant, {holder(entry)}, {entry})

    def release_execution_tasks(self, tenant: str, execution_id: str) -> tuple[int, list[str]]:
        """Free every slot and queue place an execution's tasks still have (it ended: a task released
        but stopped before it ran, or still queued, would otherwise keep its place for good)."""
        held, queued = self._task_sets(tenant)
        mine = {h for h in held if h.startswith(short(execution_id) + "/")}
        waiting = {q for q in queued if q.startswith(execution_id + "/")}
        if not mine and not waiting:
            return len(held), sorted(queued)
        return self._release(tenant, mine, waiting)

    def _release(self, tenant: str, holders: set[str], entries: set[str]) -> tuple[int, list[str]]:
        parts, values = [], dict[str, Any]()
        if holders:
            parts.append("holding :h")
            values[":h"] = holders
        if entries:
            parts.append("queued :q")
            values[":q"] = entries
        out = self._db.update_item(
            TableName=self._table,
            Key=self._key(tenant, TASKS_SK),
            UpdateExpression="DELETE " + ", ".join(parts),
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_NEW",
        )
        attributes = out.get("Attributes", {})
        holding = attributes.get("holding", {}).get("SS", [])
        return len(holding), sorted(attributes.get("queued", {}).get("SS", []))

    def task_usage(self, tenant: str) -> tuple[int, list[str]]:
        """(slots held, queued entries) now."""
        held, queued = self._task_sets(tenant)
        return len(held), queued

    def _task_sets(self, tenant: str) -> tuple[list[str], list[str]]:
        out = self._db.get_item(TableName=self._table, Key=self._key(tenant, TASKS_SK), ConsistentRead=True)
        attributes = out.get("Item", {})
        return list(attributes.get("holding", {}).get("SS", [])), sorted(
            attributes.get("queued", {}).get("SS", [])
        )
