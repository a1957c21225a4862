"""What ``dagcast trace`` shows: an execution's events → a model of its state → a view.

``TraceModel`` is pure — events in, state out; no I/O and no clock (every time is passed in, in
the server's milliseconds since the epoch) — so a known event sequence always gives the same
state. Three views read it or the events:

- ``render(model, now_ms, width)``: the live terminal view (rich): the DAG as a list layered by
  dependency level, each task's state (waiting, running with a spinner and elapsed time, completed
  with its duration, failed with its error, skipped/cancelled/timed out with the reason), a
  progress bar and counters, and the final result or error at the end;
- ``format_event(event, elapsed)``: one plain line per event (when stdout is not a terminal);
- ``json_line(event)``: one JSON line per event (``--json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

TERMINAL_TYPES = frozenset({"execution.completed", "execution.failed"})
FINISHED_TASK = frozenset({"completed", "failed", "skipped", "cancelled"})
FINISHED_EXECUTION = frozenset({"completed", "failed", "cancelled"})
# rich's "dots" spinner; the frame is picked from the clock, so a render at a fixed time is fixed.
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPINNER_FRAME_MS = 80
ICONS = {
    "waiting": ("·", "dim"),
    "completed": ("✔", "green"),
    "failed": ("✘", "bold red"),
    "skipped": ("⊘", "yellow"),
    "cancelled": ("⊘", "yellow"),
    "retrying": ("↻", "magenta"),
}
STATUS_STYLES = {
    "running": "bold cyan",
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "bold yellow",
}
RESULT_LINES = 12  # the final result panel shows at most this many lines …
RESULT_CHARS = 1_200  # … and characters


# ------------------------------------------------------------------------------------------- model


@dataclass
class TaskState:
    task_id: int
    description: str = ""
    action: str = ""
    dependencies: tuple[int, ...] = ()
    status: str = "waiting"  # waiting | running | retrying | completed | failed | skipped | cancelled
    attempt: int = 1
    started_at: int | None = None  # the first attempt's start (ms)
    attempt_started_at: int | None = None  # the current attempt's start (ms)
    finished_at: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    reason: str | None = None  # error | timeout | skipped | upstream | cancelled
    retry_at: int | None = None  # when the next attempt starts (retrying)
    upstream: tuple[int, ...] = ()
    has_result: bool = False
    result: Any = None
    result_truncated: bool = False
    result_url: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_TASK


class Counters(NamedTuple):
    total: int
    completed: int
    failed: int
    skipped: int  # skipped and cancelled, as the API counts them
    running: int  # running and retrying
    waiting: int

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.skipped


@dataclass
class TraceModel:
    """An execution's state, from its SSE snapshot and events (applied idempotently by seq)."""

    execution_id: str = ""
    status: str = ""  # "" until the first snapshot or event; then running | completed | failed | cancelled
    original_request: str = ""
    created_at: int | None = None
    finished_at: int | None = None
    duration_ms: int | None = None
    total: int = 0
    reported: dict[str, int] = field(default_factory=dict)  # the counters of the last execution.* event
    tasks: dict[int, TaskState] = field(default_factory=dict)
    structure_known: bool = False  # a snapshot gave every task and its dependencies
    seq: int = 0  # the last event applied
    has_final_result: bool = False
    final_result: Any = None
    final_truncated: bool = False
    final_bytes: int | None = None
    final_url: str | None = None
    error: str | None = None
    reason: str | None = None
    terminal_seen: bool = False
    last_heard: int | None = None  # server time (ms) of the last message, heartbeats included
    clock_offset: int | None = None  # local clock − server clock (ms), estimated from receipts
    connection: str = "connecting"  # connecting | live | reconnecting … | ended
    applied: int = 0
    ignored: int = 0

    # ---------------------------------------------------------------- applying events

    def apply(self, event: Mapping[str, Any], received_ms: int | None = None) -> bool:
        """Apply one SSE message; False if it changed nothing (a heartbeat, or a seq already seen)."""
        kind = str(event.get("type", ""))
        stamp = event.get("timestamp")
        if isinstance(stamp, int):
            if received_ms is not None:
                sample = received_ms - stamp
                self.clock_offset = sample if self.clock_offset is None else min(self.clock_offset, sample)
            self.last_heard = stamp if self.last_heard is None else max(self.last_heard, stamp)
        if not self.execution_id and event.get("executionId"):
            self.execution_id = str(event["executionId"])
        if kind == "heartbeat":
            return False
        if event.get("snapshot"):
            self._apply_snapshot(event)
            self.applied += 1
            return True
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.seq:
            self.ignored += 1
            return False
        self.seq = seq
        self.applied += 1
        at = stamp if isinstance(stamp, int) else None
        if kind == "execution.created":
            self.total = int(event.get("totalTasks", self.total))
            self.original_request = str(event.get("originalRequest", self.original_request))
            if self.created_at is None:
                self.created_at = at
            self.status = self.status or "running"
        elif kind == "substep.started":
            task = self._task(event)
            task.status = "running"
            task.attempt = int(event.get("attempt", task.attempt))
            task.attempt_started_at = at
            task.started_at = task.started_at if task.started_at is not None else at
            task.retry_at = None
            self.status = self.status or "running"
        elif kind == "substep.completed":
            task = self._task(event)
            task.status = "completed"
            task.attempt = int(event.get("attempt", task.attempt))
            task.finished_at = at
            task.duration_ms = _int(event.get("durationMs"))
            task.retry_at = None
            task.error = None
            _result_into(task, event)
        elif kind == "substep.failed":
            self._apply_failed(self._task(event), event, at)
        elif kind == "execution.updated":
            self._report(event)
            self.status = str(event.get("status", self.status or "running"))
        elif kind in TERMINAL_TYPES:
            self._report(event)
            self.terminal_seen = True
            self.status = str(event.get("status", "completed" if kind == "execution.completed" else "failed"))
            self.duration_ms = _int(event.get("durationMs"))
            self.finished_at = at
            if kind == "execution.completed":
                self._final_result_from(event)
            else:
                self.error = event.get("error")
                self.reason = event.get("reason")
        return True

    def _apply_failed(self, task: TaskState, event: Mapping[str, Any], at: int | None) -> None:
        reason = str(event.get("reason", "error"))
        task.reason = reason
        task.error = str(event.get("error", ""))
        if "attempt" in event:
            task.attempt = int(event["attempt"])
        if event.get("willRetry"):
            task.status = "retrying"
            wait = event.get("retryInSeconds")
            task.retry_at = (
                at + int(wait * 1000) if at is not None and isinstance(wait, int | float) else None
            )
            return
        task.retry_at = None
        task.finished_at = at
        task.duration_ms = _int(event.get("durationMs"))
        task.upstream = tuple(int(u) for u in event.get("upstreamTaskIds", ()))
        if reason == "skipped" or (reason == "timeout" and task.error.startswith("not started")):
            task.status = "skipped"
        elif reason == "cancelled":
            task.status = "cancelled"
        else:  # error, timeout (it ran), upstream
            task.status = "failed"

    def _apply_snapshot(self, snap: Mapping[str, Any]) -> None:
        seq = snap.get("seq")
        if isinstance(seq, int):
            self.seq = max(self.seq, seq)
        self.execution_id = str(snap.get("executionId", self.execution_id))
        self.status = str(snap.get("status", self.status))
        self.original_request = str(snap.get("originalRequest", self.original_request))
        self.created_at = _int(snap.get("createdAt")) or self.created_at
        self.finished_at = _int(snap.get("finishedAt"))
        self.duration_ms = _int(snap.get("durationMs"))
        self.error = snap.get("error")
        self.reason = snap.get("reason")
        self._report(snap)
        self._final_result_from(snap)
        if "tasks" in snap:
            self.tasks = {}
            for view in snap["tasks"]:
                task = task_from_view(view)
                self.tasks[task.task_id] = task
            self.structure_known = True
            self.total = max(self.total, len(self.tasks))

    def _report(self, event: Mapping[str, Any]) -> None:
        for key in ("totalTasks", "completedTasks", "failedTasks", "skippedTasks", "runningTasks"):
            if isinstance(event.get(key), int):
                self.reported[key] = int(event[key])
        if "totalTasks" in self.reported:
            self.total = self.reported["totalTasks"]

    def _final_result_from(self, event: Mapping[str, Any]) -> None:
        if "finalResult" in event:
            self.has_final_result = True
            self.final_result = event["finalResult"]
            self.final_truncated = bool(event.get("finalResultTruncated"))
            self.final_bytes = _int(event.get("finalResultBytes"))
            self.final_url = event.get("finalResultUrl")

    def _task(self, event: Mapping[str, Any]) -> TaskState:
        task_id = int(event["taskId"])
        task = self.tasks.get(task_id)
        if task is None:  # no snapshot told us about it (dependencies unknown)
            task = self.tasks[task_id] = TaskState(task_id)
        if event.get("description") and not task.description:
            task.description = str(event["description"])
        return task

    # ---------------------------------------------------------------- reading the state

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_EXECUTION

    def counters(self) -> Counters:
        """From the tasks when every task is known, else from the last reported counters."""
        total = max(self.total, len(self.tasks))
        if self.tasks and len(self.tasks) >= total:
            by = [t.status for t in self.tasks.values()]
            completed, failed = by.count("completed"), by.count("failed")
            skipped = by.count("skipped") + by.count("cancelled")
            running = by.count("running") + by.count("retrying")
            return Counters(
                total, completed, failed, skipped, running, total - completed - failed - skipped - running
            )
        # Not every task is known (no snapshot): what the tasks seen say, or the last counters the
        # server reported if they say more; the tasks not seen yet are waiting.
        by = [t.status for t in self.tasks.values()]
        r = self.reported
        completed = max(r.get("completedTasks", 0), by.count("completed"))
        failed = max(r.get("failedTasks", 0), by.count("failed"))
        skipped = max(r.get("skippedTasks", 0), by.count("skipped") + by.count("cancelled"))
        running = by.count("running") + by.count("retrying") if by else r.get("runningTasks", 0)
        waiting = max(0, total - completed - failed - skipped - running)
        return Counters(total, completed, failed, skipped, running, waiting)

    def levels(self) -> list[list[int]]:
        """Task ids by dependency level: 0 = no dependencies, n = 1 + the deepest dependency's level."""
        ids = sorted(self.tasks)
        deps = {t: [d for d in self.tasks[t].dependencies if d in self.tasks] for t in ids}
        children: dict[int, list[int]] = {t: [] for t in ids}
        pending = {t: len(set(deps[t])) for t in ids}
        for t in ids:
            for d in set(deps[t]):
                children[d].append(t)
        level = {t: 0 for t in ids if pending[t] == 0}
        queue = [t for t in ids if pending[t] == 0]
        for t in queue:  # Kahn: a task is placed once all its dependencies are
            for c in children[t]:
                level[c] = max(level.get(c, 0), level[t] + 1)
                pending[c] -= 1
                if pending[c] == 0:
                    queue.append(c)
        deepest = max(level.values(), default=-1)
        out: list[list[int]] = [[] for _ in range(deepest + 1)]
        for t in ids:
            if t in level and pending[t] == 0:
                out[level[t]].append(t)
        leftover = [t for t in ids if pending[t] != 0]  # only on a cycle, which jobs cannot have
        if leftover:
            out.append(leftover)
        return out

    def server_now(self, local_ms: int) -> int:
        """The server's clock now, by the offset seen on receipts (local clock if none yet)."""
        return local_ms - (self.clock_offset or 0)

    def exit_code(self) -> int:
        return 0 if self.status == "completed" else 1


