"""Big DAGs through the real state machine on the local stack: 1,000 tasks with levels 500 wide.

Not part of `make test` (minutes of moto CPU on a 2-core machine): `make big` runs it. It asserts
correctness, not speed — speed is `make bench` (bench/dag_makespan.py)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import pytest

from chalicelib.domain.dag import parse_job
from tests.functional.conftest import assert_gapless, wait_for_end
from tests.support.jobs import echo

pytestmark = pytest.mark.big


def big_job(width: int = 500, seed: int = 3) -> dict[str, Any]:
    """1 root → ``width`` tasks → ``width - 1`` tasks, each on 2 random tasks of the level above."""
    rng = random.Random(seed)
    first = list(range(2, width + 2))
    tasks = [echo(1, "root")]
    tasks += [echo(t, f"a{t} <- {{{{1}}}}", [1]) for t in first]
    second = range(width + 2, 2 * width + 1)
    tasks += [echo(t, f"b{t}", sorted(rng.sample(first, 2))) for t in second]
    return {"originalRequest": "big", "tasks": tasks}


def test_a_thousand_tasks_with_levels_500_wide_run_exactly_once_in_dependency_order(services):
    width = int(os.environ.get("DAGCAST_BIG_WIDTH", "500"))  # smaller for a quicker look
    body = big_job(width)
    n = len(body["tasks"])
    assert n == 2 * width
    started = time.monotonic()
    eid = services.orchestrator.submit(parse_job(body))
    events = wait_for_end(services, eid, timeout=3600)
    elapsed = time.monotonic() - started

    assert events[-1]["type"] == "execution.completed", events[-1]
    assert_gapless(events, eid)
    kinds = Counter(e["type"] for e in events)
    assert "substep.failed" not in kinds, [e for e in events if e["type"] == "substep.failed"][:3]
    assert kinds["substep.started"] == kinds["substep.completed"] == n
    seq_of = {(e["type"], e.get("taskId")): e["seq"] for e in events}
    for t in body["tasks"]:
        for dep in t["dependencies"]:
            assert seq_of[("substep.completed", dep)] < seq_of[("substep.started", t["id"])]
    snapshot = services.orchestrator.snapshot(eid)
    assert snapshot["completedTasks"] == n and snapshot["status"] == "completed"
    depended_on = {d for t in body["tasks"] for d in t["dependencies"]}
    sinks = {str(t["id"]) for t in body["tasks"] if t["id"] not in depended_on}
    assert set(events[-1]["finalResult"]) == sinks  # one entry per sink
    print(f"\n{n} tasks ({width} wide): {elapsed:.0f} s, {len(events)} events")
