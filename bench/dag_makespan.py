"""bench/dag_makespan — how close dagcast's scheduling gets to a DAG's critical path.

Runs a random DAG (default 200 tasks, each a ``sleep`` of 50–500 ms, 0–3 dependencies on earlier
tasks) on the embedded local stack (moto's Step Functions interpreter running the real state
machine, the real task handlers in-process), twice:

  dag    as written: a task starts when its last dependency finishes;
  waves  the same tasks run level by level (wave scheduling, the baseline): a no-op barrier task
         per level depends on every task of the level, and the next level depends on the barrier.

and prints, from the events' own timestamps:

  makespan / critical path   execution.created → execution.completed, over the longest chain of
                             sleeps (the ideal makespan with infinite workers and zero overhead)
  overhead per task          dependency done → task started (substep.completed of the last
                             dependency, or execution.created for a root → substep.started):
                             median, p99 and max in ms
  DynamoDB calls per task    every call the handlers made, divided by the tasks run (a
                             transaction counts as one call)
  CPU ms per task, of a core the stack's process CPU time over the run (every thread: moto,
                             the interpreter, the handlers, the poller) per task, and as a share
                             of one core over the run's wall time — near 100% the process is
                             saturated and the overhead is the tasks' queue for its interpreter
  WCU per task               the write capacity those calls cost by DynamoDB's billing rules
                             (chalicelib/persistence/capacity.py: a transaction's items bill
                             twice), measured on one more run of the DAG with the write meter on
                             (it reads each written item before and after, which would slow the
                             timed runs): table and indexes together, and the calls of that run
  ideal waves / critical     Σ over levels of the level's longest sleep — what wave scheduling
                             costs with zero overhead, independent of this machine
  chain per hop              first, on the idle stack: a chain of 7 instant (echo) tasks, each
                             depending on the one before; per hop = (last task completed − first
                             task completed) ÷ 6, beside the hop's overhead (done → next started)

Numbers, not assertions: this is `make bench`. The local stack is a single Python process (moto
serves every DynamoDB, Lambda and Step Functions call), so its call throughput bounds the local
overhead; in AWS, DynamoDB and Lambda run the calls in parallel.

    python -m bench.dag_makespan [--tasks 200] [--seed 7] [--max-deps 3] [--chain 7] [--skip-waves]
        [--skip-wcu]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
from typing import Any

from chalicelib.domain.dag import parse_job
from chalicelib.domain.events import TERMINAL_TYPES


def random_dag(n: int, seed: int, max_deps: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tasks = []
    for i in range(1, n + 1):
        k = rng.randint(0, min(max_deps, i - 1))
        deps = sorted(rng.sample(range(1, i), k)) if k else []
        ms = rng.randint(50, 500)
        tasks.append({"id": i, "action": "sleep", "params": {"seconds": ms / 1000}, "dependencies": deps})
    return tasks


def levels_of(tasks: list[dict[str, Any]]) -> dict[int, int]:
    level: dict[int, int] = {}
    for t in tasks:  # ids are in topological order (dependencies are earlier tasks)
        level[t["id"]] = 1 + max((level[d] for d in t["dependencies"]), default=-1)
    return level


def critical_path_ms(tasks: list[dict[str, Any]]) -> float:
    finish: dict[int, float] = {}
    for t in tasks:
        start = max((finish[d] for d in t["dependencies"]), default=0.0)
        finish[t["id"]] = start + t["params"]["seconds"] * 1000
    return max(finish.values())


def ideal_waves_ms(tasks: list[dict[str, Any]]) -> float:
    level = levels_of(tasks)
    longest: dict[int, float] = {}
    for t in tasks:
        longest[level[t["id"]]] = max(longest.get(level[t["id"]], 0.0), t["params"]["seconds"] * 1000)
    return sum(longest.values())


def as_waves(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same tasks, level by level: level L+1 waits for a barrier after every task of level L."""
    level = levels_of(tasks)
    depth = max(level.values()) + 1
    barrier = {lv: len(tasks) + 1 + lv for lv in range(depth - 1)}
    out = []
    for t in tasks:
        lv = level[t["id"]]
        out.append({**t, "dependencies": [barrier[lv - 1]] if lv else []})
    for lv, bid in barrier.items():
        members = [t["id"] for t in tasks if level[t["id"]] == lv]
        out.append({"id": bid, "action": "echo", "params": {"text": ""}, "dependencies": members})
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(stack_services: Any, poll_store: Any, body: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    execution_id = stack_services.orchestrator.submit(parse_job(body))
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events += poll_store.events_after(execution_id, events[-1]["seq"] if events else 0)
        if events and events[-1]["type"] in TERMINAL_TYPES:
            return events
        time.sleep(0.5)
    raise SystemExit(f"{execution_id} did not finish in {timeout:.0f}s")


def measure(events: list[dict[str, Any]], tasks: list[dict[str, Any]], measured: set[int]) -> dict[str, Any]:
    created = next(e["timestamp"] for e in events if e["type"] == "execution.created")
    end = events[-1]
    if end["type"] != "execution.completed":
        raise SystemExit(f"the execution did not complete: {end}")
    started = {e["taskId"]: e["timestamp"] for e in events if e["type"] == "substep.started"}
    done = {e["taskId"]: e["timestamp"] for e in events if e["type"] == "substep.completed"}
    missing = sorted(measured - started.keys())
    if missing:
        raise SystemExit(
            f"no substep.started before {end['type']} for tasks {missing}: "
            + str([(e["seq"], e["type"], e.get("taskId")) for e in events if e.get("taskId") in missing])
        )
    overhead = []
    for t in tasks:
        if t["id"] in measured:
            ready = max((done[d] for d in t["dependencies"]), default=created)
            overhead.append(started[t["id"]] - ready)
    return {"makespan": end["timestamp"] - created, "overhead": overhead}


def chain(n: int) -> list[dict[str, Any]]:
    """n instant tasks, each depending on the one before."""
    return [
        {"id": i, "action": "echo", "params": {"text": ""}, "dependencies": [i - 1] if i > 1 else []}
        for i in range(1, n + 1)
    ]


def print_chain(events: list[dict[str, Any]], n: int) -> None:
    done = {e["taskId"]: e["timestamp"] for e in events if e["type"] == "substep.completed"}
    started = {e["taskId"]: e["timestamp"] for e in events if e["type"] == "substep.started"}
    created = next(e["timestamp"] for e in events if e["type"] == "execution.created")
    hops = [started[i] - done[i - 1] for i in range(2, n + 1)]
    print(
        f"chain of {n} instant tasks, idle stack: {(done[n] - done[1]) / (n - 1):.0f} ms per hop "
        f"(overhead done → next started p50 {statistics.median(hops):.0f} ms, max {max(hops):.0f}); "
        f"created → completed {events[-1]['timestamp'] - created:.0f} ms"
    )


def metered(
    services: Any, poll_store: Any, calls: Any, table: str, tasks: list[dict[str, Any]], timeout: float
) -> str:
    """One more run of the DAG with the write meter on: its calls and WCU per task."""
    import boto3

    from chalicelib.persistence.capacity import WriteMeter

    meter = WriteMeter(boto3.client("dynamodb"), table)
    services.store.meter_writes(meter)
    try:
        before = calls.calls
        run(services, poll_store, {"originalRequest": "bench wcu", "tasks": tasks}, timeout)
    finally:
        meter.detach(services.store._db)
    n = len(tasks)
    wcu = meter.units["table"] + sum(meter.units[i["IndexName"]] for i in meter.indexes)
    return (
        f"dag, metered run: DDB calls/task {(calls.calls - before) / n:.1f}, WCU/task {wcu / n:.1f}"
        f" (table {meter.units['table'] / n:.1f}, of it META {meter.units['META'] / n:.1f};"
        f" write calls/task {meter.calls / n:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-deps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--chain", type=int, default=7, help="tasks in the idle chain (0: skip it)")
    parser.add_argument("--skip-waves", action="store_true")
    parser.add_argument("--skip-wcu", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-bench").start()
    try:
        import boto3

        import app
        from chalicelib.persistence.executions import DynamoStore

        app.services.cache_clear()
        services = app.services()
        poll_store = DynamoStore(boto3.client("dynamodb"), stack.table_name)
        calls = services.store.instrument()

        logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
        # Warm-up: moto imports its Step Functions interpreter on the first execution (~2 s).
        run(services, poll_store, {"tasks": random_dag(3, 0, 1)}, args.timeout)
        if args.chain > 1:
            print_chain(run(services, poll_store, {"tasks": chain(args.chain)}, args.timeout), args.chain)

        tasks = random_dag(args.tasks, args.seed, args.max_deps)
        ids = {t["id"] for t in tasks}
        critical = critical_path_ms(tasks)
        depth = max(levels_of(tasks).values()) + 1
        print(
            f"DAG: {len(tasks)} tasks (seed {args.seed}), {depth} levels, "
            f"{sum(len(t['dependencies']) for t in tasks)} edges, sleeps 50–500 ms, "
            f"critical path {critical / 1000:.2f} s, Σ sleeps {sum(t['params']['seconds'] for t in tasks):.1f} s"
        )
        rows = []
        modes = [("dag", tasks)] + ([] if args.skip_waves else [("waves", as_waves(tasks))])
        for name, job_tasks in modes:
            before = calls.calls
            c0 = time.process_time()
            t0 = time.monotonic()
            events = run(
                services, poll_store, {"originalRequest": f"bench {name}", "tasks": job_tasks}, args.timeout
            )
            wall = time.monotonic() - t0
            cpu = time.process_time() - c0
            m = measure(events, job_tasks, ids)
            per_task = (calls.calls - before) / len(job_tasks)
            rows.append((name, m, per_task, wall, len(job_tasks), cpu))

        print()
        print(
            f"{'mode':<6} {'tasks':>5} {'makespan s':>10} {'÷ critical':>10} {'overhead ms p50':>16} "
            f"{'p99':>7} {'max':>7} {'DDB calls/task':>15} {'CPU ms/task':>12} {'of a core':>10}"
        )
        for name, m, per_task, wall, n, cpu in rows:
            o = m["overhead"]
            print(
                f"{name:<6} {n:>5} {m['makespan'] / 1000:>10.2f} {m['makespan'] / critical:>10.2f} "
                f"{statistics.median(o):>16.0f} {percentile(o, 0.99):>7.0f} {max(o):>7.0f} {per_task:>15.1f}"
                f" {cpu / n * 1000:>12.1f} {cpu / wall:>10.0%}"
            )
        print(f"ideal waves (zero overhead) ÷ critical path: {ideal_waves_ms(tasks) / critical:.2f}")
        if not args.skip_wcu:
            print(metered(services, poll_store, calls, stack.table_name, tasks, args.timeout))
        if len(rows) == 2:
            print(
                f"waves makespan ÷ dag makespan (same run, same machine): "
                f"{rows[1][1]['makespan'] / rows[0][1]['makespan']:.2f}"
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
