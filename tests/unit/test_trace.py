"""`dagcast trace`'s model and views, from known event sequences at a fixed clock.

The rich view is compared with text snapshots in tests/unit/snapshots/trace-*.txt (a 100-column
terminal without colours). After a deliberate change of the view, rewrite them with
``UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_trace.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    HEARTBEAT,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    SUBSTEP_STARTED,
    SUBSTEP_WAITING,
)
from dagcast.cli.render.lines import describe, format_event, json_line
from dagcast.cli.render.live import render, result_text
from dagcast.cli.render.model import TraceModel
from dagcast.cli.render.text import duration, short

SNAPSHOTS = Path(__file__).parent / "snapshots"
T0 = 1_795_657_000_000  # the execution's createdAt (ms); every time below is relative to it
EID = "dag-exec_4f1c0d2e9a8b4c6d8e0f1a2b3c4d5e6f"


# ------------------------------------------------------------------------------ event builders


def task(tid: int, description: str, deps: list[int] | None = None, action: str = "sleep") -> dict[str, Any]:
    return {
        "taskId": tid,
        "subStepId": str(tid),
        "description": description,
        "action": action,
        "dependencies": deps or [],
        "status": "waiting",
        "attempt": 1,
    }


def snapshot(
    tasks: list[dict[str, Any]], request: str, seq: int = 1, at: int = 40, **extra: Any
) -> dict[str, Any]:
    return {
        "type": EXECUTION_UPDATED,
        "snapshot": True,
        "executionId": EID,
        "status": "running",
        "originalRequest": request,
        "createdAt": T0,
        "totalTasks": len(tasks),
        "completedTasks": 0,
        "failedTasks": 0,
        "skippedTasks": 0,
        "runningTasks": 0,
        "waitingTasks": len(tasks),
        "failurePolicy": "failFast",
        "seq": seq,
        "timestamp": T0 + at,
        "tasks": tasks,
        **extra,
    }


class Log:
    """Events with consecutive seqs and timestamps T0 + at."""

    def __init__(self, first_seq: int = 2) -> None:
        self.seq = first_seq
        self.events: list[dict[str, Any]] = []

    def add(self, at: int, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, **fields, "executionId": EID, "timestamp": T0 + at, "seq": self.seq}
        self.seq += 1
        self.events.append(event)
        return event

    def started(self, at: int, tid: int, description: str, attempt: int = 1) -> None:
        self.add(
            at, SUBSTEP_STARTED, subStepId=str(tid), taskId=tid, description=description, attempt=attempt
        )

    def completed(self, at: int, tid: int, ms: int, result: Any, attempt: int = 1) -> None:
        self.add(
            at,
            SUBSTEP_COMPLETED,
            subStepId=str(tid),
            taskId=tid,
            durationMs=ms,
            attempt=attempt,
            result=result,
        )

    def failed(self, at: int, tid: int, error: str, reason: str = "error", **fields: Any) -> None:
        self.add(
            at,
            SUBSTEP_FAILED,
            subStepId=str(tid),
            taskId=tid,
            error=error,
            reason=reason,
            willRetry=fields.pop("willRetry", False),
            **fields,
        )

    def updated(
        self, at: int, total: int, completed: int, failed: int = 0, skipped: int = 0, running: int = 0
    ) -> None:
        self.add(
            at,
            EXECUTION_UPDATED,
            status="running",
            totalTasks=total,
            completedTasks=completed,
            failedTasks=failed,
            skippedTasks=skipped,
            runningTasks=running,
            waitingTasks=total - completed - failed - skipped - running,
        )


def model_of(*messages: dict[str, Any]) -> TraceModel:
    model = TraceModel(EID, connection="live")
    for m in messages:
        model.apply(m)
    return model


def frame(model: TraceModel, at: int, max_rows: int | None = None) -> str:
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    console.print(render(model, T0 + at, console.width, max_rows, api_url="http://127.0.0.1:8000"))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"trace-{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: UPDATE_SNAPSHOTS=1 writes it (then read it)"
    assert text == path.read_text(), f"the view changed; compare with {path} (UPDATE_SNAPSHOTS=1 rewrites it)"


# ----------------------------------------------------------------------------- the sequences

REPORT = "Write a short report on London's weather"


def diamond() -> tuple[dict[str, Any], Log]:
    """1 → (2, 3) → 4, everything succeeds."""
    snap = snapshot(
        [
            task(1, "Fetch today's forecast"),
            task(2, "Fetch the week's history (slow)", [1]),
            task(3, "Summarise today", [1], "echo"),
            task(4, "Write the report", [2, 3], "echo"),
        ],
        REPORT,
    )
    log = Log()
    log.started(110, 1, "Fetch today's forecast")
    log.completed(1_130, 1, 1_020, "slept 1s")
    log.updated(1_140, 4, 1)
    log.started(1_160, 2, "Fetch the week's history (slow)")
    log.started(1_170, 3, "Summarise today")
    log.completed(1_230, 3, 60, "Today: slept 1s")
    log.updated(1_240, 4, 2, running=1)
    log.completed(4_180, 2, 3_020, "slept 3s")
    log.updated(4_190, 4, 3)
    log.started(4_210, 4, "Write the report")
    log.completed(4_260, 4, 50, "# London weather\nToday: slept 1s\nWeek: slept 3s")
    log.updated(4_270, 4, 4)
    log.add(
        4_300,
        EXECUTION_COMPLETED,
        status="completed",
        totalTasks=4,
        completedTasks=4,
        failedTasks=0,
        durationMs=4_300,
        finalResult="# London weather\nToday: slept 1s\nWeek: slept 3s",
    )
    return snap, log


def test_a_diamond_while_it_runs_and_when_it_is_done():
    snap, log = diamond()
    model = model_of(snap, *log.events[:6])  # 1 and 3 done, 2 running, 4 waiting
    assert model.counters() == (4, 2, 0, 0, 1, 1)
    assert model.levels() == [[1], [2, 3], [4]]
    matches_snapshot("diamond-running", frame(model, 2_500))

    for event in log.events[6:]:
        model.apply(event)
    assert (model.status, model.finished, model.exit_code()) == ("completed", True, 0)
    assert model.duration_ms == 4_300 and model.final_result.startswith("# London weather")
    matches_snapshot("diamond-completed", frame(model, 5_000))


def test_a_running_task_shows_the_last_line_of_its_live_text():
    snap, log = diamond()
    model = model_of(snap, *log.events[:6])  # task 2 running
    first = "The week began cold.\nMonday: 4°C, rain"
    log.add(2_000, "substep.progress", subStepId="2", taskId=2, attempt=1, delta=first, offset=0)
    log.add(
        2_100, "substep.progress", subStepId="2", taskId=2, attempt=1, progress={"done": 1.0, "total": 7.0}
    )
    log.add(
        2_200, "substep.progress", subStepId="2", taskId=2, attempt=1, delta=" all day", offset=len(first)
    )
    for event in log.events[-3:]:
        model.apply(event)
    assert model.tasks[2].text == first + " all day"
    shown = frame(model, 2_500)
    assert "Monday: 4°C, rain all day" in shown and "The week began cold." not in shown


def test_the_spinner_and_the_elapsed_time_move_with_the_clock_only():
    snap, log = diamond()
    model = model_of(snap, *log.events[:6])
    assert frame(model, 2_500) == frame(model, 2_500)
    later = frame(model, 2_580)
    assert later != frame(model, 2_500)
    assert "1.42s  running" in later  # task 2 started at +1.16 s


def test_a_failure_under_continue_fails_its_dependents_as_upstream():
    snap = snapshot(
        [
            task(1, "Find the tickers", action="echo"),
            task(2, "Fetch prices", [1], "http"),
            task(3, "Fetch the news", [1], "http"),
            task(4, "Compare", [2, 3], "llm"),
        ],
        "Compare two stocks",
        failurePolicy="continue",
    )
    log = Log()
    log.started(100, 1, "Find the tickers")
    log.completed(150, 1, 50, ["ACME", "INITECH"])
    log.updated(160, 4, 1)
    log.started(200, 2, "Fetch prices")
    log.started(210, 3, "Fetch the news")
    log.failed(900, 2, "HTTP 500 from https://prices.example.com/ACME", attempt=1, durationMs=700)
    log.updated(910, 4, 1, failed=1, running=1)
    mid = model_of(snap, *log.events)
    matches_snapshot("upstream-running", frame(mid, 1_200))

    log.completed(1_400, 3, 1_190, {"headlines": 12})
    log.updated(1_410, 4, 2, failed=1)
    log.failed(1_430, 4, "upstream task 2 did not complete", "upstream", upstreamTaskIds=[2])
    log.updated(1_440, 4, 2, failed=2)
    log.add(
        1_500,
        EXECUTION_FAILED,
        status="failed",
        reason="taskFailed",
        totalTasks=4,
        completedTasks=2,
        failedTasks=2,
        skippedTasks=0,
        durationMs=1_500,
        error="task 2 (Fetch prices) failed: HTTP 500 from https://prices.example.com/ACME",
    )
    model = model_of(snap, *log.events)
    assert model.tasks[4].status == "failed" and model.tasks[4].upstream == (2,)
    assert model.counters() == (4, 2, 2, 0, 0, 0)
    assert model.exit_code() == 1
    matches_snapshot("upstream-failed", frame(model, 2_000))


def test_a_failure_under_fail_fast_skips_what_had_not_started():
    snap = snapshot(
        [
            task(1, "fail 1", action="fail"),
            task(2, "sleep 2"),
            task(3, "echo 3", [1], "echo"),
            task(4, "echo 4", [2, 3], "echo"),
        ],
        "fail fast",
    )
    log = Log()
    log.started(100, 1, "fail 1")
    log.started(110, 2, "sleep 2")
    log.failed(300, 1, "boom", attempt=1, durationMs=200)
    log.updated(310, 4, 0, failed=1, running=1)
    log.failed(320, 3, "not started: task 1 (fail 1) failed: boom", "skipped")
    log.updated(330, 4, 0, failed=1, skipped=1, running=1)
    log.completed(2_200, 2, 2_090, "slept 2s")
    log.updated(2_210, 4, 1, failed=1, skipped=1)
    log.failed(2_230, 4, "not started: task 1 (fail 1) failed: boom", "skipped")
    log.updated(2_240, 4, 1, failed=1, skipped=2)
    log.add(
        2_300,
        EXECUTION_FAILED,
        status="failed",
        reason="taskFailed",
        totalTasks=4,
        completedTasks=1,
        failedTasks=1,
        skippedTasks=2,
        durationMs=2_300,
        error="task 1 (fail 1) failed: boom",
    )
    model = model_of(snap, *log.events)
    assert [model.tasks[t].status for t in (1, 2, 3, 4)] == ["failed", "completed", "skipped", "skipped"]
    assert model.counters() == (4, 1, 1, 2, 0, 0)
    matches_snapshot("failfast-skipped", frame(model, 3_000))


def test_a_retry_shows_the_failed_attempt_the_backoff_and_the_next_attempt():
    snap = snapshot([task(1, "Call the flaky API", action="http"), task(2, "Summarise", [1], "llm")], "flaky")
    log = Log()
    log.started(100, 1, "Call the flaky API")
    log.failed(
        400, 1, "HTTP 503 Service Unavailable", attempt=1, durationMs=300, willRetry=True, retryInSeconds=2
    )
    model = model_of(snap, *log.events)
    assert model.tasks[1].status == "retrying" and model.tasks[1].retry_at == T0 + 2_400
    assert model.counters().running == 1  # a retrying task is not failed
    matches_snapshot("retry-backoff", frame(model, 1_200))

    log.started(2_420, 1, "Call the flaky API", attempt=2)
    model.apply(log.events[-1])
    assert (model.tasks[1].status, model.tasks[1].attempt) == ("running", 2)
    assert "running (attempt 2)" in frame(model, 3_000)
    assert "580ms  running (attempt 2)" in frame(model, 3_000)  # elapsed since this attempt began

    log.completed(2_900, 1, 2_800, {"status": 200, "body": {"ok": True}}, attempt=2)
    log.updated(2_910, 2, 1)
    log.started(2_930, 2, "Summarise")
    log.completed(3_500, 2, 570, "All good after one retry.")
    log.updated(3_510, 2, 2)
    log.add(
        3_600,
        EXECUTION_COMPLETED,
        status="completed",
        totalTasks=2,
        completedTasks=2,
        failedTasks=0,
        durationMs=3_600,
        finalResult="All good after one retry.",
    )
    for event in log.events[3:]:
        model.apply(event)
    matches_snapshot("retry-completed", frame(model, 4_000))


def test_a_timeout_fails_the_task_that_ran_and_skips_the_one_that_never_started():
    snap = snapshot(
        [task(1, "sleep 1"), task(2, "sleep 10"), task(3, "echo 3", [2], "echo")],
        "deadline",
    )
    log = Log()
    log.started(100, 1, "sleep 1")
    log.started(110, 2, "sleep 10")
    log.completed(1_120, 1, 1_020, "slept 1s")
    log.updated(1_130, 3, 1, running=1)
    log.failed(5_050, 2, "timed out after 4.89s (timeoutSeconds)", "timeout", attempt=1, durationMs=4_940)
    log.updated(5_060, 3, 1, failed=1)
    log.failed(5_100, 3, "not started: the execution timed out after 5s", "timeout", attempt=1)
    log.updated(5_110, 3, 1, failed=1, skipped=1)
    log.add(
        5_200,
        EXECUTION_FAILED,
        status="failed",
        reason="timeout",
        totalTasks=3,
        completedTasks=1,
        failedTasks=1,
        skippedTasks=1,
        durationMs=5_200,
        error="the execution timed out after 5s (timeoutSeconds)",
    )
    model = model_of(snap, *log.events)
    assert (model.tasks[2].status, model.tasks[2].reason) == ("failed", "timeout")
    assert (model.tasks[3].status, model.tasks[3].reason) == ("skipped", "timeout")
    assert model.reason == "timeout"
    matches_snapshot("timeout", frame(model, 6_000))


def test_an_approval_shows_its_question_while_it_waits_and_its_rejection_after():
    snap = snapshot(
        [task(1, "Build"), task(2, "Approve the deploy", [1], "approval"), task(3, "Deploy", [2], "echo")],
        "deploy with approval",
    )
    log = Log()
    log.started(100, 1, "Build")
    log.completed(1_100, 1, 1_000, "built")
    log.updated(1_110, 3, 1)
    log.add(
        1_200,
        SUBSTEP_WAITING,
        subStepId="2",
        taskId=2,
        description="Approve the deploy",
        prompt="Deploy build 1 to prod?",
        timeoutSeconds=3_600,
        decisionDeadline=T0 + 1_200 + 3_600_000,
    )
    waiting = model_of(snap, *log.events)
    assert (waiting.tasks[2].status, waiting.tasks[2].prompt) == (
        "awaiting_decision",
        "Deploy build 1 to prod?",
    )
    matches_snapshot("approval-waiting", frame(waiting, 2_000))
    assert "task 2 awaits a decision: 'Deploy build 1 to prod?'" in format_event(log.events[-1], 1.2)
    log.failed(9_000, 2, "rejected: not on a Friday", "rejected", attempt=1)
    model = model_of(snap, *log.events)
    assert (model.tasks[2].status, model.tasks[2].reason) == ("failed", "rejected")


def test_a_cancelled_execution_shows_what_was_still_running_and_what_never_ran():
    snap = snapshot([task(1, "sleep 30"), task(2, "echo 2", [1], "echo")], "cancel me")
    log = Log()
    log.started(100, 1, "sleep 30")
    log.add(
        1_500,
        EXECUTION_FAILED,
        status="cancelled",
        reason="cancelled",
        totalTasks=2,
        completedTasks=0,
        failedTasks=0,
        skippedTasks=0,
        durationMs=1_500,
        error="cancelled by request",
    )
    model = model_of(snap, *log.events)
    text = frame(model, 2_000)
    assert "still running when the execution was cancelled" in text
    assert "not run: the execution was cancelled" in text
    assert "cancelled by request" in text and model.exit_code() == 1
    assert "⠋" not in text.split("\n", 3)[3]  # nothing spins once the execution has ended


def test_a_wide_dag_is_summed_up_per_level_when_it_does_not_fit():
    tasks = [task(1, "plan", action="echo")]
    tasks += [task(i, f"search {i}", [1]) for i in range(2, 62)]
    tasks += [task(62, "merge", list(range(2, 62)), "echo")]
    log = Log()
    log.started(100, 1, "plan")
    log.completed(150, 1, 50, "60 queries")
    for i in range(2, 62):
        log.started(200 + i, i, f"search {i}")
    for i in range(2, 52):
        log.completed(1_000 + i * 10, i, 800, f"result {i}")
    log.failed(1_700, 52, "HTTP 429 Too Many Requests", attempt=1, durationMs=1_440)
    model = model_of(snapshot(tasks, "fan out"), *log.events)
    assert model.counters() == (62, 51, 1, 0, 9, 1)
    text = frame(model, 2_000, max_rows=12)
    assert len(text.splitlines()) <= 4 + 12
    matches_snapshot("wide-collapsed", text)
    everything = frame(model, 2_000)
    assert "search 61" in everything and len(everything.splitlines()) == 4 + 62


# ------------------------------------------------------------------------------ model edge cases


def test_an_event_seen_twice_is_applied_once():
    snap, log = diamond()
    model = model_of(snap, *log.events[:3])
    before = frame(model, 2_000)
    assert model.apply(log.events[1]) is False  # seq 3 again
    assert model.apply(log.events[0]) is False
    assert (model.seq, model.ignored, frame(model, 2_000)) == (4, 2, before)


def test_a_replay_after_a_reconnect_overlapping_what_was_seen_loses_and_repeats_nothing():
    snap, log = diamond()
    whole = model_of(snap, *log.events)
    model = model_of(snap, *log.events[:5])  # dropped after seq 6 …
    for event in log.events[3:]:  # … the replay starts earlier than needed
        model.apply(event)
    assert model.ignored == 2
    assert frame(model, 5_000) == frame(whole, 5_000)


def test_a_fresh_snapshot_replaces_the_state():
    snap, log = diamond()
    model = model_of(snap, *log.events[:3])
    later = snapshot(
        [
            {
                **task(1, "Fetch today's forecast"),
                "status": "completed",
                "durationMs": 1_020,
                "result": "slept 1s",
            },
            {**task(2, "Fetch the week's history (slow)", [1]), "status": "running", "startedAt": T0 + 1_160},
            {
                **task(3, "Summarise today", [1], "echo"),
                "status": "completed",
                "durationMs": 60,
                "result": "x",
            },
            task(4, "Write the report", [2, 3], "echo"),
        ],
        REPORT,
        seq=8,
        at=2_000,
    )
    model.apply(later)
    assert model.seq == 8 and model.counters() == (4, 2, 0, 0, 1, 1)
    assert model.apply(log.events[5]) is False  # seq 7: older than the snapshot


def test_without_a_snapshot_tasks_appear_as_their_events_come():
    _, log = diamond()
    model = TraceModel(EID)
    model.apply(
        {
            "type": EXECUTION_CREATED,
            "executionId": EID,
            "timestamp": T0,
            "seq": 1,
            "totalTasks": 4,
            "originalRequest": "r",
        }
    )
    for event in log.events[:4]:
        model.apply(event)
    assert sorted(model.tasks) == [1, 2] and not model.structure_known
    assert model.levels() == [[1, 2]]  # no dependencies known: one list
    assert model.counters() == (4, 1, 0, 0, 1, 2)  # the tasks seen; the others wait
    text = frame(model, 2_000)
    assert "Fetch the week's history" in text and "L0" not in text


def test_heartbeats_only_say_the_stream_is_alive():
    snap, log = diamond()
    model = model_of(snap, *log.events[:2])
    assert model.apply({"type": HEARTBEAT, "executionId": EID, "timestamp": T0 + 30_000}) is False
    assert model.seq == 3 and model.last_heard == T0 + 30_000
    assert "● live" in frame(model, 30_100) and "quiet" not in frame(model, 30_100)
    assert "● live · quiet for 25.0s" in frame(model, 55_000)


def test_the_server_clock_is_estimated_from_receipts():
    model = TraceModel()
    model.apply(
        {"type": HEARTBEAT, "executionId": EID, "timestamp": 10_000}, received_ms=70_150
    )  # our clock is 60 s ahead
    model.apply({"type": HEARTBEAT, "executionId": EID, "timestamp": 11_000}, received_ms=71_050)
    assert model.clock_offset == 60_050
    assert model.server_now(80_000) == 19_950


def test_levels_follow_the_longest_path_and_survive_a_long_chain():
    model = TraceModel()
    model.apply(
        snapshot(
            [task(1, "a"), task(2, "b", [1]), task(3, "c", [1, 2]), task(4, "d"), task(5, "e", [4, 3])],
            "levels",
        )
    )
    assert model.levels() == [[1, 4], [2], [3], [5]]
    chain = TraceModel()
    chain.apply(snapshot([task(i, f"t{i}", [i - 1] if i > 1 else []) for i in range(1, 2_001)], "chain"))
    assert len(chain.levels()) == 2_000


def test_large_and_odd_results_are_cut_readably():
    assert short("a\nb", 10) == "a ⏎ b"
    assert short("x" * 100, 10) == "x" * 9 + "…"
    assert short({"k": [1, 2]}) == '{"k": [1, 2]}'
    lines = result_text("\n".join(f"line {i}" for i in range(40)))
    assert lines.splitlines()[-1] == "… 28 more lines" and len(lines.splitlines()) == 13
    assert result_text("y" * 5_000).endswith("…") and len(result_text("y" * 5_000)) == 1_201
    assert result_text({"a": 1}) == '{\n  "a": 1\n}'
    assert [duration(v) for v in (0, 999, 1_000, 12_345, 61_000, 3_700_000)] == [
        "0ms",
        "999ms",
        "1.00s",
        "12.3s",
        "1m01s",
        "1h01m",
    ]


def test_a_cut_final_result_links_to_the_whole_one():
    snap = snapshot([task(1, "big")], "big")
    model = model_of(
        snap,
        {
            "type": EXECUTION_COMPLETED,
            "executionId": EID,
            "seq": 2,
            "timestamp": T0 + 900,
            "status": "completed",
            "totalTasks": 1,
            "completedTasks": 1,
            "failedTasks": 0,
            "durationMs": 900,
            "finalResult": '"' + "x" * 16_383,
            "finalResultTruncated": True,
            "finalResultBytes": 40_002,
            "finalResultUrl": f"/api/v1/dag-executions/{EID}/result",
        },
    )
    text = frame(model, 1_000)
    assert "cut here; the whole result (40,002 bytes):" in text
    assert f"http://127.0.0.1:8000/api/v1/dag-executions/{EID}/result" in text.replace("\n", "").replace(
        "│", ""
    ).replace(" ", "")


# ------------------------------------------------------------------------------- plain and JSON


def test_plain_lines_one_per_event():
    snap, log = diamond()
    lines = [format_event(e, 0.25 * i) for i, e in enumerate([snap, *log.events])]
    matches_snapshot("diamond-plain", "\n".join(lines) + "\n")
    assert lines[-1].split()[2:5] == ["#14", "execution.completed", "in"]


def test_the_snapshot_line_of_a_finished_execution_says_how_it_ended():
    done = {**snapshot([], "r", seq=9), "status": "completed", "durationMs": 1234, "finalResult": "ok"}
    assert describe(done) == "snapshot: completed, 0/0 done, 0 tasks; in 1234 ms → ok"
    failed = {**snapshot([], "r", seq=9), "status": "failed", "error": "task 1 failed: boom"}
    assert describe(failed).endswith("; task 1 failed: boom")
    assert describe({"type": HEARTBEAT}) == ""
    assert format_event({"type": HEARTBEAT}, 1).split() == ["[", "1.00s]", "heartbeat"]


def test_json_lines_are_the_events_as_sent():
    _, log = diamond()
    for event in log.events:
        line = json_line(event)
        assert "\n" not in line and json.loads(line) == event
    assert "⏎" not in json_line(log.events[10]) and "London" in json_line(log.events[10])


@pytest.mark.parametrize("width", [60, 100, 160])
def test_every_line_fits_the_terminal(width):
    snap, log = diamond()
    model = model_of(snap, *log.events[:6])
    console = Console(record=True, width=width, force_terminal=True, color_system=None)
    console.print(render(model, T0 + 2_500, width))
    assert max(len(line) for line in console.export_text().splitlines()) <= width
