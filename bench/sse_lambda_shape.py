"""bench/sse_lambda_shape — what watching one execution costs its DynamoDB partition, in Lambda's shape.

One moto server (a process) holds the table; the SSE app runs as uvicorn processes of
``bench.lambda_shape_app:app_factory`` (the SSE function's app plus a stats route), with stream
leases on and disconnect detection off, as template.yaml runs it. Two shapes, one after the other,
each watching an execution of its own under the same pinned workload:

  on-demand          K processes (DAGCAST_SSE_PROFILE=on-demand), ONE viewer each: a standard
                     Lambda environment serves one stream, so every viewer polls on its own;
  managed-instances  ONE process (DAGCAST_SSE_PROFILE=managed-instances) with K viewers: one
                     Managed Instances environment, its hub polling once for all of them.

Workload (pinned): the execution emits 10 events/s (substep.started / substep.completed with a
100–700 character result in its preview: items ≤ 1 KB, measured and printed); the viewers join
while it does and get their snapshot; ``--settle`` seconds later the *events* phase is measured for
``--events-seconds``; then nothing for ``--quiet-seconds`` (the *quiet* phase); then a *wake-up*
burst (1 s at 10 events/s) shows what the first events after a quiet spell wait (the back-off's
ceiling, DAGCAST_IDLE_POLL_SECONDS). Per shape, for the execution's partition only (the stream caps'
slot items are partitions of their own), from the processes' read meters (chalicelib/persistence/
capacity.py: RCU computed from the items' sizes, the rule DynamoDB bills by): queries/s and RCU/s,
consistent vs eventually consistent, per viewer (on-demand) or per environment (managed-instances),
while events flow and while quiet; write→client latency (the event's ``timestamp``, taken just
before its put, against its receipt) of the events phase and of the wake-up; the projection to
1,000 and 10,000 viewers against the partition's 3,000 RCU/s; $ per viewer-hour; and the issue's
goals, PASS or FAIL. It asserts nothing (exit 0).

    python -m bench.sse_lambda_shape [--on-demand-processes 12] [--viewers 200]
        [--events-seconds 20] [--quiet-seconds 30] [--settle 2]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx

from bench.lambda_shape_app import STATS_PATH
from bench.sse_fanout import raise_fd_limit
from bench.sse_gzip import WORDS
from bench.sse_lambda_viewers import Viewer, connect_all
from chalicelib.config import SSE_PROFILES
from chalicelib.domain import events as ev
from chalicelib.domain import previews
from chalicelib.domain.model import now_ms
from chalicelib.persistence.capacity import item_size, read_units
from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import EVENT_PREFIX, pk
from chalicelib.stream.polling import PollSchedule
from tests.support.cloudformation import template
from tests.support.sse_servers import moto_table, sse_processes

TABLE = "dagcast-bench-shape"
APP = "bench.lambda_shape_app:app_factory"
EVENTS_PER_SECOND = 10
PARTITION_RCU = 3000.0  # DynamoDB's read throughput per partition (RCU/s)
VIEWER_COUNTS = (1_000, 10_000)
LATENCY_GOAL_MS = 500.0
WAKE_DELIVERY_SECONDS = 3.0  # after the wake-up burst: its events' delivery (> the back-off's 2 s ceiling)
ON_DEMAND_QUIET_GOAL, ON_DEMAND_EVENTS_GOAL = 0.5, 5.0  # RCU/s per viewer

# Prices: AWS list prices, us-east-1, as published in 2025 and pinned here on 2026-12-05. NOT
# fetched by this run (no network here): check them before quoting a figure.
#   Lambda: https://aws.amazon.com/lambda/pricing/ (x86, first duration tier; Managed Instances:
#     the EC2 on-demand price of the instance + a management fee of 15 % of it, no duration charge)
#   EC2 c7i.large (2 vCPU, 4 GiB): https://aws.amazon.com/ec2/pricing/on-demand/
#   DynamoDB on-demand reads: https://aws.amazon.com/dynamodb/pricing/on-demand/ (since 2024-11-01)
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
MI_INSTANCE, MI_INSTANCE_HOURLY, MI_INSTANCE_VCPUS = "c7i.large", 0.08925, 2
MI_MANAGEMENT_FEE = 0.15
MI_FLOOR_INSTANCES = 3  # a capacity provider keeps 3 instances by default (docs/sse.md)
DYNAMODB_RRU = 0.125 / 1e6  # one read request unit = 1 RCU of a read as computed here


@dataclass(frozen=True)
class Deployment:
    """What template.yaml deploys, read from it (so the projections follow the template)."""

    on_demand_memory_gb: float
    on_demand_stream_seconds: float
    mi_concurrency: int
    mi_vcpus_per_environment: int = 1  # the function's MemorySize at ExecutionEnvironmentMemoryGiBPerVCpu

    @classmethod
    def from_template(cls) -> Deployment:
        t = template()
        params, res = t["Parameters"], t["Resources"]
        mi = res["SseManagedFunction"]["Properties"]
        gib_per_vcpu = mi["CapacityProviderConfig"]["ExecutionEnvironmentMemoryGiBPerVCpu"]
        return cls(
            on_demand_memory_gb=res["SseFunction"]["Properties"]["MemorySize"] / 1024,
            on_demand_stream_seconds=float(params["OnDemandMaxStreamSeconds"]["Default"]),
            mi_concurrency=int(params["SsePerEnvironmentConcurrency"]["Default"]),
            mi_vcpus_per_environment=max(1, round(mi["MemorySize"] / 1024 / gib_per_vcpu)),
        )


@dataclass
class Reads:
    """Reads of the execution's partition, summed over the shape's processes."""

    consistent: int = 0
    eventual: int = 0
    rcu_consistent: float = 0.0
    rcu_eventual: float = 0.0

    def minus(self, before: Reads) -> Reads:
        return Reads(
            self.consistent - before.consistent,
            self.eventual - before.eventual,
            self.rcu_consistent - before.rcu_consistent,
            self.rcu_eventual - before.rcu_eventual,
        )

    @property
    def queries(self) -> int:
        return self.consistent + self.eventual

    @property
    def rcu(self) -> float:
        return self.rcu_consistent + self.rcu_eventual


@dataclass
class Phase:
    name: str
    seconds: float
    reads: Reads


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class ShapeResult:
    shape: str
    processes: int
    viewers: int
    phases: list[Phase]
    latencies_ms: list[float]  # the events phase's receipts, every viewer
    received: list[int]  # per viewer, of the events phase's events
    written: int  # events written in the events phase
    wake_ms: list[float]  # the wake-up burst's receipts
    append_ms: list[float]  # how long the events phase's appends took (moto here)
    item_bytes: list[int] = field(default_factory=list)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def rcu_per_second(self, name: str) -> float:
        p = self.phase(name)
        return p.reads.rcu / p.seconds

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


# --------------------------------------------------------------------------------- the workload


def _event(n: int, rng: random.Random) -> dict[str, Any]:
    """Event ``n`` of the pinned workload: a task starts, then completes with a short result."""
    task = n // 2 + 1
    if n % 2 == 0:
        return ev.substep_started(task, f"summarise section {task} of the quarterly report")
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 100)))[:700]
    result = previews.preview(
        f'{{"summary": "{words}", "tokens": {rng.randint(100, 4000)}}}', f"/results/{task}"
    )
    return ev.substep_completed(task, rng.randint(50, 5000), result)


def write_events(
    store: DynamoStore, eid: str, first: int, count: int | None, stop: threading.Event
) -> list[tuple[int, float]]:
    """Events ``first``, ``first + 1``, … at 10/s (a thread; slower if a put is late, never a burst),
    ``count`` of them or until ``stop``: their timestamps (ms, taken just before each append) and
    how long each append took (ms: part of its write→client latency, DynamoDB's share)."""
    rng, due, written = random.Random(17 + first), time.monotonic(), []
    n = 0
    while count is None or n < count:
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        stamp, began = now_ms(), time.perf_counter()
        store.append_event(eid, f"bench-{first + n}", _event(first + n, rng), timestamp=stamp)
        written.append((stamp, (time.perf_counter() - began) * 1000))
        n += 1
        due = max(due + 1 / EVENTS_PER_SECOND, time.monotonic())  # late: never a catch-up burst
    return written


def event_item_sizes(endpoint: str, eid: str) -> list[int]:
    """The billed size of every event item of the execution (the workload's ≤ 1 KB, checked)."""
    db = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=endpoint)
    kwargs: dict[str, Any] = {
        "TableName": TABLE,
        "KeyConditionExpression": "PK = :p AND begins_with(SK, :e)",
        "ExpressionAttributeValues": {":p": {"S": pk(eid)}, ":e": {"S": EVENT_PREFIX}},
    }
    sizes: list[int] = []
    while True:
        out = db.query(**kwargs)
        sizes += [item_size(i) for i in out.get("Items", [])]
        if "LastEvaluatedKey" not in out:
            return sizes
        kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]


