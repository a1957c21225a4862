"""Chaos of the task Lambda itself (issue 8), inside `make test`: ``run_task`` crashes, times out or
is delivered twice (tests/support/chaos_tasks.py) while real jobs run through the real state machine. The
log stays gapless with each event once, every task completes once and never before its
dependencies, its result is stored once, and the execution ends as AWS would end it: Step
Functions retries a failed ``Run`` twice (the ASL), then Catch → ``record_failure`` fails the task
with ``task runner failed: <Error>: <message>`` — unless its work was already done.

Each test runs its scenarios as concurrent executions (one wrapper per execution), to keep the
file short."""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.domain.dag import parse_job
from chalicelib.orchestration.submission import new_execution_id
from chalicelib.persistence.keys import pk
from tests.functional.conftest import (
    assert_every_finish_updated,
    assert_gapless,
    by_type,
    echo,
    sleep,
    wait_for_end,
)
from tests.support.chaos_tasks import (
    RUN_LAMBDA_RETRIES,
    Answer,
    FaultyHandler,
    Mode,
    When,
    crashing,
    timing_out,
    twice,
)
from tests.support.jobs import task

Wrap = Callable[[Any], FaultyHandler]  # the real handler → the wrapper for one execution


def python(tid: int, function: str, key: str, deps: list[int], **extra: Any) -> dict[str, Any]:
    return {**task(tid, "python", {"function": function, "args": {"key": key}}, deps), **extra}


def chaos_job() -> dict[str, Any]:
    """A root, a fan-out, a task that fails its first attempt (retried), a large result that
    differs on every run, and a join of them all."""
    key = uuid.uuid4().hex[:8]
    return {
        "tasks": [
            echo(1, "root"),
            *[echo(i, f"mid {i} <{{{{1}}}}>", [1]) for i in (2, 3, 4)],
            python(5, "chaos.fails_first", f"flaky-{key}", [2], retries={"count": 1, "backoffSeconds": 0}),
            python(6, "chaos.stamp", f"big-{key}", [1]),
            echo(7, "join {{3}} {{4}} {{5}}", [3, 4, 5, 6]),
        ]
    }


@contextmanager
def executions(
    stack, services, scenarios: dict[str, tuple[dict[str, Any], Wrap]]
) -> Iterator[dict[str, Any]]:
    """Run one job per scenario at once, each execution's run_task wrapped by its own wrapper.
    Yields {scenario: (execution id, job, wrapper, events)} once every execution has ended."""
    wrappers: dict[str, FaultyHandler] = {}
    plain = stack.handlers["run_task"]  # the real handler, for any other execution
    with stack.handler_override(
        "run_task", lambda e, c: wrappers.get(e.get("executionId"), plain)(e, c)
    ) as real:
        ids = {name: new_execution_id() for name in scenarios}
        for name, (_, wrap) in scenarios.items():
            wrappers[ids[name]] = wrap(real)
        for name, (job, _) in scenarios.items():
            services.orchestrator.submit(parse_job(job), ids[name])
        ended = {name: wait(services, ids[name]) for name in scenarios}
    for w in wrappers.values():
        w.join()
    yield {name: (ids[name], scenarios[name][0], wrappers[ids[name]], ended[name]) for name in scenarios}


def wait(services, eid: str, timeout: float = 90) -> list[dict[str, Any]]:
    """wait_for_end, with a short account of the events and tasks if the execution is stuck."""
    try:
        return wait_for_end(services, eid, timeout)
    except AssertionError:
        events = services.store.events_after(eid, 0)
        short = [(e["seq"], e["type"], e.get("taskId"), e.get("attempt"), e.get("willRetry")) for e in events]
        tasks = {t["taskId"]: (t["status"], t.get("attempt")) for t in services.store.get_tasks(eid)}
        raise AssertionError(f"{eid} did not finish in {timeout}s; events: {short}; tasks: {tasks}") from None


