"""Deleting one execution now: every item it has in the table, in each of its partitions.

``EXEC#<id>`` (META, the request, tasks, result chunks, events, markers, queued events, and the
list index's keys, which are META's attributes), ``QUEUE#<id>`` (the append queue's counter and
lease) and ``STREAMS#EXEC#<id>`` (its open streams' slots). META goes last, conditional on the
execution not running: a deletion cut short leaves an execution that reads as it was, and is
finished by asking again; once META is gone the execution is unknown (404).

It decides nothing (the API refuses a running execution before asking, with 409) and does not
touch the webhook deliveries, which live under their hooks (``chalicelib.webhooks.store``). A
client's own stream slots (``STREAMS#CLIENT#<ip>``) name no execution and expire with their leases.
"""

from __future__ import annotations

from ..domain.model import ExecutionStatus
from .keys import META_SK, execution_streams_pk, pk, queue_pk
from .table import Table, to_item


class ExecutionRemoval(Table):
    def remove(self, execution_id: str) -> bool:
        """Delete the execution's items, META last; False if META was not there (or is running)."""
        for partition in (queue_pk(execution_id), execution_streams_pk(execution_id), pk(execution_id)):
            self._delete_partition(partition, keep=META_SK if partition == pk(execution_id) else None)
        return self._delete_if(
            Key=to_item({"PK": pk(execution_id), "SK": META_SK}),
            ConditionExpression="attribute_exists(PK) AND #s <> :running",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_item({":running": ExecutionStatus.RUNNING}),
        )

    def _delete_partition(self, partition: str, keep: str | None) -> None:
        """Every item of ``partition`` but ``keep``: its keys read page by page (keys only), deleted
        25 at a time — a 1,000-task execution is a few thousand items, a few hundred calls."""
        batch: list[dict[str, object]] = []
        for item in self._query_partition(partition, projection="PK, SK"):
            if item["SK"] == keep:
                continue
            batch.append({"DeleteRequest": {"Key": to_item({"PK": item["PK"], "SK": item["SK"]})}})
            if len(batch) == 25:
                self._batch_write(batch)
                batch = []
        self._batch_write(batch)
