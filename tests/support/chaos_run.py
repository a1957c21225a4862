"""`make chaos`: the long chaos run — random DAGs through the real state machine on the local stack
while DynamoDB calls of the Lambdas fail at random (throttled, 5xx, or applied with the answer
lost; tests/support/chaos.py), and while the task Lambda crashes, times out or runs twice
(tests/support/chaos_tasks.py). Prints what was injected and checked; exits 1 if any event was lost or
duplicated, a task ran before its dependencies, or an execution did not end as its policy says.

    python -m tests.support.chaos_run [--rounds 4] [--tasks 12] [--rate 0.15] [--seed 1]

The short version of this runs in `make test` (tests/functional/test_chaos.py and
test_chaos_lost_answers.py).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.chaos import FaultInjector
from tests.support.chaos_tasks import crashing, lambda_clients, timing_out, twice
from tests.support.jobs import echo, fail

MODES = ("throttle", "5xx", "lost")


def random_job(rng: random.Random, n: int) -> dict[str, Any]:
    tasks = []
    for i in range(1, n + 1):
        deps = sorted(rng.sample(range(1, i), k=min(i - 1, rng.randint(0, 3)))) if i > 1 else []
        if rng.random() < 0.1:
            tasks.append(fail(i, f"task {i} fails", deps))
        else:
            tasks.append(echo(i, f"task {i}", deps))
    return {"tasks": tasks, "failurePolicy": rng.choice(["failFast", "continue"])}


def check(job: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """What is wrong with this execution's log (empty: nothing)."""
    problems = []
    seqs = [e["seq"] for e in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(f"not gapless: {seqs}")
    keys = [
        (e["type"], e.get("taskId"), e.get("attempt")) for e in events if e["type"] != "execution.updated"
    ]
    twice = sorted({k for k in keys if keys.count(k) > 1}, key=str)
    if twice:
        problems.append(f"written twice: {twice}")
    started = {e["taskId"]: e["seq"] for e in events if e["type"] == "substep.started"}
    completed = {e["taskId"]: e["seq"] for e in events if e["type"] == "substep.completed"}
    for t in job["tasks"]:
        for dep in t["dependencies"]:
            if t["id"] in started and not (dep in completed and completed[dep] < started[t["id"]]):
                problems.append(f"task {t['id']} started before dependency {dep} completed")
    fails = any(t["action"] == "fail" for t in job["tasks"])
    end = events[-1]["type"] if events else None
    if end != ("execution.failed" if fails else "execution.completed"):
        problems.append(f"ended with {end}")
    if not fails and set(completed) != {t["id"] for t in job["tasks"]}:
        problems.append(f"not every task completed: {sorted(completed)}")
    return problems


@dataclass
class Tally:
    """What the run injected and found, execution by execution."""

    injected: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    bad: int = 0

    def record(
        self,
        mode: str,
        r: int,
        job: dict[str, Any],
        events: list[dict[str, Any]],
        faults: int,
        seconds: float,
    ) -> None:
        problems = check(job, events)
        self.injected[mode] += faults
        self.checked += len(events)
        self.lost += sum(1 for p in problems if p.startswith("not gapless"))
        self.duplicated += sum(1 for p in problems if p.startswith("written twice"))
        self.bad += len(problems)
        status = "ok" if not problems else "; ".join(problems)
        print(
            f"  {mode:<8} #{r + 1}: {len(events):3d} events, {faults:3d} faults, {seconds:5.1f} s — {status}"
        )

    def summary(self) -> str:
        kinds = ", ".join(f"{m} {n}" for m, n in self.injected.items())
        return (
            f"faults injected: {sum(self.injected.values())} ({kinds}); events checked: {self.checked}; "
            f"lost: {self.lost}; duplicated: {self.duplicated}; "
            f"other problems: {self.bad - self.lost - self.duplicated}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="executions per fault mode")
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--rate", type=float, default=0.15, help="share of DynamoDB calls that fail")
    parser.add_argument(
        "--task-rate", type=float, default=0.3, help="share of task Lambda runs that crash/hang"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-chaos").start()
    try:
        import app
        from chalicelib.domain.dag import parse_job
        from tests.functional.conftest import wait_for_end

        logging.getLogger("dagcast-fanout").setLevel(logging.ERROR)
        logging.getLogger("moto").setLevel(logging.CRITICAL)  # a failed DAG is an expected outcome here
        app.services.cache_clear()
        services = app.services()
        rng = random.Random(args.seed)
        tally = Tally()
        print(
            f"chaos: {args.rounds} executions × {len(MODES) + 3} fault modes, {args.tasks} tasks each; "
            f"DynamoDB fault rate {args.rate}, task Lambda fault rate {args.task_rate}"
        )
        for mode in MODES:
            for r in range(args.rounds):
                job = random_job(rng, args.tasks)
                t0 = time.monotonic()
                with FaultInjector(lambda_clients(), mode, args.rate, seed=rng.randint(0, 10**6)) as faults:
                    eid = services.orchestrator.submit(parse_job(job))
                    events = wait_for_end(services, eid, timeout=300)
                tally.record(mode, r, job, events, sum(faults.injected.values()), time.monotonic() - t0)
        # The task Lambda itself: crashes, Lambda timeouts, duplicate invocations (tests/support/chaos_tasks.py).

        wrappers: dict[str, Callable[[Any, random.Random], Any]] = {
            "crash": lambda real, r: crashing(real, args.task_rate, r, when="any"),
            "timeout": lambda real, r: timing_out(real, args.task_rate, r, timeout_seconds=2.0),
            "twice": lambda real, r: twice(
                real, 1.0, r, mode=r.choice(["sequential", "concurrent", "interleaved"])
            ),
        }
        for mode, make in wrappers.items():
            for r in range(args.rounds):
                job = random_job(rng, args.tasks)
                t0 = time.monotonic()
                faulty = make(stack.handlers["run_task"], random.Random(rng.randint(0, 10**6)))
                with stack.handler_override("run_task", faulty):
                    eid = services.orchestrator.submit(parse_job(job))
                    events = wait_for_end(services, eid, timeout=300)
                    faulty.join()
                tally.record(mode, r, job, events, sum(faulty.faults().values()), time.monotonic() - t0)
        print(tally.summary())
        return 0 if tally.bad == 0 else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