def result_items(services, eid: str, task_id: int, run: str = "") -> int:
    """How many RESULT# items the task has (of run ``run`` only, if given)."""
    prefix = f"RESULT#{task_id:016d}#" + (f"{run}#" if run else "")
    out = services.store._db.query(
        TableName=services.settings.table_name,
        KeyConditionExpression="PK = :p AND begins_with(SK, :s)",
        ExpressionAttributeValues={":p": {"S": pk(eid)}, ":s": {"S": prefix}},
        ConsistentRead=True,
    )
    return len(out["Items"])


def assert_ran_right(
    services, eid: str, job: dict[str, Any], events: list[dict[str, Any]], killed: bool = False
) -> None:
    """Gapless and once each; every task completed once, after its dependencies; its result stored
    once (the stored result is the one its event shows; no other run's chunks left, unless
    ``killed``: a run killed between writing its chunks and finishing the task leaves them);
    progress counters never go backwards; nothing left running; nothing written after the
    terminal event."""
    assert_gapless(events, eid)
    assert events[-1]["type"] == "execution.completed", str(
        [(e["seq"], e["type"], e.get("taskId"), e.get("error")) for e in events]
    )
    assert services.store.events_after(eid, 0) == events
    completed = by_type(events, "substep.completed")
    assert sorted(completed) == sorted(t["id"] for t in job["tasks"])
    assert not [e for e in events if e["type"] == "substep.failed" and not e["willRetry"]]
    deps = {t["id"]: t["dependencies"] for t in job["tasks"]}
    for e in events:
        if e["type"] == "substep.started":
            for d in deps[e["taskId"]]:
                assert completed[d]["seq"] < e["seq"], f"task {e['taskId']} started before {d} completed"
    assert_every_finish_updated(events)
    progress = [e for e in events if e["type"] == "execution.updated"]
    for before, after in itertools.pairwise(progress):
        for counter, sign in (("completedTasks", 1), ("waitingTasks", -1)):
            assert sign * after[counter] >= sign * before[counter], (counter, before["seq"], progress)
    snap = services.orchestrator.snapshot(eid)
    assert (snap["status"], snap["completedTasks"], snap["runningTasks"]) == ("completed", len(deps), 0)
    for t in snap["tasks"]:
        item = services.store.get_task(eid, t["taskId"])
        stored = services.store.result_json(eid, item)
        shown = completed[t["taskId"]]
        if shown.get("resultTruncated"):
            assert stored is not None and len(stored.encode()) == shown["resultBytes"]
            assert stored.startswith(shown["result"])
            json.loads(stored)
            assert result_items(services, eid, t["taskId"], item["resultRun"]) == item["resultChunks"]
            if not killed:
                assert result_items(services, eid, t["taskId"]) == item["resultChunks"]
        else:
            assert stored is not None and json.loads(stored) == shown["result"]
    r = {tid: e.get("result") for tid, e in completed.items()}
    assert re.fullmatch(r"flaky-\w+ ok on call \d+", str(r[5]))
    assert events[-1]["finalResult"] == f"join {r[3]} {r[4]} {r[5]}"


def test_task_lambdas_that_crash_at_random_end_right(services, stack):
    """A share of the run invocations die — before the handler ran, at one of its AWS calls, or
    after it did everything (the answer lost). Never more than Step Functions retries in a row,
    so every task gets through and every execution completes."""
    cases: list[tuple[When, int]] = [("before", 4), ("during", 12), ("after", 14)]
    scenarios: dict[str, tuple[dict[str, Any], Wrap]] = {
        when: (chaos_job(), functools.partial(crashing, rate=0.4, rng=random.Random(seed), when=when))
        for when, seed in cases
    }
    with executions(stack, services, scenarios) as ran:
        for when, (eid, job, wrapper, events) in ran.items():
            faults = wrapper.faults()
            assert sum(faults.values()) >= 2, (when, faults, wrapper.log)
            if when != "during":  # (a dying run may make fewer AWS calls than it was to die at)
                in_a_row = max(i.n for i in wrapper.log if i.fault)
                assert in_a_row == RUN_LAMBDA_RETRIES, (when, wrapper.log)  # the retries were used up
            assert_ran_right(services, eid, job, events, killed=when == "during")


