"""One line per event: the plain line of ``dagcast run`` / ``trace --plain``, and the JSON line of
``--json``.

``describe`` is also the last column of ``dagcast show``'s event history. The JSON line is the
event exactly as the server sent it, compact, so scripts can read the stream without SSE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    SUBSTEP_PROGRESS,
    SUBSTEP_STARTED,
    SUBSTEP_WAITING,
)
from chalicelib.domain.model import ExecutionStatus, Reason

from .text import short


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
        return _describe_snapshot(event)
    if kind in (SUBSTEP_STARTED, SUBSTEP_COMPLETED, SUBSTEP_FAILED):
        return _describe_substep(event)
    if kind == SUBSTEP_PROGRESS:
        return _describe_progress(event)
    if kind == SUBSTEP_WAITING:
        return f"task {event['taskId']} awaits a decision: {event.get('prompt', '')!r}"
    if kind == EXECUTION_CREATED:
        return f"{event['totalTasks']} tasks — {event.get('originalRequest', '')!r}"
    if kind == EXECUTION_UPDATED:
        skipped = f", {event['skippedTasks']} skipped" if event.get("skippedTasks") else ""
        return (
            f"{event['status']}: {event['completedTasks']} completed, {event['failedTasks']} failed"
            f"{skipped}, {event.get('runningTasks', 0)} running, {event['waitingTasks']} waiting"
        )
    if kind == EXECUTION_COMPLETED:
        return f"in {event['durationMs']} ms → {short(event.get('finalResult'), 200)}"
    if kind == EXECUTION_FAILED:
        cancelled = event.get("status") == ExecutionStatus.CANCELLED
        why = Reason.CANCELLED if cancelled else event.get("reason", Reason.TASK_FAILED)
        label = "" if why == Reason.TASK_FAILED else f"[{why}] "
        return f"{label}in {event['durationMs']} ms: {event['error']}"
    return ""  # a type this CLI does not know yet: its line says only the type


def _describe_snapshot(event: Mapping[str, Any]) -> str:
    line = (
        f"snapshot: {event['status']}, {event['completedTasks']}/{event['totalTasks']} done, "
        f"{len(event.get('tasks', []))} tasks"
    )
    if event["status"] == ExecutionStatus.COMPLETED and "durationMs" in event:
        line += f"; in {event['durationMs']} ms → {short(event.get('finalResult'), 200)}"
    elif event["status"] in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED) and event.get("error"):
        line += f"; {event['error']}"
    return line


def _describe_substep(event: Mapping[str, Any]) -> str:
    kind = event["type"]
    attempt = event.get("attempt")
    again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    if kind == SUBSTEP_STARTED:
        said = event.get("description")
        return f"task {event['taskId']}{again}" + (f" {said!r}" if said else "")
    if kind == SUBSTEP_COMPLETED:
        cut = " (cut; whole at " + event["resultUrl"] + ")" if event.get("resultTruncated") else ""
        return (
            f"task {event['taskId']}{again} in {event['durationMs']} ms → {short(event.get('result'))}{cut}"
        )
    reason = event.get("reason", Reason.ERROR)
    label = "" if reason == Reason.ERROR else f" [{reason}]"
    retry = f" — retry in {event.get('retryInSeconds', 0)}s" if event.get("willRetry") else ""
    return f"task {event['taskId']}{again}{label}: {event['error']}{retry}"


def _describe_progress(event: Mapping[str, Any]) -> str:
    """The text the event adds, at its offset (``@120 +52 ch``), and the progress it reports."""
    attempt = event.get("attempt")
    again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    line = f"task {event['taskId']}{again}"
    delta = event.get("delta")
    if isinstance(delta, str):
        line += f" @{event.get('offset', 0)} +{len(delta)} ch: {short(delta, 100)!r}"
    said = event.get("progress")
    if isinstance(said, Mapping):
        of = f"/{said['total']:g}" if isinstance(said.get("total"), int | float) else ""
        done = f" {said['done']:g}{of}" if isinstance(said.get("done"), int | float) else ""
        message = f" {said['message']}" if said.get("message") else ""
        line += f" [progress{done}{message}]"
    return line


def json_line(event: Mapping[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
