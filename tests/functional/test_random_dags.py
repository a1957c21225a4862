"""Property test: random DAGs, failures, policies and concurrency limits through the real state
machine. Whatever the shape, every execution ends (no deadlock), the log is gapless, no task starts
before its dependencies completed, limits hold, and the outcome is the one the policy defines."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functional.conftest import assert_gapless, run_job
from tests.support.jobs import echo, fail


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=1, max_value=8))
    tasks = []
    for i in range(1, n + 1):
        deps = sorted(draw(st.sets(st.integers(min_value=1, max_value=i - 1), max_size=3))) if i > 1 else []
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            tasks.append(fail(i, f"task {i} fails", deps))
        else:
            tasks.append(echo(i, "".join(f"<{{{{{d}}}}}>" for d in deps) or f"leaf {i}", deps))
    job: dict[str, Any] = {"tasks": tasks, "failurePolicy": draw(st.sampled_from(["failFast", "continue"]))}
    limit = draw(st.sampled_from([None, 1, 2, 3]))
    if limit is not None:
        job["maxConcurrency"] = limit
    return job


def expected_under_continue(job: dict[str, Any]) -> dict[int, str]:
    """Reference model: a task completes iff it is not a failing task and all its dependencies completed."""
    out: dict[int, str] = {}
    for t in job["tasks"]:  # ids are in topological order by construction
        if any(out[d] != "completed" for d in t["dependencies"]):
            out[t["id"]] = "upstream"
        else:
            out[t["id"]] = "error" if t["action"] == "fail" else "completed"
    return out


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=jobs())
def test_random_dags_always_end_correctly(services, job):
    eid, events = run_job(services, job, timeout=90)
    assert_gapless(events, eid)
    tasks = {t["id"]: t for t in job["tasks"]}
    seq = {(e["type"], e.get("taskId")): e["seq"] for e in events}
    outcome: dict[int, str] = {}
    for e in events:
        if e["type"] == "substep.completed":
            outcome[e["taskId"]] = "completed"
        elif e["type"] == "substep.failed" and not e["willRetry"]:
            outcome[e["taskId"]] = e["reason"]
    assert set(outcome) == set(tasks), "every task ends exactly once"
    for tid, t in tasks.items():
        if ("substep.started", tid) in seq:
            for d in t["dependencies"]:
                assert seq[("substep.completed", d)] < seq[("substep.started", tid)]
    running = peak = 0
    for e in events:
        running += {"substep.started": 1, "substep.completed": -1}.get(e["type"], 0)
        if e["type"] == "substep.failed" and e.get("attempt"):
            running -= 1
        peak = max(peak, running)
    assert peak <= job.get("maxConcurrency", len(tasks))
    reference = expected_under_continue(job)
    if job["failurePolicy"] == "continue":
        assert outcome == reference
    else:
        # failFast: what completed could complete; failures are real; the rest never ran
        for tid, got in outcome.items():
            assert got in ("completed", "error", "skipped", "upstream")
            if got in ("completed", "error"):
                assert got == reference[tid]
            else:
                assert ("substep.started", tid) not in seq
        if "error" in reference.values():
            assert "error" in outcome.values()
    final = events[-1]
    all_done = all(v == "completed" for v in outcome.values())
    assert final["type"] == ("execution.completed" if all_done else "execution.failed")