def test_a_task_lambda_that_always_crashes(services, stack):
    """Every run of task 2 dies before doing anything: Step Functions retries it twice, then the
    task fails through record_failure with AWS's error and no stack trace; its dependent never
    runs. Every run of task 3 dies after doing its work: the task did complete, and stays so."""
    job = {
        "failurePolicy": "continue",
        "tasks": [echo(1, "a"), echo(2, "b", [1]), echo(3, "c", [1]), echo(4, "d", [2]), echo(5, "e", [3])],
    }

    def wrap(real):
        inner = crashing(real, 1.0, random.Random(4), when="before", max_in_a_row=None, tasks={2})
        return crashing(inner, 1.0, random.Random(5), when="after", max_in_a_row=None, tasks={3})

    with executions(stack, services, {"always": (job, wrap)}) as ran:
        eid, _, outer, events = ran["always"]
    assert_gapless(events, eid)
    runs = RUN_LAMBDA_RETRIES + 1
    assert outer.faults() == {"crash after": runs} and outer.real.faults() == {"crash before": runs}
    failed = by_type(events, "substep.failed")
    assert set(failed) == {2, 4}
    assert re.fullmatch(
        r"task runner failed: Runtime\.ExitError: RequestId: [\w-]+ Error: Runtime exited with error: signal: killed",
        failed[2]["error"],
    ), failed[2]
    assert (failed[2]["reason"], failed[2]["willRetry"]) == ("error", False)
    assert (failed[4]["reason"], failed[4]["upstreamTaskIds"]) == ("upstream", [2])
    assert sorted(by_type(events, "substep.completed")) == [1, 3, 5]
    end = events[-1]
    assert (end["type"], end["reason"], end["completedTasks"], end["failedTasks"]) == (
        "execution.failed",
        "taskFailed",
        3,
        2,
    )
    assert end["error"] == f"task 2 (echo 2) failed: {failed[2]['error']}"
    assert services.orchestrator.snapshot(eid)["runningTasks"] == 0


def test_task_lambdas_that_time_out_at_random_end_right(services, stack):
    """A share of the run invocations hang past the Lambda's timeout — before the handler starts,
    or after its work — and fail with Sandbox.Timedout. AWS stops such a Lambda (``stopped``); an
    in-process one that carries on (``zombie``) overlaps Step Functions' retry of it."""
    scenarios: dict[str, tuple[dict[str, Any], Wrap]] = {
        name: (
            chaos_job(),
            functools.partial(
                timing_out, rate=0.3, rng=random.Random(seed), timeout_seconds=1.5, zombie=zombie
            ),
        )
        for name, zombie, seed in (("stopped", False, 3), ("zombie", True, 17))
    }
    with executions(stack, services, scenarios) as ran:
        for name, (eid, job, wrapper, events) in ran.items():
            faults = wrapper.faults()
            assert faults["timeout (before)"] + faults["timeout (after)"] >= 2, (name, wrapper.log)
            # (a run slower than 1.5 s times out too, on a slow machine: stopped mid-way, it may
            # leave the chunks of a result it did not record)
            assert_ran_right(services, eid, job, events, killed=True)