# ------------------------------------------------------------------------------------ one shape


async def partition_reads(client: httpx.AsyncClient, bases: list[str], eid: str) -> Reads:
    answers = await asyncio.gather(*(client.get(f"{b}{STATS_PATH}") for b in bases))
    total = Reads()
    for answer in answers:
        s = answer.json()["partitions"].get(pk(eid))
        if s is not None:
            total.consistent += s["consistentReads"]
            total.eventual += s["eventualReads"]
            total.rcu_consistent += s["rcuConsistent"]
            total.rcu_eventual += s["rcuEventual"]
    return total


async def measure(store: DynamoStore, shape: str, bases: list[str], per_base: int, args: Any) -> ShapeResult:
    """The viewers join the emitting execution; then the phases, the reads at each boundary."""
    eid = f"dag-exec_shape{uuid.uuid4().hex[:12]}"
    store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    viewers = [Viewer(base, eid, n * per_base + i) for n, base in enumerate(bases) for i in range(per_base)]
    stop = threading.Event()
    writer = asyncio.ensure_future(asyncio.to_thread(write_events, store, eid, 0, None, stop))
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = await connect_all(viewers)
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.sleep(args.settle)
            before, started, window = await partition_reads(client, bases, eid), time.monotonic(), now_ms()
            await asyncio.sleep(args.events_seconds)
            stop.set()
            appends = await writer
            written = [ts for ts, _ in appends]
            flowing, ended = await partition_reads(client, bases, eid), time.monotonic()
            await asyncio.sleep(args.quiet_seconds)
            quiet, done = await partition_reads(client, bases, eid), time.monotonic()
            woken = now_ms()
            await asyncio.to_thread(
                write_events, store, eid, len(written), EVENTS_PER_SECOND, threading.Event()
            )
            await asyncio.sleep(WAKE_DELIVERY_SECONDS)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(writer, *tasks, return_exceptions=True)
    measured = [[ms for ts, ms in v.receipts if window <= ts <= written[-1]] for v in viewers]
    return ShapeResult(
        shape,
        len(bases),
        len(viewers),
        [
            Phase("events", ended - started, flowing.minus(before)),
            Phase("quiet", done - ended, quiet.minus(flowing)),
        ],
        [ms for per_viewer in measured for ms in per_viewer],
        [len(per_viewer) for per_viewer in measured],
        sum(1 for ts in written if ts >= window),
        [ms for v in viewers for ts, ms in v.receipts if ts >= woken],
        [ms for ts, ms in appends if ts >= window],
        event_item_sizes(store.endpoint, eid),  # type: ignore[attr-defined]
    )


