"""The read side: an execution, its tasks and its outcome as the API, the snapshot and the terminal
event show them, built from the stored items.

Pure functions of the items passed in: nothing here reads the store or writes anything, so the
REST API, the SSE endpoint and the engine all build the same view from the same items.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from ..domain import events as ev
from ..domain import previews
from ..domain.model import (
    NOT_STARTED_TASK_STATUSES,
    TIMEOUT_FROM_CEILING,
    ExecutionStatus,
    Reason,
    TaskStatus,
)
from ..persistence.table import Item
from ..progress import utf16_len


def result_url(execution_id: str, task_id: int | None = None) -> str:
    """Where the API serves the execution's final result, or one task's."""
    base = f"/api/v1/dag-executions/{execution_id}"
    return f"{base}/tasks/{task_id}/result" if task_id is not None else f"{base}/result"


def combine_sinks(results: Mapping[int, Any], sinks: list[int]) -> Any:
    """The final result: the one sink's (or result task's) result, else one entry per sink."""
    return results[sinks[0]] if len(sinks) == 1 else {str(k): v for k, v in sorted(results.items())}


def task_view(task: Item, execution_id: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "taskId": task["taskId"],
        "subStepId": str(task["taskId"]),
        "description": task.get("description", ""),
        "action": task["action"],
        "dependencies": task.get("dependencies", []),
        "status": task["status"],
    }
    # prompt, decisionDeadline, decision: an approval task's, once it waits for its decision
    shown = (
        "attempt",
        "startedAt",
        "finishedAt",
        "durationMs",
        "error",
        "reason",
        "upstreamTaskIds",
        "reused",
    )
    for key in (*shown, "reused", "prompt", "decisionDeadline"):
        if key in task:
            view[key] = task[key]
    if "decisionJson" in task:
        view["decision"] = json.loads(task["decisionJson"])
    if "resultPreview" in task:
        view.update(json.loads(task["resultPreview"]))
    elif "resultJson" in task:
        view.update(previews.preview(task["resultJson"], result_url(execution_id, int(task["taskId"]))))
    view.update(partial_text(task))
    return view


def partial_text(task: Item) -> dict[str, Any]:
    """A running attempt's text so far, as the task item keeps it (its end: ``textTruncated`` when
    that is not all of it); nothing for a task not running or an attempt that wrote no text."""
    if task["status"] != TaskStatus.RUNNING or task.get("partialAttempt") != task.get("attempt"):
        return {}
    text, length = str(task.get("partialText", "")), int(task.get("partialLength", 0))
    if not length:
        return {}
    offset = length - utf16_len(text)
    return {
        "text": text,
        "textOffset": offset,
        "textLength": length,
        **({"textTruncated": True} if offset else {}),
    }


def execution_view(meta: Item) -> dict[str, Any]:
    view: dict[str, Any] = {
        "executionId": meta["executionId"],
        "status": meta["status"],
        "originalRequest": meta.get("originalRequest", ""),
        "createdAt": meta["createdAt"],
        **ev.counters(meta),
    }
    for key in (
        "finishedAt", "durationMs", "error", "reason", "failurePolicy", "maxConcurrency", "rerunOf", "tags",
    ):  # fmt: skip
        if key in meta:
            view[key] = meta[key]
    if "metadataJson" in meta:
        view["metadata"] = json.loads(meta["metadataJson"])
    if "finalResultJson" in meta:
        view["finalResult"] = json.loads(meta["finalResultJson"])
    elif "finalResultPreview" in meta:
        view.update(ev.final_fields(json.loads(meta["finalResultPreview"])))
    return view


# What long texts are cut to, in turn, when a view would not fit one answer (http/answer.py):
# at 0 what is left is ids, statuses and numbers, bounded by the job's 1 MB body.
TEXT_CAPS: Final = (4_096, 1_024, 256, 64, 0)


def cut_view(view: Mapping[str, Any], cap: int) -> dict[str, Any]:
    """An execution view or snapshot with its long texts cut to ``cap`` characters: results and the
    final result as events cut them (``…Truncated``, ``…Bytes``, ``…Url``); ``originalRequest``, an
    ``error`` or a ``description`` ending in "…". ``textsCutTo`` says it was cut, and where."""
    execution_id = str(view["executionId"])
    out = {**view, **_cut_texts(view, ("originalRequest", "error"), cap), "textsCutTo": cap}
    out.update(_cut_result(view, "finalResult", cap, result_url(execution_id)))
    if "tasks" in view:
        out["tasks"] = [
            {
                **task,
                **_cut_texts(task, ("description", "error"), cap),
                **_cut_result(task, "result", cap, result_url(execution_id, int(task["taskId"]))),
            }
            for task in view["tasks"]
        ]
    return out


def _cut_texts(view: Mapping[str, Any], keys: tuple[str, ...], cap: int) -> dict[str, str]:
    return {k: str(view[k])[:cap] + "…" for k in keys if k in view and len(str(view[k])) > cap}


def _cut_result(view: Mapping[str, Any], name: str, cap: int, url: str) -> dict[str, Any]:
    """``name`` (result or finalResult) cut to ``cap`` characters of its JSON, as ``events.preview``."""
    if name not in view:
        return {}
    if view.get(f"{name}Truncated"):  # already the start of its JSON, with its size and URL
        return {name: str(view[name])[:cap]}
    text = json.dumps(view[name], ensure_ascii=False)
    if len(text) <= cap:
        return {}
    return {name: text[:cap], f"{name}Truncated": True, f"{name}Bytes": len(text.encode()), f"{name}Url": url}


def timeout_source(meta: Item) -> str:
    """What set the execution's deadline, for its timeout messages."""
    if meta.get("timeoutFrom") == TIMEOUT_FROM_CEILING:
        return "the stage's ceiling, DAGCAST_EXECUTION_CEILING_SECONDS: the job set no timeoutSeconds"
    return "timeoutSeconds"