def test_a_task_whose_lambda_always_times_out_fails_clearly(services, stack):
    """Task 2 sleeps 2 s in a Lambda with a 0.5 s timeout: every run times out (and is stopped), so
    after Step Functions' retries the task fails with AWS's timeout error; failFast skips the rest."""
    job = {"tasks": [echo(1, "a"), sleep(2, 2, [1]), echo(3, "c", [2]), echo(4, "d", [1])]}

    def wrap(real):
        return timing_out(real, 0.0, random.Random(8), timeout_seconds=0.5, tasks={2})

    with executions(stack, services, {"slow": (job, wrap)}) as ran:
        eid, _, wrapper, events = ran["slow"]
    assert_gapless(events, eid)
    assert wrapper.faults() == {"timeout (slow)": RUN_LAMBDA_RETRIES + 1}, wrapper.log
    failed = by_type(events, "substep.failed")
    error = failed[2]["error"]
    assert re.fullmatch(
        r"task runner failed: Sandbox\.Timedout: RequestId: [\w-]+ Error: Task timed out after 0\.50 seconds",
        error,
    ), error
    assert (failed[2]["reason"], failed[2]["willRetry"]) == ("error", False)
    assert [e["attempt"] for e in events if e["type"] == "substep.started" and e["taskId"] == 2] == [1]
    assert failed[3]["reason"] == "skipped" and 3 not in by_type(events, "substep.started")
    end = events[-1]
    assert (end["type"], end["reason"], end["error"]) == (
        "execution.failed",
        "taskFailed",
        f"task 2 (sleep 2) failed: {error}",
    )
    snap = services.orchestrator.snapshot(eid)
    assert snap["runningTasks"] == 0
    assert {t["taskId"]: t["status"] for t in snap["tasks"]} == {
        1: "completed",
        2: "failed",
        3: "skipped",
        4: "completed",
    }


def test_task_lambdas_delivered_twice_end_right(services, stack):
    """Every run invocation is delivered twice with the same event — one after the other, at
    once, or the duplicate paused before one of its AWS calls until the first has returned — and
    Step Functions gets one answer. Each event once, each result stored once (the large one, which
    differs on every run, too), and every execution completes."""
    cases: list[tuple[Mode, Answer, int]] = [
        ("sequential", "second", 9),
        ("concurrent", "first", 10),
        ("interleaved", "second", 11),
    ]
    scenarios: dict[str, tuple[dict[str, Any], Wrap]] = {
        mode: (
            chaos_job(),
            functools.partial(twice, rate=1.0, rng=random.Random(seed), mode=mode, answer=answer),
        )
        for mode, answer, seed in cases
    }
    with executions(stack, services, scenarios) as ran:
        for _, (eid, job, wrapper, events) in ran.items():
            assert sum(wrapper.faults().values()) >= len(job["tasks"])
            assert_ran_right(services, eid, job, events)


def test_a_duplicate_that_started_the_attempt_before_the_first_finished_it(services, stack):
    """Regression (found by the test above). The duplicate of a run starts the attempt, then
    pauses (before its 4th AWS call) until the first invocation has returned:

    - ``answered``, task 5: the first run failed the attempt (retry); the duplicate's run
      succeeded but could not record it, and Step Functions got its answer. It used to answer
      ``retrying`` — not ``retry`` — so the task's branch ended with the task never run again
      and task 7 waiting for good.
    - ``answered``, task 6: the duplicate's different large result used to overwrite the chunks
      of the recorded one: the stored result was a mix of both (not even JSON), so task 7 failed.
    - ``died``, tasks 2 and 6: the duplicate counted the finished task as running again, then
      died: the finished execution showed ``runningTasks`` > 0 for good."""
    scenarios: dict[str, tuple[dict[str, Any], Wrap]] = {
        "answered": (
            chaos_job(),
            lambda real: twice(real, 1.0, random.Random(12), mode="interleaved", pause_at=4, tasks={5, 6}),
        ),
        "died": (
            chaos_job(),
            lambda real: twice(
                real,
                1.0,
                random.Random(13),
                mode="interleaved",
                answer="first",
                pause_at=4,
                die_at=5,
                tasks={2, 6},
            ),
        ),
    }
    with executions(stack, services, scenarios) as ran:
        for eid, job, wrapper, events in ran.values():
            assert sum(wrapper.faults().values()) >= 2
            assert_ran_right(services, eid, job, events)
        done = by_type(ran["answered"][3], "substep.completed")
        assert (done[5]["attempt"], done[6]["resultBytes"]) == (2, 150_002)  # the first run's result