def run_shape(store: DynamoStore, shape: str, processes: int, per_process: int, args: Any) -> ShapeResult:
    settings = {"sse_profile": shape, "heartbeat_seconds": 15}
    with sse_processes(store, processes, app=APP, log=f"shape-{shape}", **settings) as procs:
        return asyncio.run(measure(store, shape, [base for _, base in procs], per_process, args))


# ----------------------------------------------------------------------------------- the report


def print_shape(r: ShapeResult, unit: str, per: int) -> None:
    """The partition's reads per phase: total, and per viewer (on-demand) or environment."""
    print(
        f"  {'phase':<16}{'s':>6}{'queries/s':>11}{'RCU/s':>9}{'consistent':>12}{'eventual':>10}"
        f"  │ per {unit}: {'queries/s':>9}{'RCU/s':>8}"
    )
    for p in r.phases:
        q, rcu = p.reads.queries / p.seconds, p.reads.rcu / p.seconds
        label = f"{p.name} ({EVENTS_PER_SECOND}/s)" if p.name == "events" else p.name
        print(
            f"  {label:<16}{p.seconds:>6.1f}{q:>11.2f}{rcu:>9.2f}{p.reads.rcu_consistent / p.seconds:>12.2f}"
            f"{p.reads.rcu_eventual / p.seconds:>10.2f}  │ {' ' * (len(unit) + 6)}{q / per:>9.2f}{rcu / per:>8.3f}"
        )
    print(
        f"  (RCU/s split: consistent | eventual; reads {sum(p.reads.consistent for p in r.phases)} consistent, "
        f"{sum(p.reads.eventual for p in r.phases)} eventual)"
    )
    got = f"{min(r.received)}–{max(r.received)}" if r.received else "none"
    print(
        f"  write→client latency while events flow, {len(r.latencies_ms)} receipts: p50 {r.percentile(0.5):.0f} ms, "
        f"p99 {r.percentile(0.99):.0f} ms, max {max(r.latencies_ms, default=math.nan):.0f} ms; "
        f"events per viewer {got} of {r.written} written ({r.written / r.phase('events').seconds:.1f}/s)"
    )
    print(
        f"    of which the append itself (moto, on this machine): p50 {percentile(r.append_ms, 0.5):.0f} ms, "
        f"p99 {percentile(r.append_ms, 0.99):.0f} ms"
    )
    print(
        f"  wake-up after the quiet phase ({EVENTS_PER_SECOND} events in 1 s, {len(r.wake_ms)} receipts): "
        f"p50 {percentile(r.wake_ms, 0.5):.0f} ms, max {max(r.wake_ms, default=math.nan):.0f} ms"
    )


