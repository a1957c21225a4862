"""bench/soak — `make soak`: executions and SSE clients for minutes; memory over time, events lost, latency.

How to run (about 15 minutes with the defaults; not part of `make test` or CI):

    make soak
    python -m bench.soak [--minutes 10] [--executions 50] [--clients 100] [--sample-seconds 30]
                         [--idle-seconds 120] [--threshold-percent 10]

What it does. Starts `dagcast up` as a subprocess on a free 127.0.0.1 port (its log goes to
test-artifacts/soak-dagcast-up.log). `dagcast up` is two processes (docs/local-mode.md): "server",
the REST API and the SSE app with its hub, and its child "stack": moto, the task Lambdas, the
stream poller and the webhook retry loop. Every process below `dagcast up` is measured: RSS
(VmRSS, /proc/<pid>/status) and CPU (% of one core, /proc/<pid>/stat); "tracker" is
multiprocessing's resource tracker. For --minutes it keeps --executions executions in flight: when
one ends another is submitted at once (POSTs go out concurrently); the jobs are small
echo/sleep DAGs, and 1 in 10 fails on purpose and must end `failed`. --clients SSE clients
(asyncio + httpx-sse, real sockets) are spread over the running executions: each reads one
execution's stream from the start (`?since=0`) to its terminal event, then moves on to the running
execution with the fewest readers (--clients / --executions readers each). Then it stops
submitting, lets the executions in flight finish ("drain"), checks every execution's final state
through the REST API (GET /api/v1/dag-executions/{id}) and leaves everything idle for
--idle-seconds ("idle").

How to read it.

  the table   one row per sample: elapsed time, phase, RSS (MB) and CPU (%) of each process;
              executions in flight (accepted + being submitted) and finished; SSE events received
              and streams open (client side); and what moto holds: table items, stream records (one
              per item written; the script reads the table's stream itself to count them) and their
              size as DynamoDB JSON (stream records + the current items).
  events      every client must see seq 1..N exactly once and in order for each execution it read
              (N = the terminal event's seq): lost (missing), duplicated, out of order must be 0;
              and each execution's REST state must be the expected status, with seq N.
  latency     receive time − the event's `timestamp` (ms; one machine, one clock), p50/p99/max,
              over the *live* events (written after the client connected), then per event type.
              Events replayed to a client that joined an execution already under way are counted
              but kept out: their "latency" is their age. A timestamp is taken when the writer
              appends (or queues) the event, so this is write → client, polling included.
  memory      load phase, after a warm-up (the first 20% of the run): the mean RSS of the last third
              of the samples against the mean of the first third; growth in MB and MB/min. Idle
              phase: first sample against last.

What "flat" means. Server (and tracker): growth < --threshold-percent (10%) of the first third's
mean, in the load phase; it holds no data, so that is absolute. Stack: it cannot be flat under load
on moto, by design: moto keeps every item, every stream record (one per write, never trimmed) and
every Step Functions execution (its history, its threads and clients) in memory. So its verdict is
on the growth *per item written* (per stream record): "data" when the rate of the last two thirds
(middle → last) is at most the rate of the first two (first → middle) + the threshold (+ 1 MB of
slack: RSS moves in pages and arenas), i.e. growth in proportion to what was written; "GROWING"
when it rises. A leak that cost the same for every write would pass as data; the idle phase bounds
what grows with time instead (the poller's and the retry loop's polling): with nothing written,
every process, the stack included, must grow < 0.25 MB/min.

Exit status 0 when no event was lost, duplicated or out of order, every execution ended as
expected (REST), none was stuck, no submission failed and no memory verdict is GROWING; else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from httpx_sse import aconnect_sse

from bench.sse_fanout import raise_fd_limit
from dagcast.local.launch import start_dagcast_up, stop_dagcast_up

ROOT = Path(__file__).resolve().parents[1]
SECRET = "soak-secret-" + "x" * 20
TABLE = "dagcast-local"
TERMINAL = ("execution.completed", "execution.failed")
FAIL_EVERY = 10  # 1 job in 10 fails on purpose (it must end `failed`)
WARMUP_FRACTION = 0.2
IDLE_LIMIT_MB_PER_MIN = 0.25  # RSS moves in 4 KB pages; an idle process should not move at all
_HTTP_TIMEOUT = httpx.Timeout(30.0, read=60.0)  # read: > the 15 s heartbeat
_REST_TIMEOUT = httpx.Timeout(30.0, read=300.0)  # a POST takes tens of seconds when the stack is busy


# ------------------------------------------------------------------------------------ processes


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU time of ``pid`` so far, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc/*/stat), parents first."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …; comm may hold spaces and parentheses: split after the last ')'
        parent_of[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = [root]
    for pid in found:
        found += sorted(p for p, ppid in parent_of.items() if ppid == pid)
    return found


def label(pid: int, root: int) -> str:
    if pid == root:
        return "server"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"pid {pid}"
    if "resource_tracker" in cmdline:
        return "tracker"
    if "multiprocessing" in cmdline:
        return "stack"
    return Path(cmdline.split(" ", 1)[0]).name or f"pid {pid}"


def start_stack(clients: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    log = ROOT / "test-artifacts" / "soak-dagcast-up.log"
    limit = str(max(1000, 2 * clients))  # every client comes from 127.0.0.1 (default: 50 per IP)
    proc, base = start_dagcast_up(
        ["--max-streams-per-ip", limit],
        log=log,
        env={"DAGCAST_STREAM_SECRET": SECRET},
        cwd=ROOT,
        timeout=90,
        poll=0.2,
    )
    return proc, base, log


# ------------------------------------------------------------------------------- stored data


class StoredData:
    """What moto holds for the stack, read from outside: the table's item count, and every record
    of the table's stream (this script reads the stream itself, from TRIM_HORIZON): how many and
    their size as DynamoDB JSON, and the size of the current item images (the table's data)."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        self._ddb = session.client("dynamodb", endpoint_url=endpoint)
        self._streams = session.client("dynamodbstreams", endpoint_url=endpoint)
        arn = self._ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        shard = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._iterator: str = self._streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self.items = 0
        self.records = 0
        self.stream_bytes = 0
        self._images: dict[tuple[str, str], int] = {}

    @property
    def table_bytes(self) -> int:
        return sum(self._images.values())

    def refresh(self) -> None:
        while True:
            out = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
            self._iterator = out["NextShardIterator"]
            for record in out["Records"]:
                body = record["dynamodb"]
                size = len(json.dumps(body, default=str))
                self.records += 1
                self.stream_bytes += size
                keys = body.get("Keys", {})
                key = (str(keys.get("PK", {}).get("S")), str(keys.get("SK", {}).get("S")))
                if record.get("eventName") == "REMOVE":
                    self._images.pop(key, None)
                else:
                    self._images[key] = len(json.dumps(body.get("NewImage", {}), default=str))
            if len(out["Records"]) < 1000:
                break
        self.items = int(self._ddb.describe_table(TableName=TABLE)["Table"]["ItemCount"])


# ------------------------------------------------------------------------------------ the run


def job(n: int) -> tuple[dict[str, Any], str]:
    """Job ``n`` and the status it must end with: a small diamond of echo/sleep tasks (a result
    passed on with {{1}}), or, 1 in FAIL_EVERY, one whose second task fails."""
    if n % FAIL_EVERY == FAIL_EVERY - 1:
        tasks = [
            {"id": 1, "action": "echo", "params": {"text": f"soak {n}"}},
            {"id": 2, "action": "fail", "params": {"message": "on purpose"}, "dependencies": [1]},
            {"id": 3, "action": "sleep", "params": {"seconds": 0.1}, "dependencies": [1]},
        ]
        return {"tasks": tasks}, "failed"
    tasks = [
        {"id": 1, "action": "echo", "params": {"text": f"soak {n}"}},
        {"id": 2, "action": "sleep", "params": {"seconds": 0.2}, "dependencies": [1]},
        {"id": 3, "action": "echo", "params": {"text": "{{1}} seen"}, "dependencies": [1]},
        {"id": 4, "action": "echo", "params": {"text": "done"}, "dependencies": [2, 3]},
    ]
    return {"tasks": tasks}, "completed"


@dataclass
class Execution:
    id: str
    events_url: str
    expected: str  # the status it must end with
    submitted: float  # monotonic
    readers: int = 0  # clients reading it now
    reads: int = 0  # clients that read it to its terminal event
    terminal_seq: int | None = None
    done: bool = False
    took: float = 0.0  # seconds from the 202 to its terminal event (as the first client saw it)


@dataclass
class Sample:
    elapsed: float
    phase: str
    rss: dict[str, float]
    cpu: dict[str, float]  # % of one core since the previous sample
    in_flight: int  # accepted (202) and not over
    submitting: int  # POSTs under way
    done: int
    submitted: int
    events: int
    streams: int
    items: int
    records: int
    data_mb: float


@dataclass
class Run:
    base: str
    target: int
    clients: int
    seconds: float
    stuck_seconds: float
    per_execution: int = 1
    running: dict[str, Execution] = field(default_factory=dict)
    finished: list[Execution] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    submitted: int = 0
    submitting: int = 0  # POSTs under way (their executions are being created and started)
    submit_errors: int = 0
    events: int = 0
    streams_read: int = 0
    reconnects: int = 0
    open_streams: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    stuck: int = 0
    verified: int = 0
    live_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    live_by_type: dict[str, list[float]] = field(default_factory=dict)
    replayed_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    by_status: dict[str, int] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        if len(self.problems) <= 20:
            print(f"  ! {text}", flush=True)

    # ---- executions

    async def submitter(self, rest: httpx.AsyncClient) -> None:
        """Keeps ``target`` executions in flight, counting those being submitted: a POST takes
        seconds when the stack is busy, so as many go out at once as executions are missing."""
        posting: set[asyncio.Task[None]] = set()
        n = 0
        while not self.stopping:
            while len(self.running) + len(posting) < self.target and not self.stopping:
                task = asyncio.create_task(self.submit(rest, n))
                posting.add(task)
                task.add_done_callback(posting.discard)
                n += 1
            self.changed.clear()
            await self.changed.wait()
        await asyncio.gather(*posting, return_exceptions=True)

    async def submit(self, rest: httpx.AsyncClient, n: int) -> None:
        body, expected = job(n)
        started = time.monotonic()
        self.submitting += 1
        try:
            reply = await rest.post(f"{self.base}/api/v1/execute-dag", json=body)
            if reply.status_code != 202:
                raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
            accepted = reply.json()
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            self.submit_errors += 1
            self.problem(f"submit: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1)
            return
        finally:
            self.submitting -= 1
            self.changed.set()
        self.submit_ms.append((time.monotonic() - started) * 1000)
        ex = Execution(accepted["executionId"], accepted["eventsUrl"], expected, time.monotonic())
        self.running[ex.id] = ex
        self.submitted += 1
        self.changed.set()

    def finish(self, ex: Execution) -> None:
        if ex.done:
            return
        ex.done = True
        ex.took = time.monotonic() - ex.submitted
        self.running.pop(ex.id, None)
        self.finished.append(ex)
        self.changed.set()

    async def pick(self) -> Execution | None:
        """The running execution with the fewest readers (the newest of those), or None at the end."""
        while True:
            free = [e for e in self.running.values() if e.readers < self.per_execution]
            if free:
                ex = min(free, key=lambda e: (e.readers, -e.submitted))
                ex.readers += 1
                return ex
            if self.stopping and not self.running:
                return None
            self.changed.clear()
            await self.changed.wait()

    async def reaper(self, rest: httpx.AsyncClient) -> None:
        """Executions no client reads (fewer clients than executions) end unseen: ask the API."""
        while not (self.stopping and not self.running):
            await asyncio.sleep(2)
            now = time.monotonic()
            for ex in [e for e in self.running.values() if e.readers == 0 and now - e.submitted > 5]:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    state = (await rest.get(f"{self.base}/api/v1/dag-executions/{ex.id}")).json()
                    if state.get("status") in ("completed", "failed", "cancelled"):
                        ex.terminal_seq = int(state["seq"])
                        self.finish(ex)

    # ---- SSE clients

    async def client(self, sse: httpx.AsyncClient) -> None:
        while True:
            ex = await self.pick()
            if ex is None:
                return
            try:
                await self.read(sse, ex)
            finally:
                ex.readers -= 1
                self.changed.set()

    async def read(self, sse: httpx.AsyncClient, ex: Execution) -> None:
        """One execution's stream from seq 1 to its terminal event (resuming with Last-Event-ID if
        the stream ends before it); then check what arrived."""
        counts: dict[int, int] = {}
        last = 0
        terminal: int | None = None
        left = ex.submitted + self.stuck_seconds - time.monotonic()
        try:
            async with asyncio.timeout(max(left, 1.0)):
                while terminal is None:
                    headers = {"accept": "text/event-stream"}
                    if last:
                        headers["last-event-id"] = str(last)
                    connected_ms = time.time() * 1000
                    self.open_streams += 1
                    try:
                        async with aconnect_sse(
                            sse, "GET", f"{ex.events_url}&since=0", headers=headers
                        ) as src:
                            if src.response.status_code != 200:
                                self.problem(f"{ex.id}: stream answered HTTP {src.response.status_code}")
                                await asyncio.sleep(1)
                                continue
                            async for message in src.aiter_sse():
                                now_ms = time.time() * 1000
                                if message.event == "heartbeat" or not message.data:
                                    continue
                                event = json.loads(message.data)
                                seq = int(message.id)
                                self.events += 1
                                latency = now_ms - float(event["timestamp"])
                                if event["timestamp"] >= connected_ms:
                                    self.live_ms.append(latency)
                                    by_type = self.live_by_type.setdefault(message.event, [])
                                    by_type.append(latency)
                                else:
                                    self.replayed_ms.append(latency)
                                counts[seq] = counts.get(seq, 0) + 1
                                if seq < last:
                                    self.out_of_order += 1
                                last = max(last, seq)
                                if message.event in TERMINAL:
                                    terminal = seq
                                    break
                    except httpx.HTTPError as exc:
                        self.problem(f"{ex.id}: stream error {type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.5)
                    finally:
                        self.open_streams -= 1
                    if terminal is None:
                        self.reconnects += 1
        except TimeoutError:
            self.stuck += 1
            self.problem(f"{ex.id}: no terminal event {self.stuck_seconds:.0f} s after it was submitted")
            self.finish(ex)
            return
        self.streams_read += 1
        ex.reads += 1
        missing = sum(1 for s in range(1, terminal + 1) if s not in counts)
        twice = sum(n - 1 for n in counts.values() if n > 1)
        after = sum(1 for s in counts if s > terminal)
        self.missing += missing
        self.duplicated += twice
        if missing or twice or after:
            self.problem(
                f"{ex.id}: terminal seq {terminal}: {missing} missing, {twice} twice, {after} after it"
            )
        if ex.terminal_seq is not None and ex.terminal_seq != terminal:
            self.problem(f"{ex.id}: clients disagree on the terminal seq ({ex.terminal_seq} vs {terminal})")
        ex.terminal_seq = terminal
        self.finish(ex)

    # ---- REST verification

    async def history(self, http: httpx.AsyncClient, ex: Execution) -> str:
        """The execution's event log, one ``seq:type[task]`` each (a finished stream replays it)."""
        out: list[str] = []
        with contextlib.suppress(httpx.HTTPError, ValueError, TimeoutError):
            async with asyncio.timeout(30), aconnect_sse(http, "GET", f"{ex.events_url}&since=0") as src:
                async for message in src.aiter_sse():
                    if message.data and message.event != "heartbeat":
                        event = json.loads(message.data)
                        task = f"[{event['taskId']}]" if "taskId" in event else ""
                        out.append(f"{message.id}:{message.event}{task}")
                        if message.event in TERMINAL:
                            break
        return " ".join(out) or "(none)"

    async def verify(self, rest: httpx.AsyncClient, ex: Execution) -> None:
        try:
            state = (await rest.get(f"{self.base}/api/v1/dag-executions/{ex.id}")).json()
        except (httpx.HTTPError, ValueError) as exc:
            self.problem(f"{ex.id}: GET failed: {type(exc).__name__}: {exc}")
            return
        status = str(state.get("status"))
        self.by_status[status] = self.by_status.get(status, 0) + 1
        wrong = []
        if status != ex.expected:
            wrong.append(f"status {status}, expected {ex.expected}")
        if ex.terminal_seq is not None and state.get("seq") != ex.terminal_seq:
            wrong.append(f"seq {state.get('seq')}, the stream ended at {ex.terminal_seq}")
        open_tasks = [
            t["taskId"] for t in state.get("tasks", []) if t.get("status") in ("waiting", "running")
        ]
        if open_tasks:
            wrong.append(f"tasks still open: {open_tasks}")
        if wrong:
            self.problem(
                f"{ex.id}: REST state: {'; '.join(wrong)}; its events: {await self.history(rest, ex)}"
            )
        else:
            self.verified += 1


# ------------------------------------------------------------------------------------ sampling


class Sampler:
    def __init__(self, run: Run, root: int, stored: StoredData) -> None:
        self.run = run
        self.root = root
        self.stored = stored
        self.samples: list[Sample] = []
        self.names: list[str] = []
        self.t0 = time.monotonic()
        self._ticks: dict[int, tuple[float, int]] = {}  # pid → (when, CPU ticks then)

    def processes(self) -> tuple[dict[str, float], dict[str, float]]:
        """RSS (MB) and CPU (% of one core since the last call) of every process of `dagcast up`."""
        rss: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for pid in descendants(self.root):
            mb, ticks = rss_mb(pid), cpu_ticks(pid)
            if mb is None or ticks is None:
                continue
            name = label(pid, self.root)
            name = name if name not in rss else f"{name} {pid}"
            rss[name] = mb
            now = time.monotonic()
            then, before = self._ticks.get(pid, (self.t0, ticks))
            self._ticks[pid] = (now, ticks)
            cpu[name] = 100 * (ticks - before) / CLOCK_TICKS / max(now - then, 1e-9)
        return rss, cpu

    async def take(self, phase: str) -> Sample:
        rss, cpu = self.processes()
        elapsed = time.monotonic() - self.t0  # (reading moto's stream below can take seconds)
        try:
            await asyncio.to_thread(self.stored.refresh)
        except Exception as exc:  # a sample with stale data columns, not a failed run
            self.run.problem(f"reading moto's stream/table: {type(exc).__name__}: {exc}")
        sample = Sample(
            elapsed=elapsed,
            phase=phase,
            rss=rss,
            cpu=cpu,
            in_flight=len(self.run.running),
            submitting=self.run.submitting,
            done=len(self.run.finished),
            submitted=self.run.submitted,
            events=self.run.events,
            streams=self.run.open_streams,
            items=self.stored.items,
            records=self.stored.records,
            data_mb=(self.stored.stream_bytes + self.stored.table_bytes) / 1e6,
        )
        if not self.names:
            self.names = sorted(
                rss, key=lambda n: ("server", "stack").index(n) if n in ("server", "stack") else 2
            )
            self.header()
        self.samples.append(sample)
        self.row(sample)
        return sample

    def header(self) -> None:
        cols = "".join(f"{n + ' MB':>11} {'cpu%':>4}" for n in self.names)
        print(
            f"{'elapsed':>7} {'phase':<5}{cols} {'flight':>7} {'done':>5} {'events':>7} {'streams':>7}"
            f" {'items':>7} {'records':>7} {'data MB':>7}",
            flush=True,
        )

    def row(self, s: Sample) -> None:
        cols = "".join(
            f"{s.rss.get(n, float('nan')):>11.1f} {s.cpu.get(n, float('nan')):>4.0f}" for n in self.names
        )
        print(
            f"{_clock(s.elapsed):>7} {s.phase:<5}{cols} {f'{s.in_flight}+{s.submitting}':>7} {s.done:>5} {s.events:>7} {s.streams:>7}"
            f" {s.items:>7} {s.records:>7} {s.data_mb:>7.1f}",
            flush=True,
        )


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --------------------------------------------------------------------------------- main


async def soak(args: argparse.Namespace, proc: subprocess.Popen[bytes], base: str) -> tuple[Run, Sampler]:
    run = Run(
        base=base,
        target=args.executions,
        clients=args.clients,
        seconds=args.minutes * 60,
        stuck_seconds=args.stuck_seconds,
        per_execution=max(1, math.ceil(args.clients / args.executions)),
    )
    health = httpx.get(f"{base}/healthz", timeout=10).json()
    stored = await asyncio.to_thread(StoredData, str(health["endpoint"]))
    sampler = Sampler(run, proc.pid, stored)
    limits = httpx.Limits(max_connections=args.clients + 20, max_keepalive_connections=args.clients + 20)
    async with (
        httpx.AsyncClient(timeout=_REST_TIMEOUT) as rest,
        httpx.AsyncClient(timeout=_HTTP_TIMEOUT, limits=limits) as sse,
    ):
        await sampler.take("start")
        verifications: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(4)
        verified_upto = 0

        async def verify(ex: Execution) -> None:
            async with gate:
                await run.verify(rest, ex)

        def verify_new() -> None:
            nonlocal verified_upto
            for ex in run.finished[verified_upto:]:
                task = asyncio.create_task(verify(ex))
                verifications.add(task)
                task.add_done_callback(verifications.discard)
            verified_upto = len(run.finished)

        submitter = asyncio.create_task(run.submitter(rest))
        reaper = asyncio.create_task(run.reaper(rest))
        clients = [asyncio.create_task(run.client(sse)) for _ in range(args.clients)]
        end = sampler.t0 + run.seconds
        next_sample = sampler.t0 + args.sample_seconds
        while time.monotonic() < end:
            await asyncio.sleep(min(1.0, max(0.0, min(end, next_sample) - time.monotonic())))
            verify_new()
            if time.monotonic() >= next_sample:
                await sampler.take("load")
                next_sample += args.sample_seconds
        run.stopping = True
        run.changed.set()
        await submitter
        # drain: the executions in flight finish; the clients read them to the end
        drain_until = time.monotonic() + args.drain_seconds
        while run.running and time.monotonic() < drain_until:
            await asyncio.sleep(0.5)
            verify_new()
        for ex in list(run.running.values()):
            run.problem(f"{ex.id}: still running {args.drain_seconds:.0f} s after the last submission")
            run.stuck += 1
            run.finish(ex)
        run.changed.set()
        # the clients stop by themselves once nothing runs (a second reader may still be reading)
        await asyncio.wait(clients, timeout=60)
        for task in clients:
            task.cancel()
        reaper.cancel()
        await asyncio.gather(*clients, reaper, return_exceptions=True)
        verify_new()
        await asyncio.gather(*verifications, return_exceptions=True)
        await sampler.take("drain")
        # idle: nothing is written; the stack must not grow
        idle_step = max(args.idle_seconds / 6, 1.0)
        idle_end = time.monotonic() + args.idle_seconds
        while args.idle_seconds > 0 and time.monotonic() < idle_end - 0.01:
            await asyncio.sleep(min(idle_step, idle_end - time.monotonic()))
            await sampler.take("idle")
    return run, sampler


def thirds(samples: list[Sample]) -> tuple[list[Sample], list[Sample], list[Sample]] | None:
    if len(samples) < 3:
        return None
    n = len(samples) // 3
    return samples[:n], samples[n : len(samples) - n], samples[len(samples) - n :]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@dataclass
class Point:
    """The means of a group of samples, for one process."""

    elapsed: float
    rss: float
    writes: float  # stream records: one per item written
    done: float
    data_mb: float

    @classmethod
    def of(cls, samples: list[Sample], name: str) -> Point:
        return cls(
            mean([s.elapsed for s in samples]),
            mean([s.rss.get(name, float("nan")) for s in samples]),
            mean([float(s.records) for s in samples]),
            mean([float(s.done) for s in samples]),
            mean([s.data_mb for s in samples]),
        )


def _per_write_kb(a: Point, b: Point) -> float:
    return (b.rss - a.rss) * 1024 / (b.writes - a.writes) if b.writes > a.writes else float("nan")


def memory_verdicts(sampler: Sampler, args: argparse.Namespace) -> list[bool]:
    """Prints the verdict per process; returns one bool per verdict (True: flat, or data only)."""
    ok: list[bool] = []
    pct = args.threshold_percent
    warmup = WARMUP_FRACTION * args.minutes * 60
    load = [s for s in sampler.samples if s.phase == "load" and s.elapsed >= warmup]
    groups = thirds(load)
    print()
    print(
        f"memory, load phase after a {_clock(warmup)} warm-up ({len(load)} samples): the mean of the last "
        f"third of the samples against the first third"
    )
    if groups is None:
        print("  too few samples after the warm-up for a verdict (lower --sample-seconds)")
        return [False]
    for name in sampler.names:
        a, m, b = (Point.of(g, name) for g in groups)
        growth = b.rss - a.rss
        per_min = growth / ((b.elapsed - a.elapsed) / 60)
        line = (
            f"  {name:<8} {a.rss:8.1f} → {b.rss:8.1f} MB   growth {growth:+7.1f} MB  {per_min:+6.2f} MB/min"
        )
        if name != "stack":
            flat = growth < pct / 100 * a.rss
            ok.append(flat)
            print(f"{line}   {'flat' if flat else 'GROWING'} (flat: growth < {pct:g}% of {a.rss:.1f} MB)")
            continue
        # moto's data lives here. Judge the growth per item written (per stream record), early
        # (first → middle third) against late (middle → last third): proportional to what was
        # written = the same rate. + 1 MB over the late span: RSS moves in pages and arenas.
        early, late = _per_write_kb(a, m), _per_write_kb(m, b)
        excess_mb = (late - early * (1 + pct / 100)) * (b.writes - m.writes) / 1024
        steady = excess_mb <= 1.0  # False when nan (no writes)
        ok.append(steady)
        json_kb = (b.data_mb - a.data_mb) * 1e6 / 1024 / (b.writes - a.writes) if b.writes > a.writes else 0.0
        per_execution = growth * 1024 / (b.done - a.done) if b.done > a.done else float("nan")
        print(f"{line}   {'data' if steady else 'GROWING'}")
        print(
            f"           per item written: {early:.2f} KB early, {late:.2f} KB late (data: late ≤ early + {pct:g}%);"
            f" moto's DynamoDB data (stream + table) as JSON: {json_kb:.2f} KB; {per_execution:.0f} KB per finished execution"
        )
    idle = [s for s in sampler.samples if s.phase == "idle"]  # (not the drain sample: still settling)
    if len(idle) >= 2 and idle[-1].elapsed > idle[0].elapsed:
        span = (idle[-1].elapsed - idle[0].elapsed) / 60
        print(
            f"memory, idle phase ({span * 60:.0f} s, nothing written): flat = < {IDLE_LIMIT_MB_PER_MIN:g} MB/min"
        )
        for name in sampler.names:
            x, y = idle[0].rss.get(name, float("nan")), idle[-1].rss.get(name, float("nan"))
            rate = (y - x) / span
            flat = rate < IDLE_LIMIT_MB_PER_MIN
            ok.append(flat)
            print(
                f"  {name:<8} {x:8.1f} → {y:8.1f} MB   {rate:+6.2f} MB/min   {'flat' if flat else 'GROWING'}"
            )
    return ok


def report(run: Run, sampler: Sampler, args: argparse.Namespace) -> int:
    print()
    print(
        f"bench/soak: {args.minutes:g} min, {args.executions} executions in flight, {args.clients} SSE clients"
    )
    print(
        f"executions   {run.submitted} submitted, {len(run.finished)} finished, {run.verified} verified by REST "
        f"({', '.join(f'{n} {k}' for k, n in sorted(run.by_status.items()))}); "
        f"{run.submit_errors} submit errors, {run.stuck} stuck"
    )
    load = [s for s in sampler.samples if s.phase == "load"]
    took = [e.took for e in run.finished]
    if load and took and run.submit_ms:
        print(
            f"             in flight: {mean([float(s.in_flight) for s in load]):.1f} accepted + "
            f"{mean([float(s.submitting) for s in load]):.1f} being submitted, on average over the load phase; "
            f"{load[-1].done / (load[-1].elapsed / 60):.1f} finished/min; "
            f"submit → terminal event p50 {statistics.median(took):.1f} s, p99 {percentile(took, 99):.1f} s; "
            f"POST /execute-dag p50 {statistics.median(run.submit_ms):.0f} ms, p99 {percentile(run.submit_ms, 99):.0f} ms"
        )
    unread = sum(1 for e in run.finished if e.reads == 0)
    print(
        f"streams      {run.streams_read} read to the terminal event ({unread} executions read by no client), "
        f"{run.reconnects} reconnects"
    )
    lost = run.missing + run.duplicated + run.out_of_order
    print(
        f"events       {run.events} received; lost {run.missing}, duplicated {run.duplicated}, "
        f"out of order {run.out_of_order}"
    )
    if run.live_ms:
        print(
            f"latency      live p50 {statistics.median(run.live_ms):.0f} ms, p99 {percentile(run.live_ms, 99):.0f} ms, "
            f"max {max(run.live_ms):.0f} ms over {len(run.live_ms)} events"
        )
    for kind, values in sorted(run.live_by_type.items()):
        print(
            f"             {kind:<22} p50 {statistics.median(values):6.0f} ms  p99 {percentile(values, 99):6.0f} ms"
            f"  max {max(values):6.0f} ms  ({len(values)})"
        )
    if run.replayed_ms:
        print(
            f"             ({len(run.replayed_ms)} events replayed to clients that joined after they were "
            f"written, left out: median age {statistics.median(run.replayed_ms):.0f} ms)"
        )
    verdicts = memory_verdicts(sampler, args)
    print()
    print(
        "note: the stack runs moto, which keeps every item, every stream record (one per write) and every "
        "Step Functions execution in memory: its RSS grows with what was written, so its load verdict is on "
        "the growth per item written, and its idle verdict on any growth at all. The server holds no data: "
        "its verdicts are on its RSS itself."
    )
    failed = lost or run.stuck or run.submit_errors or run.verified != len(run.finished) or not all(verdicts)
    if run.problems:
        print(f"{len(run.problems)} problems (first 20 shown above as they happened)")
    print("RESULT: " + ("FAIL" if failed else "ok"))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="the load phase (default 10)")
    parser.add_argument("--executions", type=int, default=50, help="executions in flight (default 50)")
    parser.add_argument("--clients", type=int, default=100, help="SSE clients (default 100)")
    parser.add_argument("--sample-seconds", type=float, default=30.0, help="one sample every … (default 30)")
    parser.add_argument(
        "--idle-seconds", type=float, default=120.0, help="the idle phase (default 120; 0: none)"
    )
    parser.add_argument("--drain-seconds", type=float, default=600.0, help="time for the last executions")
    parser.add_argument(
        "--stuck-seconds",
        type=float,
        default=600.0,
        help="an execution not over after this long is a problem",
    )
    parser.add_argument("--threshold-percent", type=float, default=10.0, help="memory growth allowed (10)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.executions < 1 or args.clients < 1 or args.sample_seconds <= 0:
        parser.error("--minutes, --executions, --clients and --sample-seconds must be positive")
    raise_fd_limit()
    proc, base, log = start_stack(args.clients)
    print(f"bench/soak: dagcast up at {base} (pid {proc.pid}; log {log.relative_to(ROOT)})", flush=True)
    try:
        run, sampler = asyncio.run(soak(args, proc, base))
    finally:
        stop_dagcast_up(proc)
    return report(run, sampler, args)


if __name__ == "__main__":
    sys.exit(main())
