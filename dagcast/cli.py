"""The ``dagcast`` command: run the local stack, submit jobs, watch executions live.

dagcast up [--port 8000]          the embedded local stack (REST + SSE on 127.0.0.1)
dagcast run JOB.json [--url URL]  submit a job and print every event until the end;
                                  starts a local stack in-process when none answers
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagcast", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the embedded local stack (no AWS account, no Docker)")
    up.add_argument("--host", default=DEFAULT_HOST)
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    up.add_argument("--heartbeat-seconds", type=float, help="SSE heartbeat interval (default 15)")
    up.add_argument("--max-stream-seconds", type=float, help="a stream closes after this long (default 840)")
    up.add_argument("--no-auth", action="store_true", help="serve streams without stream tokens")
    up.add_argument(
        "--cors-origin", action="append", default=[], help="allow this web origin (repeatable; '*' for any)"
    )
    up.add_argument("--max-streams-per-ip", type=int, help="concurrent streams per client IP (default 50)")
    up.add_argument("--max-streams-per-execution", type=int, help="concurrent streams per execution (5000)")
    up.add_argument("--no-hub", action="store_true", help="one poller per stream (the benchmark baseline)")
    up.add_argument("--verbose", action="store_true", help="access log and the fan-out's log lines")
    up.add_argument(
        "--fanout-batch-size", type=int, default=100, help="stream records per fan-out batch (default 100)"
    )
    up.add_argument(
        "--fanout-batch-window",
        type=float,
        default=0.0,
        help="seconds to wait for a fuller fan-out batch, like MaximumBatchingWindowInSeconds (default 0)",
    )
    up.add_argument(
        "--backend",
        choices=["moto", "localstack"],
        default="moto",
        help="moto: the embedded stack (default); localstack: provision into LocalStack at "
        "$LOCALSTACK_ENDPOINT (default http://localhost:4566)",
    )
    run = sub.add_parser("run", help="submit a job and print its events live")
    run.add_argument("job", type=Path, help="a job file (JSON)")
    run.add_argument(
        "--url", default=None, help=f"API base URL (default http://{DEFAULT_HOST}:{DEFAULT_PORT})"
    )
    run.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port for a stack started by this command"
    )
    run.add_argument("--json", action="store_true", help="print each event as one JSON line")
    for name, text in (
        ("deploy", "deploy a stage to AWS: chalice deploy + template.yaml, wired together"),
        ("destroy", "delete a deployed stage (keeps its table unless --delete-data)"),
    ):
        cloud = sub.add_parser(name, help=text)
        cloud.add_argument("--stage", default="dev", help="the stage (default dev)")
        cloud.add_argument("--region", help="AWS region (default $AWS_REGION / $AWS_DEFAULT_REGION)")
        cloud.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        if name == "deploy":
            cloud.add_argument("--cors-origins", default="", help="web origins that may read streams (CSV)")
        else:
            cloud.add_argument("--delete-data", action="store_true", help="also delete the events table")
    args = parser.parse_args(argv)
    if args.command in ("deploy", "destroy"):
        from .deploy import main as cloud_main

        if not re.fullmatch(r"[a-z0-9-]{1,20}", args.stage):
            parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
        return cloud_main(
            args.command,
            args.stage,
            args.region,
            args.dry_run,
            getattr(args, "delete_data", False),
            getattr(args, "cors_origins", ""),
        )
    if args.command == "up":
        env = {
            "DAGCAST_HEARTBEAT_SECONDS": args.heartbeat_seconds,
            "DAGCAST_MAX_STREAM_SECONDS": args.max_stream_seconds,
            "DAGCAST_AUTH": "off" if args.no_auth else None,
            "DAGCAST_CORS_ORIGINS": ",".join(args.cors_origin) or None,
            "DAGCAST_MAX_STREAMS_PER_IP": args.max_streams_per_ip,
            "DAGCAST_MAX_STREAMS_PER_EXECUTION": args.max_streams_per_execution,
            "DAGCAST_SSE_HUB": "off" if args.no_hub else None,
        }
        os.environ.update({k: str(v) for k, v in env.items() if v is not None})
        if not 1 <= args.fanout_batch_size <= 10_000 or not 0 <= args.fanout_batch_window <= 300:
            parser.error("--fanout-batch-size must be 1..10000 and --fanout-batch-window 0..300 seconds")
        stack_options = {
            "fanout_batch_size": args.fanout_batch_size,
            "fanout_batch_window_seconds": args.fanout_batch_window,
        }
        if args.backend == "localstack":
            from .local.localstack import cmd_up as cmd_up_localstack

            return cmd_up_localstack(args.host, args.port, args.verbose, stack_options)
        return cmd_up(args.host, args.port, args.verbose, stack_options)
    return cmd_run(args.job, args.url, args.port, args.json)


def _serve(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> Any:
    from .local.process import StackProcess
    from .local.server import http_server

    os.environ.setdefault("DAGCAST_PUBLIC_URL", f"http://{host}:{port}")
    # Stream tokens are signed with a fresh random secret unless one is given.
    os.environ.setdefault("DAGCAST_STREAM_SECRET", secrets.token_urlsafe(32))
    stack = StackProcess(verbose=verbose, **(stack_options or {})).start()
    return stack, http_server(stack, host, port, verbose)


def cmd_up(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> int:
    from .local.server import print_banner

    stack, server = _serve(host, port, verbose, stack_options)
    print_banner(host, port, f"dagcast local stack (moto at {stack.endpoint})")
    try:
        server.run()
    finally:
        stack.stop()
    return 0


def _reachable(url: str) -> bool:
    """A dagcast API answers at ``url`` (local or deployed: both serve the executions list)."""
    try:
        return httpx.get(f"{url}/api/v1/dag-executions?limit=1", timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False


def cmd_run(job_path: Path, url: str | None, port: int, as_json: bool) -> int:
    try:
        body = job_path.read_bytes()
    except OSError as exc:
        print(f"dagcast: cannot read {job_path}: {exc.strerror}", file=sys.stderr)
        return 2
    base = url or f"http://{DEFAULT_HOST}:{port}"
    if not _reachable(base):
        if url is not None:
            print(f"dagcast: no dagcast API answers at {url}", file=sys.stderr)
            return 2
        print(f"dagcast: no local stack on port {port}; starting one in this process…", file=sys.stderr)
        _stack, server = _serve(DEFAULT_HOST, port, False)
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not _reachable(base):
            if time.monotonic() > deadline:
                print("dagcast: the local stack did not come up within 30 s", file=sys.stderr)
                return 2
            time.sleep(0.1)
    reply = httpx.post(
        f"{base}/api/v1/execute-dag", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    if reply.status_code != 202:
        print(f"dagcast: the job was rejected ({reply.status_code}):", file=sys.stderr)
        data = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
        print(f"  {data.get('error', reply.text)}", file=sys.stderr)
        for problem in data.get("problems", []):
            print(f"  - {problem['path']}: {problem['message']}", file=sys.stderr)
        return 1
    accepted = reply.json()
    print(f"execution {accepted['executionId']}", flush=True)
    print(f"  live events (SSE): {accepted['eventsUrl']}", flush=True)
    print(f"  status:            {accepted['statusUrl']}", flush=True)
    return watch(accepted["eventsUrl"], as_json)


def watch(events_url: str, as_json: bool = False, retries: int = 20) -> int:
    """Print every event from the first until the terminal one; exit code 0 if completed.

    Starts with ``?since=0`` (the whole history) and, if the connection drops, reconnects with
    ``Last-Event-ID`` so nothing is missed or printed twice.
    """
    start = time.monotonic()
    last_id: str | None = None
    attempts = 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        params = {} if last_id else {"since": "0"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as client,
                connect_sse(
                    client, "GET", str(httpx.URL(events_url).copy_merge_params(params)), headers=headers
                ) as source,
            ):
                if source.response.status_code == 204:
                    return 1  # only reachable after a terminal event we already printed
                source.response.raise_for_status()
                for sse in source.iter_sse():
                    if not sse.data:  # a retry-only message: browsers dispatch nothing for it
                        continue
                    event = json.loads(sse.data)
                    if sse.id and event["type"] != "heartbeat":
                        last_id = sse.id
                    print(
                        json.dumps(event) if as_json else format_event(event, time.monotonic() - start),
                        flush=True,
                    )
                    if event["type"] == "execution.completed":
                        return 0
                    if event["type"] == "execution.failed":
                        return 1
        except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
            attempts += 1
            if attempts > retries:
                print(f"dagcast: lost the event stream: {exc}", file=sys.stderr)
                return 2
            time.sleep(min(5.0, 0.5 * attempts))


def format_event(event: dict[str, Any], elapsed: float) -> str:
    kind = event["type"]
    seq = event.get("seq", "")
    head = f"[{elapsed:6.2f}s] {('#' + str(seq)) if seq != '' else '':>5} {kind:<20}"
    if event.get("snapshot"):
        return (
            f"{head} snapshot: {event['status']}, {event['completedTasks']}/{event['totalTasks']} done, "
            f"{len(event.get('tasks', []))} tasks"
        )
    if kind == "execution.created":
        return f"{head} {event['totalTasks']} tasks — {event.get('originalRequest', '')!r}"
    attempt = event.get("attempt")
    again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    if kind == "substep.started":
        return f"{head} task {event['taskId']}{again} {event.get('description', '')!r}"
    if kind == "substep.completed":
        cut = " (cut; whole at " + event["resultUrl"] + ")" if event.get("resultTruncated") else ""
        return (
            f"{head} task {event['taskId']}{again} in {event['durationMs']} ms → "
            f"{_short(event.get('result'))}{cut}"
        )
    if kind == "substep.failed":
        reason = event.get("reason", "error")
        label = "" if reason == "error" else f" [{reason}]"
        retry = f" — retry in {event.get('retryInSeconds', 0)}s" if event.get("willRetry") else ""
        return f"{head} task {event['taskId']}{again}{label}: {event['error']}{retry}"
    if kind == "execution.updated":
        skipped = f", {event['skippedTasks']} skipped" if event.get("skippedTasks") else ""
        return (
            f"{head} {event['status']}: {event['completedTasks']} completed, {event['failedTasks']} failed"
            f"{skipped}, {event.get('runningTasks', 0)} running, {event['waitingTasks']} waiting"
        )
    if kind == "execution.completed":
        return f"{head} in {event['durationMs']} ms → {_short(event.get('finalResult'), 200)}"
    if kind == "execution.failed":
        why = "cancelled" if event.get("status") == "cancelled" else event.get("reason", "taskFailed")
        label = "" if why == "taskFailed" else f" [{why}]"
        return f"{head}{label} in {event['durationMs']} ms: {event['error']}"
    return head


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