def schedule_bound(shape: str, item_bytes: list[int]) -> float:
    """RCU/s of one feed while events flow if reads took no time: a poll every ``poll_seconds``,
    each returning that interval's events (eventually consistent, the Query's total rounded up)."""
    interval = SSE_PROFILES[shape]["poll_seconds"]
    per_poll = EVENTS_PER_SECOND * interval * statistics.mean(item_bytes)
    return read_units([int(per_poll)], consistent=False) / interval


def quiet_bound(shape: str, seconds: float) -> float:
    """RCU/s of one feed over ``seconds`` of quiet after an event if reads took no time: the
    profile's back-off schedule (polling.py), each empty poll one eventually consistent unit."""
    p = SSE_PROFILES[shape]
    schedule = PollSchedule(p["poll_seconds"], p["idle_poll_seconds"], 2.0, p["poll_hold_seconds"])
    return schedule.polls_within(seconds) * read_units([], consistent=False) / seconds


def print_projection(label: str, per_viewer_or_env: float, scale: dict[int, float]) -> None:
    cells = "; ".join(
        f"{n:,} viewers → {per_viewer_or_env * k:,.0f} RCU/s ({per_viewer_or_env * k / PARTITION_RCU:.0%})"
        for n, k in scale.items()
    )
    print(f"    {label}: {cells}")


