"""Why an execution ended as it did: the message and reason of its end, from its META, the state
machine's own error, or the status Step Functions reported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.errors import StartFailed
from ..domain.model import Reason, SfnStatus
from ..persistence.table import Item
from .views import timeout_source


def all_completed(meta: Item) -> bool:
    """Every task completed (none failed or skipped)."""
    return not (
        meta.get("failed") or meta.get("skipped") or len(meta.get("completed", ())) < int(meta["totalTasks"])
    )


def why_ended(status: SfnStatus, detail: Mapping[str, Any], meta: Item) -> tuple[str, Reason]:
    """(message, reason) of an execution Step Functions ended without Finalize."""
    said = f"{detail.get('error') or ''}: {detail.get('cause') or ''}".strip(": ")
    if status == SfnStatus.TIMED_OUT:
        return (
            "Step Functions timed out the execution (the state machine's TimeoutSeconds) before it "
            f"finished; its deadline was {meta.get('timeoutSeconds')}s ({timeout_source(meta)})",
            Reason.TIMEOUT,
        )
    if status == SfnStatus.ABORTED:
        return "Step Functions stopped the execution" + (f": {said}" if said else ""), Reason.ABORTED
    return "the state machine failed outside Finalize" + (f": {said}" if said else ""), Reason.INTERNAL


def why_failed(meta: Item, err: Mapping[str, Any] | None) -> tuple[str, str]:
    """(message, reason) of an execution that did not complete: the state machine's own error if
    it reported one, else its deadline, else the first task error."""
    if err:
        message = f"{err.get('Error', 'Error')}: {err.get('Cause', '')}".rstrip(": ")
        return message, Reason.START_FAILED if err.get("Error") == StartFailed.__name__ else Reason.INTERNAL
    if meta.get("stopReason") == Reason.TIMEOUT:
        return (
            f"the execution timed out after {meta.get('timeoutSeconds')}s ({timeout_source(meta)})",
            Reason.TIMEOUT,
        )
    return str(meta.get("firstError", "not every task completed")), Reason.TASK_FAILED