def task_from_view(view: Mapping[str, Any]) -> TaskState:
    """A task of the snapshot (GET /api/v1/dag-executions/{id}, the SSE snapshot)."""
    task = TaskState(
        task_id=int(view["taskId"]),
        description=str(view.get("description", "")),
        action=str(view.get("action", "")),
        dependencies=tuple(int(d) for d in view.get("dependencies", ())),
        status=str(view.get("status", "waiting")),
        attempt=int(view.get("attempt", 1)),
        started_at=_int(view.get("startedAt")),
        finished_at=_int(view.get("finishedAt")),
        duration_ms=_int(view.get("durationMs")),
        error=view.get("error"),
        reason=view.get("reason"),
        upstream=tuple(int(u) for u in view.get("upstreamTaskIds", ())),
    )
    task.attempt_started_at = task.started_at if task.attempt == 1 else None
    _result_into(task, view)
    return task


def _result_into(task: TaskState, fields: Mapping[str, Any]) -> None:
    if "result" in fields:
        task.has_result = True
        task.result = fields["result"]
        task.result_truncated = bool(fields.get("resultTruncated"))
        task.result_url = fields.get("resultUrl")


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------- formatting


def duration(ms: float | None) -> str:
    """340ms, 1.26s, 12.3s, 2m05s, 1h02m."""
    if ms is None:
        return ""
    ms = max(0.0, float(ms))
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f}s"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = int(ms // 1000)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def short(value: Any, limit: int = 80) -> str:
    """One line: strings as they are, anything else as JSON; newlines shown as ⏎; cut with …."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\r\n", "\n").replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ids(values: Iterable[int]) -> str:
    return ", ".join(str(v) for v in values)


# ---------------------------------------------------------------------------- the rich live view


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
    left.append(status, style=STATUS_STYLES.get(status, "dim"))
    if model.reason and model.finished and model.reason not in ("taskFailed", "cancelled"):
        left.append(f" ({model.reason})", style=STATUS_STYLES.get(status, ""))
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
    bar_width = max(10, min(40, width - 30))
    bar = _bar(c, bar_width)
    pct = f"{100 * c.finished // c.total}%" if c.total else "0%"
    bar.append(f"  {c.finished}/{c.total} tasks  {pct:>4}")
    counts = Text()
    for label, value, icon, style in (
        ("completed", c.completed, "✔", "green"),
        ("running", c.running, SPINNER[0], "cyan"),
        ("waiting", c.waiting, "·", "dim"),
        ("failed", c.failed, "✘", "red"),
        ("skipped", c.skipped, "⊘", "yellow"),
    ):
        if counts:
            counts.append("  ")
        counts.append(f"{icon} {value} {label}", style=style if value else "dim")
    return [first, bar, _spread(counts, _connection(model, now_ms), width)]


def _bar(c: Counters, width: int) -> Text:
    """━ completed (green), failed (red), skipped (yellow); ─ for what is left. Cumulative
    rounding: a finished execution always fills the bar."""
    bar = Text()
    if c.total <= 0:
        return bar.append("─" * width, style="dim")
    used = 0
    done = 0
    for count, style in ((c.completed, "green"), (c.failed, "red"), (c.skipped, "yellow")):
        done += count
        upto = round(width * done / c.total)
        bar.append("━" * (upto - used), style=style)
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
    interesting = {"running", "retrying", "failed"}
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
    for status in ("completed", "running", "retrying", "waiting", "failed", "skipped", "cancelled"):
        if by.get(status):
            if detail:
                detail.append("  ")
            icon, style = ICONS.get(status, (SPINNER[0], "cyan"))
            detail.append(f"{icon} {by[status]} {status}", style=style)
    what = f"{len(tids)} {'more' if more else 'tasks'}"
    return _Row(label, Text("…", "dim"), "", what, "", "", detail)


def _row(model: TraceModel, task: TaskState, now_ms: int, level: str) -> _Row:
    status = task.status
    if model.finished and not task.finished:  # cancelled (or the state machine failed) meanwhile
        status = "interrupted" if status in ("running", "retrying") else "not run"
    icon_char, style = ICONS.get(status, ("⊘", "yellow"))
    if status == "running":
        icon_char, style = SPINNER[(now_ms // SPINNER_FRAME_MS) % len(SPINNER)], "bold cyan"
    icon = Text(icon_char, style=style)
    deps = f"← {ids(task.dependencies)}" if task.dependencies else ""
    time_text = ""
    detail = Text()
    if status == "completed":
        time_text = duration(task.duration_ms)
        if task.has_result:
            detail.append("→ ", style="dim")
            detail.append(short(task.result, 200))
            if task.result_truncated:
                detail.append(" (cut)", style="dim")
        if task.attempt > 1:
            detail.append(f" (attempt {task.attempt})", style="dim")
    elif status == "running":
        since = task.attempt_started_at if task.attempt_started_at is not None else task.started_at
        time_text = duration(now_ms - since) if since is not None else ""
        detail.append("running", style="cyan")
        if task.attempt > 1:
            detail.append(f" (attempt {task.attempt})", style="cyan")
    elif status == "retrying":
        time_text = duration(now_ms - task.started_at) if task.started_at is not None else ""
        label = "timed out" if task.reason == "timeout" else "failed"
        detail.append(f"attempt {task.attempt} {label}: ", style="magenta")
        detail.append(short(task.error or "", 120))
        if task.retry_at is not None and task.retry_at > now_ms:
            detail.append(f" · retry in {duration(task.retry_at - now_ms)}", style="magenta")
        else:
            detail.append(" · retrying", style="magenta")
    elif status == "failed":
        time_text = duration(task.duration_ms)
        if task.reason == "upstream":
            detail.append("not run: ", style="red")
        elif task.reason == "timeout":
            detail.append("timed out: ", style="red")
        else:
            detail.append("failed: ", style="red")
        detail.append(short(task.error or "", 200))
        if task.attempt > 1 and task.reason != "upstream":
            detail.append(f" (attempt {task.attempt})", style="dim")
    elif status in ("skipped", "cancelled"):
        time_text = duration(task.duration_ms)
        why = (task.error or "").removeprefix("not started: ")
        detail.append(status, style="yellow")
        if why:
            detail.append(": " + short(why, 200))
    elif status in ("interrupted", "not run"):
        time_text = duration(task.duration_ms)
        ended = "was cancelled" if model.status == "cancelled" else model.status
        # a running task is not stopped by a cancel: it may still finish (the snapshot will say)
        said = "still running when" if status == "interrupted" else "not run:"
        detail.append(f"{said} the execution {ended}", style="yellow")
    else:  # waiting
        open_deps = [d for d in task.dependencies if d in model.tasks and not model.tasks[d].finished]
        if open_deps:
            detail.append(f"waiting for {ids(open_deps)}", style="dim")
        elif model.structure_known:
            detail.append("waiting" if not task.dependencies else "ready", style="dim")
        else:
            detail.append("waiting", style="dim")
    return _Row(level, icon, str(task.task_id), task.description or task.action, deps, time_text, detail)


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
    if model.status == "completed":
        body = Text(result_text(model.final_result) if model.has_final_result else "(no result)")
        if model.final_truncated:
            size = f"{model.final_bytes:,} bytes" if model.final_bytes else "more"
            body.append(f"\n… cut here; the whole result ({size}): ", style="dim")
            body.append(f"{api_url}{model.final_url or ''}", style="dim underline")
        return Panel(body, title="result", title_align="left", border_style="green")
    if model.status == "cancelled":
        title = "cancelled"
    else:
        title = "failed" if model.reason in (None, "taskFailed") else f"failed ({model.reason})"
    return Panel(
        Text(model.error or "(no error message)"), title=title, title_align="left", border_style="red"
    )


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


# --------------------------------------------------------------------------- plain and JSON lines


def format_event(event: Mapping[str, Any], elapsed: float) -> str:
    """One plain line: ``[  1.50s]    #7 substep.completed    task 2 in 40 ms → ok``."""
    seq = event.get("seq", "")
    head = f"[{elapsed:6.2f}s] {('#' + str(seq)) if seq != '' else '':>5} {event['type']:<20}"
    detail = describe(event)
    return f"{head} {detail}" if detail else head