def on_demand_report(r: ShapeResult, d: Deployment) -> dict[str, float]:
    print(
        f"\non-demand: K = {r.processes} SSE processes (DAGCAST_SSE_PROFILE=on-demand, DAGCAST_SSE_DISCONNECT=off), "
        f"one viewer each"
    )
    print_shape(r, "viewer", r.viewers)
    events, quiet = r.rcu_per_second("events") / r.viewers, r.rcu_per_second("quiet") / r.viewers
    print(
        f"  projection (per-viewer RCU/s × N; 3,000 RCU/s a partition; throttling from "
        f"~{PARTITION_RCU / events:,.0f} viewers while events flow):"
    )
    print_projection("events flowing", events, {n: n for n in VIEWER_COUNTS})
    print_projection("quiet", quiet, {n: n for n in VIEWER_COUNTS})
    bound = schedule_bound(r.shape, r.item_bytes)
    calm = quiet_bound(r.shape, r.phase("quiet").seconds)
    print_projection(
        "events flowing, the schedule's bound (reads taking no time)", bound, {n: n for n in VIEWER_COUNTS}
    )
    print_projection("quiet, the schedule's bound", calm, {n: n for n in VIEWER_COUNTS})
    duration = d.on_demand_memory_gb * 3600 * LAMBDA_GB_SECOND
    requests = 3600 / d.on_demand_stream_seconds * LAMBDA_REQUEST
    cost = {
        name: duration + requests + rcu * 3600 * DYNAMODB_RRU
        for name, rcu in (("events", events), ("quiet", quiet))
    }
    print(
        f"  $ per viewer-hour: Lambda {d.on_demand_memory_gb * 1024:.0f} MB × 3,600 s = ${duration:.5f} "
        f"+ {3600 / d.on_demand_stream_seconds:.0f} invocations (a stream lives {d.on_demand_stream_seconds:.0f} s) "
        f"${requests:.6f} + reads ${events * 3600 * DYNAMODB_RRU:.5f} flowing / ${quiet * 3600 * DYNAMODB_RRU:.5f} quiet"
        f" = ${cost['events']:.4f} flowing, ${cost['quiet']:.4f} quiet"
    )
    return {"quiet": max(quiet, calm), "events": max(events, bound)}


def managed_report(r: ShapeResult, d: Deployment) -> float:
    c = d.mi_concurrency
    print(
        f"\nmanaged-instances: ONE SSE process (DAGCAST_SSE_PROFILE=managed-instances, DAGCAST_SSE_DISCONNECT=off), "
        f"K = {r.viewers} viewers"
    )
    print_shape(r, "environment", r.processes)
    events, quiet = r.rcu_per_second("events"), r.rcu_per_second("quiet")
    print(
        f"  projection (per-environment RCU/s × ⌈N / {c}⌉; {c} streams per environment = template.yaml's "
        f"SsePerEnvironmentConcurrency default):"
    )
    print_projection("events flowing", events, {n: math.ceil(n / c) for n in VIEWER_COUNTS})
    print_projection("quiet", quiet, {n: math.ceil(n / c) for n in VIEWER_COUNTS})
    bound = schedule_bound(r.shape, r.item_bytes)
    print_projection(
        "events flowing, the schedule's bound (reads taking no time)",
        bound,
        {n: math.ceil(n / c) for n in VIEWER_COUNTS},
    )
    # The Python runtime's own model (a process per concurrent request, 16 per vCPU) shares nothing;
    # the Web Adapter replaces it and hands the environment's streams to one uvicorn (docs/cost.md).
    print_projection(
        "if nothing were shared (a process per stream, the Python runtime's own model), bound",
        bound,
        {n: n for n in VIEWER_COUNTS},
    )
    per_instance = c * MI_INSTANCE_VCPUS // d.mi_vcpus_per_environment
    instance = MI_INSTANCE_HOURLY * (1 + MI_MANAGEMENT_FEE) / per_instance
    lifetime = SSE_PROFILES["managed-instances"]["max_stream_seconds"]
    requests = 3600 / lifetime * LAMBDA_REQUEST  # one invocation per stream lifetime
    reads = events * 3600 * DYNAMODB_RRU / c
    print(
        f"  $ per viewer-hour (full environments): {MI_INSTANCE} ${MI_INSTANCE_HOURLY}/h + {MI_MANAGEMENT_FEE:.0%} "
        f"fee / {per_instance} viewers ({MI_INSTANCE_VCPUS // d.mi_vcpus_per_environment} environments × {c}) = "
        f"${instance:.6f} + requests ${requests:.7f} + reads ${reads:.7f} (flowing) = ${instance + requests + reads:.5f}"
    )
    floor = MI_FLOOR_INSTANCES * MI_INSTANCE_HOURLY * (1 + MI_MANAGEMENT_FEE)
    print(
        f"  floor with no viewers: {MI_FLOOR_INSTANCES} × {MI_INSTANCE} = ${floor:.3f}/h (${floor * 730:,.0f}/month), "
        f"plus the VPC's Secrets Manager endpoint"
    )
    return max(events, bound) * math.ceil(VIEWER_COUNTS[-1] / c)