def terminal_event(meta: Item, preview_chars: int = previews.RESULT_PREVIEW_CHARS) -> ev.Event:
    """execution.completed or execution.failed for a finished execution's META, its final
    result cut at ``preview_chars``."""
    if meta["status"] == ExecutionStatus.COMPLETED:
        if "finalResultJson" in meta:
            url = result_url(str(meta["executionId"]))
            shown = previews.preview(str(meta["finalResultJson"]), url, preview_chars)
        else:
            shown = previews.cut_preview(json.loads(meta["finalResultPreview"]), preview_chars)
        return ev.execution_completed(meta, int(meta["durationMs"]), shown)
    return ev.execution_failed(
        meta,
        int(meta["durationMs"]),
        str(meta["error"]),
        str(meta["status"]),
        str(meta.get("reason", Reason.TASK_FAILED)),
    )


def build_snapshot(meta: Item, tasks: list[Item], seq: int) -> dict[str, Any]:
    """The execution as one document: its view, ``seq`` (the last event) and every task."""
    view = {
        **execution_view(meta),
        "seq": seq,
        "tasks": [
            task_view(t, str(meta["executionId"])) for t in sorted(tasks, key=lambda t: int(t["taskId"]))
        ],
    }
    if meta["status"] == ExecutionStatus.CANCELLED:
        # Tasks that have not started will never run: Step Functions stops at once
        # (StopExecution), so nothing records them; the snapshot shows them as what they are.
        for task in view["tasks"]:
            if task["status"] in NOT_STARTED_TASK_STATUSES:
                task.update(
                    status=TaskStatus.CANCELLED,
                    reason=Reason.CANCELLED,
                    error="not run: the execution was cancelled",
                )
        # Counted from the tasks as shown (skippedTasks counts skipped and cancelled, docs/api.md).
        shown = Counter(str(t["status"]) for t in view["tasks"])
        view.update(
            completedTasks=shown[TaskStatus.COMPLETED],
            failedTasks=shown[TaskStatus.FAILED],
            skippedTasks=shown[TaskStatus.SKIPPED] + shown[TaskStatus.CANCELLED],
            runningTasks=shown[TaskStatus.RUNNING],
            waitingTasks=0,
        )
    return view
