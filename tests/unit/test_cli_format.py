"""`dagcast run`'s line per event: attempts, failure reasons, retries, skips and cancels read plainly."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.events import (
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    SUBSTEP_STARTED,
)
from dagcast.cli.render.lines import format_event


def line(event: dict[str, Any], elapsed: float = 1.5) -> str:
    return " ".join(format_event({"seq": 7, **event}, elapsed).split())


def test_first_attempts_read_as_before():
    assert line({"type": SUBSTEP_STARTED, "taskId": 2, "description": "Fetch", "attempt": 1}) == (
        "[ 1.50s] #7 substep.started task 2 'Fetch'"
    )
    done = {"type": SUBSTEP_COMPLETED, "taskId": 2, "durationMs": 40, "result": "ok", "attempt": 1}
    assert line(done) == "[ 1.50s] #7 substep.completed task 2 in 40 ms → ok"


def test_retries_show_the_attempt_and_when_the_next_one_comes():
    failed = {
        "type": SUBSTEP_FAILED,
        "taskId": 3,
        "error": "HTTP 503",
        "reason": "error",
        "attempt": 1,
        "willRetry": True,
        "retryInSeconds": 2,
    }
    assert line(failed) == "[ 1.50s] #7 substep.failed task 3: HTTP 503 — retry in 2s"
    started = {"type": SUBSTEP_STARTED, "taskId": 3, "description": "", "attempt": 2}
    assert line(started) == "[ 1.50s] #7 substep.started task 3 (attempt 2)"  # no description, no ''
    timeout = {
        "type": SUBSTEP_FAILED,
        "taskId": 3,
        "error": "timed out after 5s",
        "reason": "timeout",
        "attempt": 2,
    }
    assert line(timeout) == "[ 1.50s] #7 substep.failed task 3 (attempt 2) [timeout]: timed out after 5s"


def test_skipped_tasks_cut_results_and_cancels_say_so():
    skipped = {
        "type": SUBSTEP_FAILED,
        "taskId": 4,
        "error": "not started: task 3 failed",
        "reason": "skipped",
    }
    assert line(skipped) == "[ 1.50s] #7 substep.failed task 4 [skipped]: not started: task 3 failed"
    cut = {
        "type": SUBSTEP_COMPLETED,
        "taskId": 5,
        "durationMs": 9,
        "result": "x" * 100,
        "resultTruncated": True,
        "resultUrl": "/api/v1/dag-executions/e/tasks/5/result",
    }
    assert line(cut).endswith("…" + " (cut; whole at /api/v1/dag-executions/e/tasks/5/result)")
    updated = {
        "type": EXECUTION_UPDATED,
        "status": "running",
        "completedTasks": 1,
        "failedTasks": 1,
        "skippedTasks": 2,
        "runningTasks": 1,
        "waitingTasks": 0,
    }
    assert line(updated) == (
        "[ 1.50s] #7 execution.updated running: 1 completed, 1 failed, 2 skipped, 1 running, 0 waiting"
    )
    cancelled = {
        "type": EXECUTION_FAILED,
        "status": "cancelled",
        "reason": "cancelled",
        "durationMs": 800,
        "error": "cancelled by request",
    }
    assert line(cancelled) == "[ 1.50s] #7 execution.failed [cancelled] in 800 ms: cancelled by request"
    timed_out = {
        "type": EXECUTION_FAILED,
        "status": "failed",
        "reason": "timeout",
        "durationMs": 5000,
        "error": "the execution timed out after 5s",
    }
    assert (
        line(timed_out)
        == "[ 1.50s] #7 execution.failed [timeout] in 5000 ms: the execution timed out after 5s"
    )
    failed = {
        "type": EXECUTION_FAILED,
        "status": "failed",
        "reason": "taskFailed",
        "durationMs": 90,
        "error": "task 2 failed: no",
    }
    assert line(failed) == "[ 1.50s] #7 execution.failed in 90 ms: task 2 failed: no"


def test_progress_shows_the_text_it_adds_at_its_offset_and_what_it_reports():
    said = {"type": "substep.progress", "taskId": 5, "attempt": 1, "delta": "London was\nmild ", "offset": 12}
    assert line(said) == "[ 1.50s] #7 substep.progress task 5 @12 +16 ch: 'London was ⏎ mild '"
    counted = {"type": "substep.progress", "taskId": 2, "attempt": 2, "progress": {"done": 3, "total": 10.0}}
    assert line(counted) == "[ 1.50s] #7 substep.progress task 2 (attempt 2) [progress 3/10]"
    told = {"type": "substep.progress", "taskId": 2, "attempt": 1, "progress": {"message": "reading"}}
    assert line(told) == "[ 1.50s] #7 substep.progress task 2 [progress reading]"
