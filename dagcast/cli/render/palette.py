"""How a status looks, in every view: its colour and its icon.

The live view, the ``ls`` table and the ``show`` tables all colour a status from here, so a
completed task is the same green everywhere and a new status gets its look in one place. Statuses
are ``ExecutionStatus`` and ``TaskStatus`` members; both are ``StrEnum``s whose shared members
(running, completed, failed, cancelled) are the same strings, so one map serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from chalicelib.domain.model import ExecutionStatus, TaskStatus

# rich's "dots" spinner; the live view picks the frame from the clock, so a render at a fixed
# time is fixed.
SPINNER: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPINNER_FRAME_MS: Final = 80

COLOUR: Final[Mapping[str, str]] = {
    TaskStatus.WAITING: "dim",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.RETRYING: "magenta",
    TaskStatus.AWAITING_DECISION: "blue",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.SKIPPED: "yellow",
    TaskStatus.CANCELLED: "yellow",
}
ICON: Final[Mapping[str, str]] = {
    TaskStatus.WAITING: "·",
    TaskStatus.RUNNING: SPINNER[0],
    TaskStatus.RETRYING: "↻",
    TaskStatus.AWAITING_DECISION: "?",
    TaskStatus.COMPLETED: "✔",
    TaskStatus.FAILED: "✘",
    TaskStatus.SKIPPED: "⊘",
    TaskStatus.CANCELLED: "⊘",
}
# A task the execution ended around without it finishing (still running, or never run): shown
# as a skip is, since neither will change any more.
STOPPED: Final = (ICON[TaskStatus.SKIPPED], COLOUR[TaskStatus.SKIPPED])
_EXECUTION_STATUSES: Final = frozenset(ExecutionStatus)


def colour(status: str) -> str:
    """A task's or an execution's status colour; dim for one this CLI does not know."""
    return COLOUR.get(status, "dim")


def execution_colour(status: str) -> str | None:
    """The colour of an execution's status; None for anything else (it is shown plain)."""
    return COLOUR[status] if status in _EXECUTION_STATUSES else None


def execution_style(status: str) -> str:
    """An execution's status as a heading shows it: bold in its colour (dim while unknown, e.g.
    "connecting" before the first snapshot)."""
    found = execution_colour(status)
    return f"bold {found}" if found else "dim"


def task_icon(status: str) -> tuple[str, str]:
    """A task's icon in the live list, with its style; a failure stands out in bold."""
    if status not in ICON:
        return STOPPED
    if status == TaskStatus.FAILED:
        return ICON[status], f"bold {COLOUR[status]}"
    return ICON[status], COLOUR[status]
