"""The tables of ``dagcast ls`` (recent executions) and ``dagcast show`` (one execution: its
summary, its tasks by level, its event history).

Printed once, not live. Piped, they have no colours and are never cut (a table is as wide as its
content; long texts are already shortened); on a terminal the flexible columns give way first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chalicelib.domain.events import EXECUTION_UPDATED
from chalicelib.domain.model import ExecutionStatus, FailurePolicy, Reason, TaskStatus, now_ms

from .lines import describe
from .model import TraceModel
from .palette import COLOUR, colour, execution_colour, execution_style
from .text import duration, short

Execution = Mapping[str, Any]  # an execution as the API answers it (its list entry or snapshot)


def console() -> Console:
    # Piped: no colours, and never cut (see the module docstring); on a terminal, its width.
    return Console() if sys.stdout.isatty() else Console(width=1000)


def _flex(text: str, style: str = "") -> Text:
    """A cell of a column that may shrink: one line, cut with … (the column itself is wrapable,
    which is what lets rich narrow it before the fixed ones)."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _tasks_done(e: Execution) -> str:
    text = f"{e.get('completedTasks', 0)}/{e.get('totalTasks', 0)}"
    counted = (("failedTasks", TaskStatus.FAILED), ("skippedTasks", TaskStatus.SKIPPED))
    extra = [f"{e[k]} {label}" for k, label in counted if e.get(k)]
    if e.get("status") == ExecutionStatus.RUNNING and e.get("runningTasks"):
        extra.append(f"{e['runningTasks']} running")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _took(e: Execution) -> str:
    if isinstance(e.get("durationMs"), int):
        return duration(e["durationMs"])
    if e.get("status") == ExecutionStatus.RUNNING and isinstance(e.get("createdAt"), int):
        return duration(now_ms() - e["createdAt"]) + " so far"
    return ""


# ------------------------------------------------------------------------------------------ ls


def print_executions(executions: Sequence[Execution], api_url: str) -> None:
    """``dagcast ls``: one row per execution, newest first (the API's order)."""
    out = console()
    if not executions:
        out.print(f"no executions at {api_url}")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("execution", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("tasks", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    table.add_column("request", max_width=50)
    for e in executions:
        status = str(e.get("status", ""))
        style = execution_colour(status)
        table.add_row(
            str(e.get("executionId", "")),
            f"[{style}]{status}[/]" if style else status,
            _when(e.get("createdAt")),
            _tasks_done(e),
            _took(e),
            _flex(short(e.get("originalRequest") or "", 50)),
        )
    out.print(table)


# ---------------------------------------------------------------------------------------- show


def print_execution(
    snapshot: Execution, events: Sequence[Mapping[str, Any]], since: int, api_url: str
) -> None:
    """``dagcast show``: the execution's summary, its tasks, then its events after seq ``since``."""
    out = console()
    _print_summary(out, snapshot, api_url)
    out.print()
    out.print("tasks", style="bold")
    out.print(_tasks_table(snapshot))
    out.print()
    if not events:
        out.print(f"no events after #{since}", style="dim")
        return
    out.print(f"events after #{since}" if since else "events", style="bold", highlight=False)
    out.print(_events_table(events, snapshot.get("createdAt")))


def _print_summary(out: Console, snapshot: Execution, api_url: str) -> None:
    """Id, status and request; one dim line of facts; the result or the error."""
    status = str(snapshot.get("status", ""))
    head = Text()
    head.append(str(snapshot.get("executionId", "")), style="bold")
    head.append("  ")
    head.append(status, style=execution_style(status))
    if snapshot.get("originalRequest"):
        head.append("  " + short(snapshot["originalRequest"], 80), style="italic")
    out.print(head, no_wrap=True, overflow="ellipsis")
    out.print(" · ".join(_facts(snapshot)), style="dim", highlight=False)
    if status == ExecutionStatus.COMPLETED and "finalResult" in snapshot:
        result = Text("result: ", style=COLOUR[status]).append(short(snapshot["finalResult"], 300))
        out.print(result, no_wrap=True, overflow="ellipsis")
        if snapshot.get("finalResultTruncated"):
            out.print(f"  (cut; whole at {api_url}{snapshot.get('finalResultUrl', '')})", style="dim")
    elif snapshot.get("error"):
        reason = f" ({snapshot['reason']})" if snapshot.get("reason") else ""
        out.print(
            Text(f"error{reason}: ", style=COLOUR[ExecutionStatus.FAILED]).append(str(snapshot["error"]))
        )


def _facts(snapshot: Execution) -> list[str]:
    facts = [f"created {_when(snapshot.get('createdAt'))}", f"tasks {_tasks_done(snapshot)}"]
    took = _took(snapshot)
    if took:
        facts.append(f"took {took}" if "so far" not in took else took)
    facts.append(f"policy {snapshot.get('failurePolicy', FailurePolicy.FAIL_FAST)}")
    if snapshot.get("maxConcurrency"):
        facts.append(f"max {snapshot['maxConcurrency']} at a time")
    facts.append(f"last event #{snapshot.get('seq', 0)}")
    return facts


def _tasks_table(snapshot: Execution) -> Table:
    model = TraceModel()
    model.apply({**snapshot, "type": EXECUTION_UPDATED, "snapshot": True})
    levels = {tid: n for n, level in enumerate(model.levels()) for tid in level}
    table = Table(box=None, header_style="bold")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("level", justify="right", no_wrap=True)
    table.add_column("description", max_width=40)
    table.add_column("action", no_wrap=True)
    table.add_column("deps", max_width=20)
    table.add_column("status", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("result / error", max_width=60)
    for view in snapshot.get("tasks", []):
        status = str(view.get("status", ""))
        reason = view.get("reason")
        # "failed (error)" says nothing "failed" does not; nor does "skipped (skipped)"
        label = status + (f" ({reason})" if reason and reason not in (Reason.ERROR, status) else "")
        outcome = short(view["result"], 60) if "result" in view else short(view.get("error") or "", 60)
        table.add_row(
            str(view.get("taskId")),
            str(levels.get(int(view["taskId"]), "")),
            _flex(short(view.get("description") or "", 40)),
            str(view.get("action", "")),
            _flex(", ".join(str(d) for d in view.get("dependencies", []))),
            Text(label, style=colour(status)),
            str(view.get("attempt", "")),
            duration(view.get("durationMs")),
            _flex(outcome),
        )
    return table


def _events_table(events: Sequence[Mapping[str, Any]], created: Any) -> Table:
    """seq, time since the execution was created, type, and what the event says."""
    table = Table(box=None, header_style="bold")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("")
    for event in events:
        at = event.get("timestamp")
        offset = f"+{(at - created) / 1000:.2f}s" if isinstance(at, int) and isinstance(created, int) else ""
        table.add_row(str(event.get("seq", "")), offset, str(event["type"]), _flex(describe(event)))
    return table
