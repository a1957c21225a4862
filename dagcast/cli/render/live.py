"""The live view of ``dagcast trace``: a ``TraceModel`` → a rich renderable, redrawn several times a second.

``render(model, now_ms, width)`` draws the execution at server time ``now_ms``: a header (id,
status, request, elapsed), a progress bar with counters and the connection's state, the DAG as a
list layered by dependency level — each task's state (waiting, running with a spinner and elapsed
time, completed with its duration, failed with its error, skipped/cancelled/timed out with the
reason) — and the final result or error once the execution has ended. It reads the clock only as
``now_ms``, so a render at a fixed time is fixed (the snapshot tests rely on it). Too many tasks
for the terminal are summed up per level rather than scrolled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from chalicelib.domain.model import ExecutionStatus, Reason, TaskStatus

from .model import Counters, TaskState, TraceModel
from .palette import COLOUR, ICON, SPINNER, SPINNER_FRAME_MS, STOPPED, execution_style, task_icon
from .text import duration, ids, short

RESULT_LINES: Final = 12  # the final result panel shows at most this many lines …
RESULT_CHARS: Final = 1_200  # … and characters
# What a task that had not finished shows once the execution has: it was still running (a cancel
# does not stop a running task), or it never ran.
INTERRUPTED: Final = "interrupted"
NOT_RUN: Final = "not run"


def render(
    model: TraceModel, now_ms: int, width: int = 100, max_rows: int | None = None, api_url: str = ""
) -> RenderableType:
    """The view at server time ``now_ms``, ``width`` cells wide: header, progress, the tasks by
    level (at most ``max_rows`` rows: beyond that finished tasks are summed up per level), and the
    final result or error once the execution has finished. ``api_url`` prefixes result links."""
    parts: list[RenderableType] = [*_header(model, now_ms, width), Text("")]
    parts.extend(_task_rows(model, now_ms, width, max_rows))
    if model.finished:
        parts.append(Text(""))
        parts.append(_outcome(model, api_url))
    return Group(*parts)


def _header(model: TraceModel, now_ms: int, width: int) -> list[Text]:
    status = model.status or "connecting"
    left = Text()
    left.append(model.execution_id or "execution", style="bold")
    left.append("  ")
    left.append(status, style=execution_style(status))
    if model.reason and model.finished and model.reason not in (Reason.TASK_FAILED, Reason.CANCELLED):
        left.append(f" ({model.reason})", style=execution_style(status))
    if model.original_request:
        left.append("  ")
        left.append(short(model.original_request, 60), style="italic")
    if model.finished and model.duration_ms is not None:
        took = f"took {duration(model.duration_ms)}"
    elif model.created_at is not None:
        took = f"{duration(now_ms - model.created_at)} so far"
    else:
        took = ""
    first = _spread(left, Text(took, style="dim"), width)
    c = model.counters()
    bar = _bar(c, max(10, min(40, width - 30)))
    pct = f"{100 * c.finished // c.total}%" if c.total else "0%"
    bar.append(f"  {c.finished}/{c.total} tasks  {pct:>4}")
    return [first, bar, _spread(_counts(c), _connection(model, now_ms), width)]


def _counts(c: Counters) -> Text:
    """``✔ 3 completed  ⠋ 1 running …``: running counts retrying tasks, skipped the cancelled."""
    counts = Text()
    for status, value in (
        (TaskStatus.COMPLETED, c.completed),
        (TaskStatus.RUNNING, c.running),
        (TaskStatus.WAITING, c.waiting),
        (TaskStatus.FAILED, c.failed),
        (TaskStatus.SKIPPED, c.skipped),
    ):
        if counts:
            counts.append("  ")
        counts.append(f"{ICON[status]} {value} {status}", style=COLOUR[status] if value else "dim")
    return counts


def _bar(c: Counters, width: int) -> Text:
    """━ completed (green), failed (red), skipped (yellow); ─ for what is left. Cumulative
    rounding: a finished execution always fills the bar."""
    bar = Text()
    if c.total <= 0:
        return bar.append("─" * width, style="dim")
    used = 0
    done = 0
    for count, status in (
        (c.completed, TaskStatus.COMPLETED),
        (c.failed, TaskStatus.FAILED),
        (c.skipped, TaskStatus.SKIPPED),
    ):
        done += count
        upto = round(width * done / c.total)
        bar.append("━" * (upto - used), style=COLOUR[status])
        used = upto
    return bar.append("─" * (width - used), style="dim")


def _connection(model: TraceModel, now_ms: int) -> Text:
    if model.finished or model.connection == "ended" or not model.status:  # not yet: the header says so
        return Text("")
    if model.connection == "live":
        quiet = now_ms - model.last_heard if model.last_heard is not None else 0
        label = "● live" + (f" · quiet for {duration(quiet)}" if quiet >= 20_000 else "")
        return Text(label, style="green" if quiet < 20_000 else "yellow")
    return Text(model.connection, style="yellow")


def _spread(left: Text, right: Text, width: int) -> Text:
    """``left`` and ``right`` on one line of ``width`` cells (``left`` cut first)."""
    room = width - right.cell_len - (2 if right.cell_len else 0)
    left = left.copy()
    left.truncate(max(1, room), overflow="ellipsis")
    gap = width - left.cell_len - right.cell_len
    return Text.assemble(left, " " * max(gap, 2 if right.cell_len else 0), right) if right.cell_len else left


class _Row(NamedTuple):
    level: str
    icon: Text
    task_id: str
    description: str
    deps: str
    time: str
    detail: Text


def _task_rows(model: TraceModel, now_ms: int, width: int, max_rows: int | None) -> list[Text]:
    if not model.tasks:
        c = model.counters()
        return [Text(f"{c.total} tasks; waiting for the first snapshot…" if c.total else "waiting…", "dim")]
    levels = model.levels() if model.structure_known else [sorted(model.tasks)]
    rows: list[_Row] = []
    total = len(model.tasks)
    if max_rows is None or total <= max_rows:
        for n, level in enumerate(levels):
            for i, tid in enumerate(level):
                rows.append(
                    _row(model, model.tasks[tid], now_ms, f"L{n}" if i == 0 and model.structure_known else "")
                )
    else:
        rows = _collapsed(model, levels, now_ms, max(3, max_rows))
    return _layout(rows, width)


def _collapsed(model: TraceModel, levels: list[list[int]], now_ms: int, max_rows: int) -> list[_Row]:
    """Too many tasks to list: the ones that are running, retrying or failed, then per level one
    line summing up the rest (runs of uneventful levels merged into one line)."""
    interesting = {TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.FAILED}
    budget = max(1, max_rows // 2)  # rows for single tasks; the rest for the summaries
    rows: list[_Row] = []
    pending: list[int] = []  # tasks of uneventful levels not written yet
    first_pending = 0

    def sum_up(tids: list[int], label: str, more: bool) -> None:
        if len(tids) == 1:  # a line either way: show the task itself
            rows.append(_row(model, model.tasks[tids[0]], now_ms, label))
        else:
            rows.append(_summary_row(model, tids, label, more))

    for n, level in enumerate(levels):
        hot = [t for t in level if model.tasks[t].status in interesting]
        if not hot:
            if not pending:
                first_pending = n
            pending.extend(level)
            continue
        if pending:
            sum_up(pending, f"L{first_pending}" + (f"-{n - 1}" if n - 1 > first_pending else ""), False)
            pending = []
        show = hot[:budget]
        budget -= len(show)
        for i, tid in enumerate(show):
            rows.append(_row(model, model.tasks[tid], now_ms, f"L{n}" if i == 0 else ""))
        shown = set(show)
        rest = [t for t in level if t not in shown]
        if rest:
            sum_up(rest, "" if show else f"L{n}", bool(show))
    if pending:
        last = len(levels) - 1
        sum_up(pending, f"L{first_pending}" + (f"-{last}" if last > first_pending else ""), False)
    if len(rows) > max_rows:
        hidden = len(rows) - (max_rows - 1)
        rows = rows[: max_rows - 1]
        rows.append(_Row("", Text("…", "dim"), "", f"{hidden} more lines", "", "", Text("")))
    return rows


def _summary_row(model: TraceModel, tids: list[int], label: str, more: bool) -> _Row:
    by: dict[str, int] = {}
    for t in tids:
        status = model.tasks[t].status
        by[status] = by.get(status, 0) + 1
    detail = Text()
    for status in (
        TaskStatus.COMPLETED,
        TaskStatus.RUNNING,
        TaskStatus.RETRYING,
        TaskStatus.WAITING,
        TaskStatus.FAILED,
        TaskStatus.SKIPPED,
        TaskStatus.CANCELLED,
    ):
        if by.get(status):
            if detail:
                detail.append("  ")
            icon, style = task_icon(status)
            detail.append(f"{icon} {by[status]} {status}", style=style)
    what = f"{len(tids)} {'more' if more else 'tasks'}"
    return _Row(label, Text("…", "dim"), "", what, "", "", detail)


def _row(model: TraceModel, task: TaskState, now_ms: int, level: str) -> _Row:
    status = task.status
    if model.finished and not task.finished:  # cancelled (or the state machine failed) meanwhile
        status = INTERRUPTED if status in (TaskStatus.RUNNING, TaskStatus.RETRYING) else NOT_RUN
    icon_char, style = task_icon(status)
    if status == TaskStatus.RUNNING:
        icon_char = SPINNER[(now_ms // SPINNER_FRAME_MS) % len(SPINNER)]
        style = f"bold {COLOUR[TaskStatus.RUNNING]}"
    deps = f"← {ids(task.dependencies)}" if task.dependencies else ""
    time_text, detail = _DETAIL.get(status, _waiting)(model, task, now_ms)
    description = task.description or task.action
    return _Row(level, Text(icon_char, style=style), str(task.task_id), description, deps, time_text, detail)


# The time column and the detail of a task's row, by the status it is shown in.
_Detail = Callable[[TraceModel, TaskState, int], tuple[str, Text]]


def _completed(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    detail = Text()
    if task.has_result:
        detail.append("→ ", style="dim")
        detail.append(short(task.result, 200))
        if task.result_truncated:
            detail.append(" (cut)", style="dim")
    if task.attempt > 1:
        detail.append(f" (attempt {task.attempt})", style="dim")
    return duration(task.duration_ms), detail


def _running(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    since = task.attempt_started_at if task.attempt_started_at is not None else task.started_at
    style = COLOUR[TaskStatus.RUNNING]
    detail = Text().append(TaskStatus.RUNNING, style=style)
    if task.attempt > 1:
        detail.append(f" (attempt {task.attempt})", style=style)
    lines = [line for line in task.text.splitlines() if line.strip()]
    if lines:  # its live text (substep.progress): the last line, its end
        detail.append(" · ", style="dim").append(
            short("…" + lines[-1][-79:] if len(lines[-1]) > 80 else lines[-1], 80)
        )
    return (duration(now_ms - since) if since is not None else ""), detail


def _retrying(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    style = COLOUR[TaskStatus.RETRYING]
    label = "timed out" if task.reason == Reason.TIMEOUT else TaskStatus.FAILED
    detail = Text().append(f"attempt {task.attempt} {label}: ", style=style)
    detail.append(short(task.error or "", 120))
    if task.retry_at is not None and task.retry_at > now_ms:
        detail.append(f" · retry in {duration(task.retry_at - now_ms)}", style=style)
    else:
        detail.append(" · retrying", style=style)
    return (duration(now_ms - task.started_at) if task.started_at is not None else ""), detail


def _failed(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    if task.reason == Reason.UPSTREAM:
        said = "not run: "
    elif task.reason == Reason.TIMEOUT:
        said = "timed out: "
    else:
        said = "failed: "
    detail = Text().append(said, style=COLOUR[TaskStatus.FAILED])
    detail.append(short(task.error or "", 200))
    if task.attempt > 1 and task.reason != Reason.UPSTREAM:
        detail.append(f" (attempt {task.attempt})", style="dim")
    return duration(task.duration_ms), detail


def _not_started(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    """Skipped or cancelled: the status, and why (the error without its "not started: ")."""
    why = (task.error or "").removeprefix("not started: ")
    detail = Text().append(task.status, style=COLOUR[task.status])
    if why:
        detail.append(": " + short(why, 200))
    return duration(task.duration_ms), detail


def _stopped(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    """The execution ended before the task did (interrupted) or before it started (not run)."""
    ended = "was cancelled" if model.status == ExecutionStatus.CANCELLED else model.status
    # a running task is not stopped by a cancel: it may still finish (the snapshot will say)
    running = task.status in (TaskStatus.RUNNING, TaskStatus.RETRYING)
    said = "still running when" if running else "not run:"
    return duration(task.duration_ms), Text().append(f"{said} the execution {ended}", style=STOPPED[1])


def _waiting(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    """Waiting (or a status this CLI does not know): for which dependencies, if any."""
    style = COLOUR[TaskStatus.WAITING]
    open_deps = [d for d in task.dependencies if d in model.tasks and not model.tasks[d].finished]
    if open_deps:
        return "", Text().append(f"waiting for {ids(open_deps)}", style=style)
    if model.structure_known:
        return "", Text().append(TaskStatus.WAITING if not task.dependencies else "ready", style=style)
    return "", Text().append(TaskStatus.WAITING, style=style)


def _awaiting(model: TraceModel, task: TaskState, now_ms: int) -> tuple[str, Text]:
    """An approval task: its question, and the command that answers it."""
    detail = Text().append("awaiting decision", style=COLOUR[TaskStatus.AWAITING_DECISION])
    if task.prompt:
        detail.append(": " + short(task.prompt, 120))
    detail.append(f" — dagcast approve {model.execution_id or 'ID'} {task.task_id} [--reject]", style="dim")
    return "", detail


_DETAIL: Final[dict[str, _Detail]] = {
    TaskStatus.COMPLETED: _completed,
    TaskStatus.RUNNING: _running,
    TaskStatus.RETRYING: _retrying,
    TaskStatus.AWAITING_DECISION: _awaiting,
    TaskStatus.FAILED: _failed,
    TaskStatus.SKIPPED: _not_started,
    TaskStatus.CANCELLED: _not_started,
    INTERRUPTED: _stopped,
    NOT_RUN: _stopped,
}


def _layout(rows: list[_Row], width: int) -> list[Text]:
    """Rows in aligned columns, one line each, cut to ``width``."""
    if not rows:
        return []
    w_level = max(len(r.level) for r in rows)
    w_id = max(len(r.task_id) for r in rows)
    w_desc = min(32, max(len(r.description) for r in rows))
    w_deps = min(14, max(len(r.deps) for r in rows))
    w_time = max(len(r.time) for r in rows)
    lines = []
    for r in rows:
        line = Text()
        if w_level:
            line.append(r.level.ljust(w_level), style="dim")
            line.append(" ")
        line.append_text(r.icon)
        line.append(" ")
        line.append(r.task_id.rjust(w_id), style="bold")
        line.append(" ")
        line.append_text(_fit(r.description, w_desc))
        if w_deps:
            line.append(" ")
            line.append_text(_fit(r.deps, w_deps, "dim"))
        if w_time:
            line.append(" ")
            line.append(r.time.rjust(w_time))
        line.append("  ")
        line.append_text(r.detail)
        line.truncate(width, overflow="ellipsis")
        line.rstrip()
        lines.append(line)
    return lines


def _fit(text: str, width: int, style: str = "") -> Text:
    out = Text(text, style=style)
    out.truncate(width, overflow="ellipsis", pad=True)
    return out


def _outcome(model: TraceModel, api_url: str) -> RenderableType:
    if model.status == ExecutionStatus.COMPLETED:
        body = Text(result_text(model.final_result) if model.has_final_result else "(no result)")
        if model.final_truncated:
            size = f"{model.final_bytes:,} bytes" if model.final_bytes else "more"
            body.append(f"\n… cut here; the whole result ({size}): ", style="dim")
            body.append(f"{api_url}{model.final_url or ''}", style="dim underline")
        return Panel(body, title="result", title_align="left", border_style=COLOUR[ExecutionStatus.COMPLETED])
    if model.status == ExecutionStatus.CANCELLED:
        title = f"{ExecutionStatus.CANCELLED}"
    elif model.reason in (None, Reason.TASK_FAILED):
        title = f"{ExecutionStatus.FAILED}"
    else:  # not because a task failed (the execution timed out, …): say why
        title = f"{ExecutionStatus.FAILED} ({model.reason})"
    body = Text(model.error or "(no error message)")
    return Panel(body, title=title, title_align="left", border_style=COLOUR[ExecutionStatus.FAILED])


def result_text(value: Any, max_lines: int = RESULT_LINES, max_chars: int = RESULT_CHARS) -> str:
    """A result for the final panel: strings as they are, anything else as indented JSON; cut after
    ``max_lines`` lines or ``max_chars`` characters, saying how much was left out."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    lines = text.splitlines() or [""]
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) >= max_lines or size + len(line) > max_chars:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one very long line
        kept = [lines[0][:max_chars] + "…"]
    left = len(lines) - len(kept)
    if left > 0:
        kept.append(f"… {left} more line{'s' if left != 1 else ''}")
    elif len(kept) == 1 and len(lines[0]) > max_chars and not kept[0].endswith("…"):
        kept[0] = lines[0][:max_chars] + "…"
    return "\n".join(kept)
