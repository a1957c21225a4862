"""A rerun of a finished execution: which tasks run again, what the others become, and the job.

``POST …/{id}/rerun`` makes a *new* execution (``rerunOf``) of the same job. Tasks that completed
in the original and are not forced are reused: stored in the new execution as completed, with the
original's result, attempt and duration, and announced by one ``substep.completed`` with
``"reused": true`` each before any task runs; the state machine gets no Map iteration for them
(``submission.state_machine_input``'s ``done``), and their dependents start with them in
``doneDeps``. Every other task — not completed, forced, or downstream of either — runs again from
attempt 1.

Why a new execution rather than Step Functions' ``RedriveExecution`` (docs/api.md#rerun): a redrive
restarts the *same* execution from its failed states, with the same input, within 14 days, and
only if it FAILED, TIMED_OUT or ABORTED — not a completed one, not chosen tasks. Our tasks' truth
is in the table (a task failed there is a Succeeded child in Step Functions), so a redrive would
re-run nothing we need; and the original's events and result stay as they were.

Pure: the engine reads the original, writes what these return and starts the state machine.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import events as ev
from ..domain import previews
from ..domain.dag import Job, parse_job, sinks, topological_order
from ..domain.errors import BadRequest
from ..domain.model import RERUN_FROM_FAILED, TIMEOUT_FROM_CEILING, TaskStatus
from ..persistence.table import Item
from .views import result_url

MAX_FORCED = 1_000  # a job's task limit
# What a reused task keeps of the original's item: its outcome, never its token or dependencies' state.
_KEPT = (
    "status", "attempt", "startedAt", "finishedAt", "durationMs", "resultJson", "resultPreview",
    "resultBytes", "resultChunks", "resultRun",
)  # fmt: skip


@dataclass(frozen=True)
class Rerun:
    source_id: str
    job: Job
    reused: Mapping[int, Item]  # the original's task items of the tasks not run again


def parse_rerun(body: Any) -> frozenset[int]:
    """The tasks a rerun forces: none for ``{}`` / ``{"from": "failed"}`` (no body, too), else
    ``{"tasks": [ids]}``."""
    if body is None or body == {}:
        return frozenset()
    if not isinstance(body, dict) or set(body) - {"from", "tasks"} or len(body) > 1:
        raise BadRequest(f'a rerun body is {{"from": "{RERUN_FROM_FAILED}"}} or {{"tasks": [task ids]}}')
    if "from" in body:
        if body["from"] != RERUN_FROM_FAILED:
            raise BadRequest(f'"from" can only be "{RERUN_FROM_FAILED}", got {str(body["from"])[:40]!r}')
        return frozenset()
    ids = body.get("tasks")
    if not isinstance(ids, list) or not all(type(t) is int for t in ids) or not 1 <= len(ids) <= MAX_FORCED:
        raise BadRequest(f'"tasks" must be a list of 1 to {MAX_FORCED} task ids (integers)')
    return frozenset(ids)


def plan(source_id: str, meta: Item, tasks: list[Item], forced: Collection[int]) -> Rerun:
    """The rerun of ``source_id`` (its META with the request, and its task items)."""
    by_id = {int(t["taskId"]): t for t in tasks}
    unknown = sorted(set(forced) - set(by_id))
    if unknown:
        raise BadRequest(f"execution {source_id} has no task {', '.join(map(str, unknown[:20]))}")
    again = {i for i, t in by_id.items() if t["status"] != TaskStatus.COMPLETED} | set(forced)
    todo = list(again)
    while todo:  # what runs again, its dependents run again too
        for dependent in by_id[todo.pop()].get("dependents", []):
            if int(dependent) not in again:
                again.add(int(dependent))
                todo.append(int(dependent))
    reused = {i: t for i, t in by_id.items() if i not in again}
    return Rerun(source_id, job_of(meta, [by_id[i] for i in sorted(by_id)]), reused)


def job_of(meta: Item, tasks: list[Item]) -> Job:
    """The job an execution ran, from its stored items (the request text is the stored, redacted
    one; task params are stored as given)."""
    body: dict[str, Any] = {
        "originalRequest": str(meta.get("originalRequest", "")),
        "failurePolicy": meta["failurePolicy"],
        "tasks": [
            {
                "id": int(t["taskId"]),
                "description": str(t.get("description", "")),
                "action": t["action"],
                "params": json.loads(t["paramsJson"]),
                "dependencies": [int(d) for d in t.get("dependencies", [])],
                "retries": json.loads(t["retriesJson"]),
                "timeoutSeconds": float(t["timeoutSeconds"]),
            }
            for t in tasks
        ],
    }
    if "maxConcurrency" in meta:
        body["maxConcurrency"] = int(meta["maxConcurrency"])
    if meta.get("timeoutFrom") != TIMEOUT_FROM_CEILING:
        body["timeoutSeconds"] = float(meta["timeoutSeconds"])
    stored_sinks = [int(s) for s in meta["sinks"]]
    job = parse_job(body)
    return job if sinks(job) == stored_sinks else parse_job({**body, "resultTask": stored_sinks[0]})


def rerun_items(rerun: Rerun, fresh: list[Item], execution_id: str) -> list[Item]:
    """The rerun's task items: ``fresh`` (submission.task_items) with the reused tasks' outcomes,
    and, for the others, the reused dependencies already done."""
    out = []
    for item in fresh:
        task_id = int(item["taskId"])
        source = rerun.reused.get(task_id)
        if source is not None:
            kept = {k: source[k] for k in _KEPT if k in source}
            if "resultPreview" in kept:  # its resultUrl names the rerun, which holds a copy
                shown = {**json.loads(kept["resultPreview"]), "resultUrl": result_url(execution_id, task_id)}
                kept["resultPreview"] = json.dumps(shown)
            out.append({**item, **kept, "reused": True, "reusedFrom": rerun.source_id})
            continue
        done = {int(d) for d in item["dependencies"]} & set(rerun.reused)
        out.append({**item, "doneDeps": done} if done else item)
    return out


def reused_events(
    rerun: Rerun, items: list[Item], execution_id: str, preview_chars: int
) -> list[tuple[str, ev.Event]]:
    """One ``substep.completed`` (``reused``) per reused task, in topological order, with the
    idempotency key a completion has (so no later write can announce it again)."""
    by_id = {int(i["taskId"]): i for i in items}
    out = []
    for task_id in topological_order(rerun.job):
        task = by_id[task_id]
        if not task.get("reused"):
            continue
        if "resultPreview" in task:
            shown = previews.cut_preview(json.loads(task["resultPreview"]), preview_chars)
        else:
            url = result_url(execution_id, task_id)
            shown = previews.preview(str(task["resultJson"]), url, preview_chars)
        body = ev.substep_completed(
            task_id, int(task.get("durationMs", 0)), shown, int(task.get("attempt", 1)), reused=True
        )
        out.append((f"substep.completed#{task_id}", body))
    return out
