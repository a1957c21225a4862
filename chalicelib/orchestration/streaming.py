"""An attempt's progress wired to the store: the emitter a kind's ``ctx`` writes through.

Each write is the run's claim and the snapshot's text (``record_partial_text``, conditional: a run
that may not write stops there), then the ``substep.progress`` event under a key of its own (this
run, its n-th event), appended without waiting (``wait=False``: the event is queued at worst and
still comes before anything the runner appends next, the attempt's outcome included).

Not here: coalescing and redaction (chalicelib/progress.py), when the attempt ends (attempt.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..domain import events as ev
from ..progress import Coalescing, ProgressEmitter
from ..redact import Redactor
from .ports import OrchestrationStore


class StoreWriter:
    """``ProgressWriter`` for one run of one attempt."""

    def __init__(self, store: OrchestrationStore, execution_id: str, task_id: int, attempt: int) -> None:
        self._store = store
        self._at = (execution_id, task_id, attempt)
        self.run = uuid.uuid4().hex[:16]
        self._n = 0

    def write(
        self, delta: str | None, offset: int, length: int, tail: str, progress: dict[str, Any] | None
    ) -> bool:
        execution_id, task_id, attempt = self._at
        if not self._store.record_partial_text(execution_id, task_id, attempt, self.run, tail, length):
            return False
        self._n += 1
        self._store.append_event(
            execution_id,
            f"substep.progress#{task_id}#{attempt}#{self.run}#{self._n}",
            ev.substep_progress(task_id, attempt, delta, offset if delta else None, progress),
            wait=False,
        )
        return True


def attempt_emitter(
    store: OrchestrationStore,
    execution_id: str,
    task_id: int,
    attempt: int,
    redactor: Any,
    rules: Coalescing,
) -> ProgressEmitter:
    """The emitter of one run of an attempt. ``redactor``: a callable giving the attempt's redactor
    (its resolved secrets are known once the kind starts to write)."""

    def running() -> int:
        return len(store.get_meta(execution_id).get("running", ()))

    def make_redactor() -> Redactor:
        made: Redactor = redactor()
        return made

    return ProgressEmitter(StoreWriter(store, execution_id, task_id, attempt), make_redactor, running, rules)
