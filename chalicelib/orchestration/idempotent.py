"""Idempotent submission: an ``Idempotency-Key`` sent again with the same body answers with the
execution its first request created, for 24 hours, and starts nothing.

The key is claimed before anything is written (a conditional put: one claim per key and scope),
with the hash of the body's canonical JSON and the id the new execution will have. Then:

- the same key, the same body, the execution created → that execution's id (the API answers
  202 as the first time, with a fresh stream token);
- the same key, another body → IdempotencyKeyReused (422), whether or not the first is done;
- the same key while the first request is still creating its execution → IdempotencyInProgress
  (409, Retry-After: 1);
- a claim still "creating" after ``STALE_CLAIM_MS`` belongs to a request that died (the API
  function runs 60 s at most): if its execution exists the claim is completed and answered
  with it; if not, the key is taken over (conditionally: one taker) and created afresh.

A first request that fails (a store error, Step Functions refusing the start) releases its claim:
the client's retry with the same key tries again. Not here: the claim items (persistence/idempotency.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..domain.dag import Job
from ..domain.errors import ExecutionNotFound, IdempotencyInProgress, IdempotencyKeyReused
from ..domain.model import now_ms
from ..persistence.idempotency import Claim, IdempotencyRecords
from ..persistence.keys import DEFAULT_SCOPE
from ..persistence.table import Item
from .engine import Orchestrator
from .submission import new_execution_id

# Longer than the API function may run (lambda_timeout 60 s in .chalice/config.json): a claim this
# old and not done was left by a request that no longer runs.
STALE_CLAIM_MS: Final = 120_000


class IdempotentSubmit:
    def __init__(
        self,
        records: IdempotencyRecords,
        orchestrator: Orchestrator,
        read_meta: Callable[[str], Item],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._records = records
        self._orchestrator = orchestrator
        self._read_meta = read_meta
        self._now = clock

    def submit(self, job: Job, key: str, body_hash: str, scope: str = DEFAULT_SCOPE) -> str:
        """The id of the execution ``key`` stands for: created now, or by its first request."""
        execution_id = new_execution_id()
        held = self._records.claim(key, body_hash, execution_id, self._now(), scope)
        if held is None:
            return self._create(job, key, execution_id, scope)
        if held.body_hash != body_hash:
            raise IdempotencyKeyReused(key)
        if held.done:
            return held.execution_id
        if self._now() - held.claimed_at < STALE_CLAIM_MS:
            raise IdempotencyInProgress(key)
        return self._after_stale(job, key, held, execution_id, scope)

    def _after_stale(self, job: Job, key: str, stale: Claim, execution_id: str, scope: str) -> str:
        """The claim's request died while creating: its execution, if it got as far, else a new one."""
        try:
            self._read_meta(stale.execution_id)
        except ExecutionNotFound:
            if self._records.take_over(key, stale, execution_id, self._now(), scope):
                return self._create(job, key, execution_id, scope)
            raise IdempotencyInProgress(key) from None  # another retry took it over first
        self._records.mark_done(key, stale.execution_id, scope)
        return stale.execution_id

    def _create(self, job: Job, key: str, execution_id: str, scope: str) -> str:
        try:
            self._orchestrator.submit(job, execution_id, scope)
        except Exception:
            self._records.release(key, execution_id, scope)
            raise
        self._records.mark_done(key, execution_id, scope)
        return execution_id