def verdict(name: str, ok: bool, detail: str) -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")


def report(on_demand: ShapeResult, managed: ShapeResult, d: Deployment) -> None:
    sizes = on_demand.item_bytes + managed.item_bytes
    print(
        f"bench/sse_lambda_shape: workload {EVENTS_PER_SECOND} events/s of typical size (event items "
        f"mean {statistics.mean(sizes):.0f} B, max {max(sizes)} B), then quiet; one execution per shape"
    )
    print(
        f"prices: AWS list prices, us-east-1, pinned 2026-12-05, not fetched by this run: Lambda "
        f"${LAMBDA_GB_SECOND}/GB-s, ${LAMBDA_REQUEST * 1e6:.2f}/M requests; {MI_INSTANCE} ${MI_INSTANCE_HOURLY}/h "
        f"+ {MI_MANAGEMENT_FEE:.0%} management fee; DynamoDB on-demand ${DYNAMODB_RRU * 1e6:.3f}/M read units"
    )
    od = on_demand_report(on_demand, d)
    mi_10k = managed_report(managed, d)
    print("\ngoals:")
    verdict(
        "managed-instances, 10,000 viewers of one execution under 3,000 RCU/s",
        mi_10k < PARTITION_RCU,
        f"{mi_10k:,.0f} RCU/s projected at {d.mi_concurrency} streams per environment (measured or bound, the higher)",
    )
    verdict(
        "on-demand, ≤ 0.5 RCU/s per viewer while quiet",
        od["quiet"] <= ON_DEMAND_QUIET_GOAL,
        f"{od['quiet']:.3f} (measured or bound, the higher)",
    )
    verdict(
        "on-demand, ≤ 5 RCU/s per viewer while events flow",
        od["events"] <= ON_DEMAND_EVENTS_GOAL,
        f"{od['events']:.3f} (measured or bound, the higher)",
    )
    for r in (on_demand, managed):
        p99 = r.percentile(0.99)
        verdict(
            f"{r.shape}, p99 write→client ≤ 500 ms while events flow", p99 <= LATENCY_GOAL_MS, f"{p99:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--on-demand-processes", type=int, default=12)
    parser.add_argument("--viewers", type=int, default=200, help="viewers of the managed-instances process")
    parser.add_argument("--events-seconds", type=float, default=20.0)
    parser.add_argument("--quiet-seconds", type=float, default=30.0)
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between the last viewer's snapshot and the events phase",
    )
    args = parser.parse_args()
    d = Deployment.from_template()
    if (
        args.settle + args.events_seconds + args.quiet_seconds + WAKE_DELIVERY_SECONDS + 20
        > d.on_demand_stream_seconds
    ):
        parser.error(f"the phases must end within an on-demand stream's {d.on_demand_stream_seconds:.0f} s")
    raise_fd_limit()
    with moto_table(TABLE, "shape-moto.log") as store:
        on_demand = run_shape(store, "on-demand", args.on_demand_processes, 1, args)
        managed = run_shape(store, "managed-instances", 1, args.viewers, args)
    report(on_demand, managed, d)


if __name__ == "__main__":
    main()
