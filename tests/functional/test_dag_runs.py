"""DAG shapes run end to end through the real ASL on moto with the real handlers."""

from __future__ import annotations

from tests.functional.conftest import assert_gapless, by_type, echo, fail, run_job, sleep


def test_diamond(services):
    body = {
        "originalRequest": "diamond",
        "tasks": [
            echo(1, "root"),
            echo(2, "left of {{1}}", [1]),
            echo(3, "right of {{1}}", [1]),
            echo(4, "{{2}} + {{3}}", [2, 3]),
        ],
    }
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    assert events[0] == {
        "type": "execution.created",
        "executionId": eid,
        "timestamp": events[0]["timestamp"],
        "seq": 1,
        "totalTasks": 4,
        "originalRequest": "diamond",
    }
    seq = {(e["type"], e.get("taskId")): e["seq"] for e in events}
    for child in (2, 3):
        assert seq[("substep.completed", 1)] < seq[("substep.started", child)]
        assert seq[("substep.completed", child)] < seq[("substep.started", 4)]
    done = by_type(events, "substep.completed")
    assert done[4]["result"] == "left of root + right of root"
    assert set(done[4]) == {
        "type",
        "executionId",
        "timestamp",
        "seq",
        "subStepId",
        "taskId",
        "durationMs",
        "attempt",
        "result",
    }
    assert done[4]["subStepId"] == "4" and done[4]["durationMs"] >= 0
    final = events[-1]
    assert final["type"] == "execution.completed"
    assert final["status"] == "completed"
    assert (final["completedTasks"], final["failedTasks"]) == (4, 0)
    assert final["finalResult"] == "left of root + right of root"
    assert final["durationMs"] > 0
    updates = [e for e in events if e["type"] == "execution.updated"]
    assert len(updates) == 4
    counts = [u["completedTasks"] for u in updates]
    assert counts == sorted(counts) and counts[-1] == 4  # counters never go backwards
    for u in updates:  # and never lag behind the events before them
        assert u["completedTasks"] >= sum(
            1 for e in events if e["type"] == "substep.completed" and e["seq"] < u["seq"]
        )
    assert updates[-1]["waitingTasks"] == 0


def test_fan_out_fan_in(services):
    width = 8
    tasks = [echo(1, "seed")]
    tasks += [echo(i, f"branch {i} of {{{{1}}}}", [1]) for i in range(2, 2 + width)]
    tasks += [echo(99, " | ".join(f"{{{{{i}}}}}" for i in range(2, 2 + width)), list(range(2, 2 + width)))]
    eid, events = run_job(services, {"originalRequest": "fan", "tasks": tasks})
    assert_gapless(events, eid)
    started = by_type(events, "substep.started")
    done = by_type(events, "substep.completed")
    assert set(done) == {1, 99, *range(2, 2 + width)}
    assert all(started[i]["seq"] > done[1]["seq"] for i in range(2, 2 + width))
    assert all(started[99]["seq"] > done[i]["seq"] for i in range(2, 2 + width))
    expected = " | ".join(f"branch {i} of seed" for i in range(2, 2 + width))
    assert events[-1]["finalResult"] == expected


def test_several_sinks_give_a_result_per_sink(services):
    _, events = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b:{{1}}", [1]), echo(3, "c")]})
    assert events[-1]["finalResult"] == {"2": "b:a", "3": "c"}


def test_continue_policy_a_failure_fails_its_dependents_and_the_rest_runs(services):
    body = {
        "originalRequest": "failure",
        "failurePolicy": "continue",
        "tasks": [
            echo(1, "ok"),
            fail(2, "the API said no", [1]),
            echo(3, "never {{2}}", [2]),
            echo(4, "never {{3}}", [3]),
            sleep(5, 0.2),
            echo(6, "needs {{3}} and {{5}}", [3, 5]),
        ],
    }
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    started = by_type(events, "substep.started")
    failed = by_type(events, "substep.failed")
    completed = by_type(events, "substep.completed")
    assert set(completed) == {1, 5}
    assert set(started) == {1, 2, 5}  # upstream-failed tasks never start
    assert failed[2]["error"] == "the API said no"
    assert (failed[2]["reason"], failed[2]["attempt"], failed[2]["willRetry"]) == ("error", 1, False)
    assert failed[3] == {
        "type": "substep.failed",
        "executionId": eid,
        "timestamp": failed[3]["timestamp"],
        "seq": failed[3]["seq"],
        "subStepId": "3",
        "taskId": 3,
        "error": "upstream task 2 did not complete",
        "reason": "upstream",
        "willRetry": False,
        "upstreamTaskIds": [2],
    }
    assert failed[4]["upstreamTaskIds"] == [3]
    assert failed[6]["upstreamTaskIds"] == [3]
    assert failed[3]["seq"] > failed[2]["seq"] and failed[4]["seq"] > failed[3]["seq"]
    final = events[-1]
    assert final["type"] == "execution.failed"
    assert final["status"] == "failed"
    assert (final["completedTasks"], final["failedTasks"]) == (2, 4)
    assert final["error"] == "task 2 (fail 2) failed: the API said no"


def test_snapshot_after_the_end(services):
    eid, events = run_job(services, {"tasks": [echo(1, "x"), fail(2, "bad", [1])]})
    snap = services.orchestrator.snapshot(eid)
    assert snap["seq"] == events[-1]["seq"]
    assert snap["status"] == "failed"
    assert [(t["taskId"], t["status"]) for t in snap["tasks"]] == [(1, "completed"), (2, "failed")]
    assert snap["tasks"][0]["result"] == "x"
    assert snap["tasks"][1]["error"] == "bad"
