"""Task results too large for their task item: written as ``RESULT#`` chunks, read whole or in
pieces — how long a stored result is and any slice of it, reading only the chunks the slice
overlaps, so a result page costs the chunks it shows, never the whole result (up to 4,000,000 bytes
per task, and a final result joins every sink's).

A ``Table`` mixin of ``DynamoStore``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..domain.errors import StoreError
from .expiry import Expiries, with_expiry
from .keys import pk, result_sk, task_sk
from .table import Item, Table, from_item, to_item

RESULT_CHUNK_CHARS: Final = 100_000  # per RESULT# item: well under 400 KB even for 4-byte UTF-8 characters


class ResultStore(Table):
    """Stored results (inline ``resultJson`` or ``RESULT#`` chunks): written, read, sliced."""

    expiries: Expiries  # each execution's expiry, which its chunks carry (the store sets it)

    def put_result_chunks(self, execution_id: str, task_id: int, text: str, run: str) -> int:
        """Store a large result as ``RESULT#<task>#<run>#<n>`` items (DynamoDB items stop at 400 KB);
        the task item's ``resultRun`` names the run whose chunks are the result."""
        size = RESULT_CHUNK_CHARS
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        expiry = self.expiries.of(execution_id)
        for n, chunk in enumerate(chunks):
            item = {"PK": pk(execution_id), "SK": result_sk(task_id, n, run), "data": chunk}
            self._db.put_item(TableName=self._table, Item=to_item(with_expiry(item, expiry)))
        return len(chunks)

    def copy_result_chunks(self, source_id: str, target_id: str, task: Item, expiry: int | None) -> None:
        """A rerun's reused large result: the source run's chunks, under the same keys in the
        rerun's partition (a copy, not a reference: each execution expires and is deleted alone)."""
        prefix = result_sk(int(task["taskId"]), 0, str(task.get("resultRun", "")))[:-4]
        self._batch_write(
            [
                {"PutRequest": {"Item": to_item(with_expiry({**c, "PK": pk(target_id)}, expiry))}}
                for c in self._query_partition(pk(source_id), prefix)
            ]
        )

    def delete_result_chunks(self, execution_id: str, task_id: int, run: str, chunks: int) -> None:
        """Delete a run's chunks that did not become the task's result."""
        self._batch_write(
            [
                {
                    "DeleteRequest": {
                        "Key": to_item({"PK": pk(execution_id), "SK": result_sk(task_id, n, run)})
                    }
                }
                for n in range(chunks)
            ]
        )

    def result_json(self, execution_id: str, task: Item) -> str | None:
        """The task's full result as JSON text (inline or chunked); None if it has none."""
        if "resultJson" in task:
            return str(task["resultJson"])
        chunks = int(task.get("resultChunks", 0))
        if not chunks:
            return None
        run = str(task.get("resultRun", ""))
        parts = []
        for n in range(chunks):
            out = self._db.get_item(
                TableName=self._table,
                Key=to_item({"PK": pk(execution_id), "SK": result_sk(int(task["taskId"]), n, run)}),
                ConsistentRead=True,
            )
            parts.append(str(from_item(out["Item"])["data"]))
        return "".join(parts)

    def result_tasks(self, execution_id: str, task_ids: Iterable[int]) -> list[Item]:
        """The task items of ``task_ids`` (consistent), by task id; unknown ids are left out."""
        keys = [to_item({"PK": pk(execution_id), "SK": task_sk(t)}) for t in task_ids]
        return sorted((from_item(i) for i in self._batch_get(keys)), key=lambda t: int(t["taskId"]))

    def result_chars(self, execution_id: str, task: Item) -> int | None:
        """Characters of the task's result as JSON text; None if it has no result."""
        if "resultJson" in task:
            return len(str(task["resultJson"]))
        chunks = int(task.get("resultChunks", 0))
        if not chunks:
            return None
        last = self._chunks(execution_id, task, chunks - 1, chunks)
        return (chunks - 1) * RESULT_CHUNK_CHARS + len(last)

    def result_slice(self, execution_id: str, task: Item, start: int, stop: int) -> str:
        """Characters [start, stop) of the task's result JSON text ('' for an empty range)."""
        if "resultJson" in task:
            return str(task["resultJson"])[start:stop]
        if stop <= start:
            return ""
        first, last = start // RESULT_CHUNK_CHARS, (stop - 1) // RESULT_CHUNK_CHARS + 1
        text = self._chunks(execution_id, task, first, min(last, int(task.get("resultChunks", 0))))
        offset = first * RESULT_CHUNK_CHARS
        return text[start - offset : stop - offset]

    def _chunks(self, execution_id: str, task: Item, first: int, stop: int) -> str:
        """Chunks [first, stop) of the task's current run, joined."""
        task_id, run = int(task["taskId"]), str(task.get("resultRun", ""))
        wanted = {result_sk(task_id, n, run): n for n in range(first, stop)}
        keys = [to_item({"PK": pk(execution_id), "SK": sk}) for sk in wanted]
        found = {str(i["SK"]): str(i["data"]) for i in map(from_item, self._batch_get(keys))}
        if len(found) != len(wanted):
            raise StoreError(f"task {task_id} of {execution_id}: result chunks missing")
        return "".join(found[sk] for sk in sorted(wanted, key=wanted.__getitem__))
