"""bench/sse_fanout — N concurrent SSE clients on one execution emitting events at a steady rate.

Starts `dagcast up` as its own process, creates an execution in its table, connects N raw-socket
SSE clients (asyncio + uvloop, in worker processes so the clients do not share the server's
core budget with the emitter), then appends events at a steady rate through the real store and
measures, per mode:

  delivery latency p50/p99/max   event appended → client parsed it (same machine clock)
  events/s delivered             frames parsed by all clients per second of emission
  exactly once                   every client saw seq 2..N in order, each once
  server RSS per idle connection (RSS with N idle clients − RSS before) / N
  DynamoDB reads/s               the SSE app's own DynamoDB calls per second while emitting

Modes: the hub with 1 client, the hub with N clients, and the baseline without the hub (one poller
per client) with --baseline-clients clients. Numbers, not assertions: this is `make bench`.

    python -m bench.sse_fanout [--clients 1000] [--baseline-clients 100] [--rate 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx

from chalicelib.persistence.executions import DynamoStore
from chalicelib.stream.auth import TokenSigner
from dagcast.local.launch import clean_environment, free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 20


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- clients (worker processes)


async def _client(host: str, port: int, path: str, results: dict[str, Any], ready: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        results["errors"] += 1
        writer.close()
        return
    buf = b""
    last = None
    chunked = b"chunked" in head.lower()
    got_snapshot = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buf += data
        if chunked:
            buf = _dechunk(buf, results)
        while b"\n\n" in buf:
            frame, buf = buf.split(b"\n\n", 1)
            now = time.time()
            event_name = seq = payload = None
            for line in frame.split(b"\n"):
                if line.startswith(b"event: "):
                    event_name = line[7:]
                elif line.startswith(b"id: "):
                    seq = int(line[4:])
                elif line.startswith(b"data: "):
                    payload = line[6:]
            if event_name is None or event_name == b"heartbeat":
                continue
            if not got_snapshot:
                got_snapshot = True
                last = seq
                ready[0] += 1
                continue
            if seq != (last or 0) + 1:
                results["out_of_order"] += 1
            last = seq
            results["received"] += 1
            body = json.loads(payload or b"{}")
            if "sentAt" in body:
                results["latencies"].append(now - body["sentAt"])
            if event_name in (b"execution.completed", b"execution.failed"):
                results["complete"] += 1
                writer.close()
                return
    writer.close()


def _dechunk(buf: bytes, results: dict[str, Any]) -> bytes:
    # uvicorn streams with Transfer-Encoding: chunked; strip the chunk framing.
    out = results.setdefault("_raw", bytearray())
    pending = results.get("_pending", b"") + buf
    while True:
        if b"\r\n" not in pending:
            break
        size_line, rest = pending.split(b"\r\n", 1)
        size = int(size_line, 16)
        if len(rest) < size + 2:
            break
        out += rest[:size]
        pending = rest[size + 2 :]
    results["_pending"] = pending
    data = bytes(out)
    out.clear()
    return data


def _worker(host: str, port: int, path: str, n: int, conn: Any) -> None:
    raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        ready = [0]
        per_client: list[dict[str, Any]] = [
            {"received": 0, "out_of_order": 0, "latencies": [], "complete": 0, "errors": 0} for _ in range(n)
        ]
        tasks = []
        for start in range(0, n, 200):
            for i in range(start, min(n, start + 200)):
                tasks.append(asyncio.create_task(_client(host, port, path, per_client[i], ready)))
            await asyncio.sleep(0.05)
        while ready[0] + sum(c["errors"] for c in per_client) < n:
            await asyncio.sleep(0.1)
        conn.send(("connected", ready[0]))
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.send(
            (
                "done",
                {
                    "received": [c["received"] for c in per_client],
                    "out_of_order": sum(c["out_of_order"] for c in per_client),
                    "latencies": [x for c in per_client for x in c["latencies"]],
                    "complete": sum(c["complete"] for c in per_client),
                    "errors": sum(c["errors"] for c in per_client),
                },
            )
        )

    asyncio.run(main())


# --------------------------------------------------------------------------- one run


def _payload(task_id: int) -> dict[str, Any]:
    return {"type": "substep.started", "taskId": task_id, "sentAt": time.time()}


def run_mode(label: str, clients: int, rate: float, seconds: float, hub: bool) -> dict[str, Any]:
    port = free_port()
    env = {**clean_environment(), "DAGCAST_STREAM_SECRET": SECRET}
    args = [
        str(Path(sys.executable).parent / "dagcast"),
        "up",
        "--port",
        str(port),
        "--max-streams-per-ip",
        "100000",
        "--max-streams-per-execution",
        "100000",
        "--heartbeat-seconds",
        "15",
    ]
    if not hub:
        args.append("--no-hub")
    server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dagcast up did not start") from None
                time.sleep(0.2)
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
        store = DynamoStore(session.client("dynamodb", endpoint_url=health["endpoint"]), "dagcast-local")
        eid = f"dag-exec_bench{uuid.uuid4().hex[:12]}"
        store.create_execution(
            eid, created_at=int(time.time() * 1000), original_request="bench", tasks=[], sink_ids=[]
        )
        token = TokenSigner(SECRET).issue(eid).token
        path = f"/api/v1/dag-executions/{eid}/events?token={token}"
        time.sleep(0.5)
        rss_before = rss_kb(server.pid)

        workers = 2 if clients >= 2 else 1
        pipes, procs = [], []
        ctx = mp.get_context("spawn")
        for w in range(workers):
            n = clients // workers + (1 if w < clients % workers else 0)
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=("127.0.0.1", port, path, n, child), daemon=True)
            p.start()
            pipes.append(parent)
            procs.append(p)
        connected = sum(pipe.recv()[1] for pipe in pipes)
        time.sleep(1.0)
        rss_idle = rss_kb(server.pid)

        reads_before = httpx.get(f"{base}/local/stats").json()["sseDynamodbReads"]
        total = int(rate * seconds)
        t0 = time.monotonic()

        def emit() -> None:
            for i in range(total):
                target = t0 + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # sentAt is taken when the payload is built: just before the event's conditional put
                store.append_event(eid, f"bench#{i}", functools.partial(_payload, i))
            store.append_event(
                eid,
                "execution.terminal",
                lambda: {"type": "execution.completed", "status": "completed", "sentAt": time.time()},
            )

        emitter = threading.Thread(target=emit)
        emitter.start()
        emitter.join()
        emit_seconds = time.monotonic() - t0
        reads_after = httpx.get(f"{base}/local/stats").json()["sseDynamodbReads"]
        results = [pipe.recv()[1] for pipe in pipes]
        done_at = time.monotonic()
        for p in procs:
            p.join(timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=15)

    expected = total + 1
    received = [r for res in results for r in res["received"]]
    latencies = sorted(x for res in results for x in res["latencies"])
    exactly_once = all(r == expected for r in received) and sum(res["out_of_order"] for res in results) == 0
    return {
        "mode": label,
        "clients": clients,
        "connected": connected,
        "events": expected,
        "exactly_once": exactly_once,
        "incomplete_clients": sum(1 for r in received if r != expected),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "delivered_per_s": sum(received) / max(done_at - t0, 1e-9),
        "rss_per_conn_kb": (rss_idle - rss_before) / max(connected, 1),
        "reads_per_s": (reads_after - reads_before) / emit_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--baseline-clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--hold-clients", type=int, default=10000, help="the 'many clients hold' run (0: skip)"
    )
    parser.add_argument("--hold-rate", type=float, default=2.0)
    args = parser.parse_args()
    raise_fd_limit()
    rows = [
        run_mode("hub", 1, args.rate, args.seconds, hub=True),
        run_mode("hub", args.clients, args.rate, args.seconds, hub=True),
        run_mode("no hub (baseline)", args.baseline_clients, args.rate, args.seconds, hub=False),
    ]
    hold = (
        run_mode("hub (hold)", args.hold_clients, args.hold_rate, args.seconds, hub=True)
        if args.hold_clients
        else None
    )
    print(f"bench/sse_fanout: {args.rate:g} events/s for {args.seconds:g} s, one execution")
    header = f"{'mode':<18} {'clients':>7} {'once':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'events/s':>9} {'KB/conn':>8} {'reads/s':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<18} {r['clients']:>7} {'yes' if r['exactly_once'] else 'NO':>5} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['delivered_per_s']:>9.0f} {r['rss_per_conn_kb']:>8.1f} "
            f"{r['reads_per_s']:>8.1f}"
        )
    if hold is not None:
        r = hold
        print(
            f"{r['mode']:<18} {r['clients']:>7} {'yes' if r['exactly_once'] else 'NO':>5} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['delivered_per_s']:>9.0f} {r['rss_per_conn_kb']:>8.1f} "
            f"{r['reads_per_s']:>8.1f}   ({args.hold_rate:g} events/s)"
        )
        rows.append(hold)
    one, many, base = rows[:3]
    print(
        f"reads/s, {many['clients']} clients ÷ 1 client (hub): {many['reads_per_s'] / max(one['reads_per_s'], 1e-9):.2f}"
    )
    print(
        f"reads/s per client, no hub ÷ hub: "
        f"{(base['reads_per_s'] / base['clients']) / max(many['reads_per_s'] / many['clients'], 1e-9):.0f}×"
    )
    for r in rows:
        if not r["exactly_once"]:
            print(
                f"WARNING {r['mode']} × {r['clients']}: {r['incomplete_clients']} clients missed or repeated events"
            )


if __name__ == "__main__":
    main()