def describe(event: Mapping[str, Any]) -> str:
    """What an event says, in a few words (the plain line without its time, seq and type)."""
    kind = event["type"]
    if event.get("snapshot"):
        line = (
            f"snapshot: {event['status']}, {event['completedTasks']}/{event['totalTasks']} done, "
            f"{len(event.get('tasks', []))} tasks"
        )
        if event["status"] == "completed" and "durationMs" in event:
            line += f"; in {event['durationMs']} ms → {short(event.get('finalResult'), 200)}"
        elif event["status"] in ("failed", "cancelled") and event.get("error"):
            line += f"; {event['error']}"
        return line
    if kind == "execution.created":
        return f"{event['totalTasks']} tasks — {event.get('originalRequest', '')!r}"
    attempt = event.get("attempt")
    again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    if kind == "substep.started":
        said = event.get("description")
        return f"task {event['taskId']}{again}" + (f" {said!r}" if said else "")
    if kind == "substep.completed":
        cut = " (cut; whole at " + event["resultUrl"] + ")" if event.get("resultTruncated") else ""
        return (
            f"task {event['taskId']}{again} in {event['durationMs']} ms → {short(event.get('result'))}{cut}"
        )
    if kind == "substep.failed":
        reason = event.get("reason", "error")
        label = "" if reason == "error" else f" [{reason}]"
        retry = f" — retry in {event.get('retryInSeconds', 0)}s" if event.get("willRetry") else ""
        return f"task {event['taskId']}{again}{label}: {event['error']}{retry}"
    if kind == "execution.updated":
        skipped = f", {event['skippedTasks']} skipped" if event.get("skippedTasks") else ""
        return (
            f"{event['status']}: {event['completedTasks']} completed, {event['failedTasks']} failed"
            f"{skipped}, {event.get('runningTasks', 0)} running, {event['waitingTasks']} waiting"
        )
    if kind == "execution.completed":
        return f"in {event['durationMs']} ms → {short(event.get('finalResult'), 200)}"
    if kind == "execution.failed":
        why = "cancelled" if event.get("status") == "cancelled" else event.get("reason", "taskFailed")
        label = "" if why == "taskFailed" else f"[{why}] "
        return f"{label}in {event['durationMs']} ms: {event['error']}"
    return ""


def json_line(event: Mapping[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
