"""The ``dagcast`` command: run the local stack, submit jobs, watch executions live.

dagcast up [--port 8000]            the embedded local stack (REST + SSE on 127.0.0.1)
dagcast run JOB.json [--trace]      submit a job and print every event until the end (or watch it
                                    live with --trace); starts a local stack when none answers
dagcast trace [ID]                  watch an execution live in the terminal (the newest without ID)
dagcast ls [--limit 20]             recent executions
dagcast show ID [--since N]         one execution: its tasks and its event history
dagcast deploy / destroy            a stage in AWS (docs/deploy.md)

Every command and flag, where the URLs come from and the exit codes: docs/cli.md.
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from chalicelib.http.gate import key_digest, new_api_key

from .client import (
    Api,
    ApiError,
    CliError,
    EventStream,
    Notice,
    StreamAccess,
    Target,
    auth_hint,
    error_message,
    resolve_target,
    stream_access,
)
from .trace import TraceModel, describe, duration, format_event, json_line, render, short

__all__ = ["format_event", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_INTERRUPTED = 130
API_KEY_HELP = """\
Give the key to its caller ($DAGCAST_API_KEY, or 'Authorization: Bearer <key>'); put the digest in
the stage's DAGCAST_API_KEYS (comma-separated) in .chalice/config.json, or run
`dagcast up --api-key <key>` locally. The key itself is not stored anywhere."""
_TIMEOUT = httpx.Timeout(10.0, read=60.0)  # read: > the 15 s heartbeat, so a quiet stream is not cut


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
        return _up(parser, args)
    if args.command == "api-key":
        key, digest = new_api_key()
        print(f"key:    {key}\ndigest: {digest}")
        print(API_KEY_HELP, file=sys.stderr)
        return 0
    if args.command == "ls" and not 1 <= args.limit <= 100:
        parser.error("--limit must be between 1 and 100")
    if getattr(args, "since", None) is not None and args.since < 0:
        parser.error("--since must be a non-negative event seq")
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "trace":
            return cmd_trace(args)
        if args.command == "ls":
            return cmd_ls(args)
        return cmd_show(args)
    except CliError as exc:
        print(f"dagcast: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dagcast: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `dagcast trace … | head`: the reader has gone; so do we, quietly (as rich does)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def execution_id(text: str) -> str:
    """An execution id as typed: not blank (a blank id would name the list endpoint)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an execution id cannot be empty (`dagcast ls` lists them)")
    return text.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagcast",
        description="Run DAGs of tasks and watch them live. Every command and flag: docs/cli.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    up.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="require this API key on the REST API (repeatable; default: open). `dagcast api-key` makes one",
    )
    up.add_argument("--api-rate", type=float, help="REST requests/s per client IP (default 0: no limit)")
    up.add_argument("--api-burst", type=int, help="REST requests per client IP at once (default 100)")
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
        "--fanout-max-retries",
        type=int,
        default=10,
        help="retries of a failing fan-out batch before its record is given up, like MaximumRetryAttempts "
        "(default 10; -1: without limit; the moto backend)",
    )
    up.add_argument(
        "--backend",
        choices=["moto", "localstack"],
        default="moto",
        help="moto: the embedded stack (default); localstack: provision into LocalStack at "
        "$LOCALSTACK_ENDPOINT (default http://localhost:4566)",
    )

    def api_flags(p: argparse.ArgumentParser, events: bool = True, token: bool = True) -> None:
        p.add_argument(
            "--url",
            default=None,
            help="API base URL (default: $DAGCAST_API_URL, the config file's url, "
            f"http://{DEFAULT_HOST}:{DEFAULT_PORT})",
        )
        if events:
            p.add_argument(
                "--events-url",
                default=None,
                help="SSE base URL (default: the eventsUrl the API answers with)",
            )
        if token:
            p.add_argument(
                "--token", default=None, help="stream token (default: a fresh one from POST …/stream-token)"
            )
        p.add_argument(
            "--api-key",
            default=None,
            help="the REST API's key (default: $DAGCAST_API_KEY, the config file's apiKey)",
        )

    run = sub.add_parser("run", help="submit a job and print its events live")
    run.add_argument("job", type=Path, help="a job file (JSON)")
    api_flags(run, token=False)
    run.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="the local stack's port: in the default URL, and for a stack this command starts (8000)",
    )
    shown = run.add_mutually_exclusive_group()
    shown.add_argument(
        "--trace", action="store_true", help="the live view of `dagcast trace` (on a terminal)"
    )
    shown.add_argument("--json", action="store_true", help="print each event as one JSON line")

    trace = sub.add_parser("trace", help="watch an execution live: its DAG, progress and result")
    trace.add_argument(
        "id", nargs="?", type=execution_id, help="the execution id (default: the newest execution)"
    )
    api_flags(trace)
    shown = trace.add_mutually_exclusive_group()
    shown.add_argument("--plain", action="store_true", help="one line per event (the default when piped)")
    shown.add_argument("--json", action="store_true", help="print each event as one JSON line")

    sub.add_parser("api-key", help="make a REST API key and print it with its digest (DAGCAST_API_KEYS)")
    ls = sub.add_parser("ls", help="recent executions, newest first")
    api_flags(ls, events=False, token=False)
    ls.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")

    show = sub.add_parser("show", help="one execution: its snapshot (tasks) and its event history")
    show.add_argument("id", type=execution_id, help="the execution id")
    api_flags(show)
    show.add_argument("--since", type=int, default=0, help="events after this seq only (default 0: all)")
    show.add_argument("--json", action="store_true", help='print {"execution": …, "events": […]}')

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
    return parser


# ---------------------------------------------------------------------------------- dagcast up


def _up(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    env = {
        "DAGCAST_HEARTBEAT_SECONDS": args.heartbeat_seconds,
        "DAGCAST_MAX_STREAM_SECONDS": args.max_stream_seconds,
        "DAGCAST_AUTH": "off" if args.no_auth else None,
        "DAGCAST_CORS_ORIGINS": ",".join(args.cors_origin) or None,
        "DAGCAST_MAX_STREAMS_PER_IP": args.max_streams_per_ip,
        "DAGCAST_MAX_STREAMS_PER_EXECUTION": args.max_streams_per_execution,
        "DAGCAST_SSE_HUB": "off" if args.no_hub else None,
        "DAGCAST_API_KEYS": ",".join(key_digest(k) for k in args.api_key) or None,
        "DAGCAST_API_RATE": args.api_rate,
        "DAGCAST_API_BURST": args.api_burst,
    }
    os.environ.update({k: str(v) for k, v in env.items() if v is not None})
    if not 1 <= args.fanout_batch_size <= 10_000 or not 0 <= args.fanout_batch_window <= 300:
        parser.error("--fanout-batch-size must be 1..10000 and --fanout-batch-window 0..300 seconds")
    if not -1 <= args.fanout_max_retries <= 10_000:
        parser.error("--fanout-max-retries must be -1..10000")
    stack_options = {
        "fanout_batch_size": args.fanout_batch_size,
        "fanout_batch_window_seconds": args.fanout_batch_window,
    }
    if args.backend == "localstack":
        from .local.localstack import cmd_up as cmd_up_localstack

        return cmd_up_localstack(args.host, args.port, args.verbose, stack_options)
    stack_options["fanout_max_retry_attempts"] = args.fanout_max_retries
    return cmd_up(args.host, args.port, args.verbose, stack_options)


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


# --------------------------------------------------------------------------------- dagcast run


def _reachable(url: str) -> bool:
    """A dagcast API answers at ``url`` (local or deployed: both serve the executions list; one
    that wants an API key or asks to slow down answers too)."""
    try:
        return httpx.get(f"{url}/api/v1/dag-executions?limit=1", timeout=5.0).status_code in (200, 401, 429)
    except httpx.HTTPError:
        return False


def _start_local_stack(base: str, port: int) -> None:
    print(f"dagcast: no local stack on port {port}; starting one in this process…", file=sys.stderr)
    _stack, server = _serve(DEFAULT_HOST, port, False)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not _reachable(base):
        if time.monotonic() > deadline:
            raise CliError("the local stack did not come up within 30 s")
        time.sleep(0.1)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        body = args.job.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.job}: {exc.strerror}") from None
    target = resolve_target(
        args.url, args.events_url, None, default=f"http://{DEFAULT_HOST}:{args.port}", api_key=args.api_key
    )
    if not _reachable(target.api):
        if not target.is_default:
            raise CliError(f"no dagcast API answers at {target.api} (from {target.api_from})")
        _start_local_stack(target.api, args.port)
    with httpx.Client(timeout=_TIMEOUT) as http:
        api = Api(target.api, http, target.api_key)
        reply = api.request(
            "POST", "/api/v1/execute-dag", content=body, headers={"content-type": "application/json"}
        )
        if reply.status_code != 202:
            print(f"dagcast: the job was rejected ({reply.status_code}):", file=sys.stderr)
            print(f"  {error_message(reply)}{auth_hint(reply.status_code)}", file=sys.stderr)
            try:
                problems = reply.json().get("problems", [])
            except (ValueError, AttributeError):
                problems = []
            for problem in problems:
                print(f"  - {problem['path']}: {problem['message']}", file=sys.stderr)
            return 1
        accepted = reply.json()
        eid = str(accepted["executionId"])
        # With --json, stdout carries nothing but the events.
        out = sys.stderr if args.json else sys.stdout
        print(f"execution {eid}", file=out, flush=True)
        print(f"  live events (SSE): {accepted['eventsUrl']}", file=out, flush=True)
        print(f"  status:            {accepted['statusUrl']}", file=out, flush=True)
        access = stream_access(api, target, eid, accepted["eventsUrl"], accepted.get("streamToken"))
        if args.trace:
            return follow(http, api, access, eid, _mode(plain=False, as_json=False))
        # The whole history from the first event (it is all new), as one line or one JSON line each.
        return follow(http, api, access, eid, "json" if args.json else "plain", since=0)


# ------------------------------------------------------------------------------- dagcast trace


def _mode(plain: bool, as_json: bool) -> str:
    if as_json:
        return "json"
    return "plain" if plain or not sys.stdout.isatty() else "rich"


def _open(args: argparse.Namespace, http: httpx.Client) -> tuple[Target, Api]:
    target = resolve_target(
        args.url, getattr(args, "events_url", None), getattr(args, "token", None), api_key=args.api_key
    )
    return target, Api(target.api, http, target.api_key)


def _execution(api: Api, execution_id: str) -> dict[str, Any]:
    try:
        return api.execution(execution_id)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"{exc} at {api.base} (dagcast ls lists the recent ones)") from None
        raise


def cmd_trace(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=_TIMEOUT) as http:
        target, api = _open(args, http)
        eid = args.id
        if eid is None:
            newest = api.executions(1)
            if not newest:
                raise CliError(f"no executions yet at {api.base}")
            eid = str(newest[0]["executionId"])
            print(f"dagcast: tracing the newest execution, {eid}", file=sys.stderr)
        _execution(api, eid)  # a clear 404 before anything else
        access = stream_access(api, target, eid)
        return follow(http, api, access, eid, _mode(args.plain, args.json))


def now_ms() -> int:
    return int(time.time() * 1000)


def follow(
    http: httpx.Client, api: Api, access: StreamAccess, execution_id: str, mode: str, since: int | None = None
) -> int:
    """Follow the execution's stream to its end, shown as ``mode`` (rich | plain | json).

    Starts with the snapshot (``since=None``) or after seq ``since``. Exit code: 0 completed,
    1 failed or cancelled; a lost stream raises CliError (2)."""
    model = TraceModel(execution_id)
    lock = threading.Lock()

    def refresh() -> str | None:
        fresh = api.stream_token(execution_id)
        return fresh[1] if fresh else None

    def notice(n: Notice) -> None:
        with lock:  # a few words in the view; the whole message in plain/JSON mode (stderr)
            if n.kind == "connected":
                model.connection = "live"
            elif n.kind == "token":
                model.connection = "↻ fresh stream token"
            else:
                model.connection = "↻ reconnecting" + (f" (attempt {n.attempt})" if n.attempt else "…")
        if mode != "rich" and not (n.kind == "connected" and n.message == "connected"):
            print(f"dagcast: {n.message}", file=sys.stderr, flush=True)

    stream = EventStream(http, access, since=since, refresh_token=refresh, notify=notice)
    if mode == "rich":
        return _follow_rich(stream, model, lock, api.base)
    start = time.monotonic()
    for event in stream:
        model.apply(event, now_ms())
        if event.get("type") == "heartbeat":
            continue
        print(
            json_line(event) if mode == "json" else format_event(event, time.monotonic() - start), flush=True
        )
    return _outcome(model)


def _outcome(model: TraceModel) -> int:
    if not model.finished:
        raise CliError(f"the stream ended before the execution did (status: {model.status or 'unknown'})")
    return model.exit_code()


def _follow_rich(stream: EventStream, model: TraceModel, lock: threading.Lock, api_url: str) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()

    def frame(max_rows: int | None) -> Any:
        with lock:  # built whole under the lock: the renderable keeps no reference to the model
            return render(model, model.server_now(now_ms()), console.width, max_rows, api_url)

    def final() -> None:
        with lock:
            model.connection = "ended"
        console.print(frame(200))

    try:
        with Live(
            console=console,
            get_renderable=lambda: frame(max(5, console.height - 10)),
            refresh_per_second=8,
            transient=True,
        ):
            for event in stream:
                with lock:
                    model.apply(event, now_ms())
    except KeyboardInterrupt:
        final()
        print(f"dagcast: stopped watching; {model.execution_id} goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError:
        final()
        raise
    final()
    return _outcome(model)


# ---------------------------------------------------------------------------------- ls and show


def _console() -> Any:
    from rich.console import Console

    # Piped: no colours, and never cut (tables are as wide as their content; long texts are
    # already shortened). On a terminal the flexible columns give way first (see _flex).
    return Console() if sys.stdout.isatty() else Console(width=1000)


def _flex(text: str, style: str = "") -> Any:
    """A cell of a column that may shrink: one line, cut with … (the column itself is wrapable,
    which is what lets rich narrow it before the fixed ones)."""
    from rich.text import Text

    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _tasks_done(e: dict[str, Any]) -> str:
    text = f"{e.get('completedTasks', 0)}/{e.get('totalTasks', 0)}"
    extra = [
        f"{e[k]} {label}" for k, label in (("failedTasks", "failed"), ("skippedTasks", "skipped")) if e.get(k)
    ]
    if e.get("status") == "running" and e.get("runningTasks"):
        extra.append(f"{e['runningTasks']} running")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _took(e: dict[str, Any]) -> str:
    if isinstance(e.get("durationMs"), int):
        return duration(e["durationMs"])
    if e.get("status") == "running" and isinstance(e.get("createdAt"), int):
        return duration(now_ms() - e["createdAt"]) + " so far"
    return ""


STATUS_STYLE = {"running": "cyan", "completed": "green", "failed": "red", "cancelled": "yellow"}


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.table import Table

    with httpx.Client(timeout=_TIMEOUT) as http:
        _, api = _open(args, http)
        executions = api.executions(args.limit)
    if args.json:
        print(json.dumps({"executions": executions}, ensure_ascii=False, indent=2))
        return 0
    console = _console()
    if not executions:
        console.print(f"no executions at {api.base}")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("execution", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("tasks", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    table.add_column("request", max_width=50)
    for e in executions:
        status = str(e.get("status", ""))
        table.add_row(
            str(e.get("executionId", "")),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]" if status in STATUS_STYLE else status,
            _when(e.get("createdAt")),
            _tasks_done(e),
            _took(e),
            _flex(short(e.get("originalRequest") or "", 50)),
        )
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=_TIMEOUT) as http:
        target, api = _open(args, http)
        snapshot = _execution(api, args.id)
        last = int(snapshot.get("seq", 0))
        events: list[dict[str, Any]] = []
        if args.since < last:
            # The history (seq > since) up to the snapshot's last seq: the stream replays it at once
            # and, for a finished execution, ends at the terminal event; for a running one we stop
            # at that seq instead of waiting for events that have not happened yet.
            access = stream_access(api, target, args.id)
            stream = EventStream(
                http,
                access,
                since=args.since,
                stop_at=last,
                refresh_token=lambda: (api.stream_token(args.id) or (None, None))[1],
                max_attempts=3,
            )
            events = [e for e in stream if e.get("type") != "heartbeat"]
    if args.json:
        print(json.dumps({"execution": snapshot, "events": events}, ensure_ascii=False, indent=2))
        return 0
    _print_show(snapshot, events, args.since, api.base)
    return 0


def _print_show(snapshot: dict[str, Any], events: list[dict[str, Any]], since: int, api_url: str) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    model = TraceModel()
    model.apply({**snapshot, "type": "execution.updated", "snapshot": True})
    status = str(snapshot.get("status", ""))
    head = Text()
    head.append(str(snapshot.get("executionId", "")), style="bold")
    head.append("  ")
    head.append(status, style=f"bold {STATUS_STYLE.get(status, '')}")
    if snapshot.get("originalRequest"):
        head.append("  " + short(snapshot["originalRequest"], 80), style="italic")
    console.print(head, no_wrap=True, overflow="ellipsis")
    facts = [f"created {_when(snapshot.get('createdAt'))}", f"tasks {_tasks_done(snapshot)}"]
    if _took(snapshot):
        facts.append(f"took {_took(snapshot)}" if "so far" not in _took(snapshot) else _took(snapshot))
    facts.append(f"policy {snapshot.get('failurePolicy', 'failFast')}")
    if snapshot.get("maxConcurrency"):
        facts.append(f"max {snapshot['maxConcurrency']} at a time")
    facts.append(f"last event #{snapshot.get('seq', 0)}")
    console.print(" · ".join(facts), style="dim", highlight=False)
    if status == "completed" and "finalResult" in snapshot:
        result = Text("result: ", style="green").append(short(snapshot["finalResult"], 300))
        console.print(result, no_wrap=True, overflow="ellipsis")
        if snapshot.get("finalResultTruncated"):
            console.print(f"  (cut; whole at {api_url}{snapshot.get('finalResultUrl', '')})", style="dim")
    elif snapshot.get("error"):
        reason = f" ({snapshot['reason']})" if snapshot.get("reason") else ""
        console.print(Text(f"error{reason}: ", style="red").append(str(snapshot["error"])))

    levels = {tid: n for n, level in enumerate(model.levels()) for tid in level}
    tasks = Table(box=None, header_style="bold")
    tasks.add_column("id", justify="right", no_wrap=True)
    tasks.add_column("level", justify="right", no_wrap=True)
    tasks.add_column("description", max_width=40)
    tasks.add_column("action", no_wrap=True)
    tasks.add_column("deps", max_width=20)
    tasks.add_column("status", no_wrap=True)
    tasks.add_column("attempt", justify="right", no_wrap=True)
    tasks.add_column("duration", justify="right", no_wrap=True)
    tasks.add_column("result / error", max_width=60)
    for view in snapshot.get("tasks", []):
        tstatus = str(view.get("status", ""))
        reason = view.get("reason")
        label = tstatus + (f" ({reason})" if reason and reason not in ("error", tstatus) else "")
        outcome = short(view["result"], 60) if "result" in view else short(view.get("error") or "", 60)
        tasks.add_row(
            str(view.get("taskId")),
            str(levels.get(int(view["taskId"]), "")),
            _flex(short(view.get("description") or "", 40)),
            str(view.get("action", "")),
            _flex(", ".join(str(d) for d in view.get("dependencies", []))),
            Text(label, style=_task_style(tstatus)),
            str(view.get("attempt", "")),
            duration(view.get("durationMs")),
            _flex(outcome),
        )
    console.print()
    console.print("tasks", style="bold")
    console.print(tasks)
    console.print()
    if not events:
        console.print(f"no events after #{since}", style="dim")
        return
    created = snapshot.get("createdAt")
    console.print(f"events after #{since}" if since else "events", style="bold", highlight=False)
    table = Table(box=None, header_style="bold")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("")
    for event in events:
        at = event.get("timestamp")
        offset = f"+{(at - created) / 1000:.2f}s" if isinstance(at, int) and isinstance(created, int) else ""
        table.add_row(str(event.get("seq", "")), offset, str(event["type"]), _flex(describe(event)))
    console.print(table)


def _task_style(status: str) -> str:
    return {
        "completed": "green",
        "failed": "red",
        "running": "cyan",
        "retrying": "magenta",
        "skipped": "yellow",
        "cancelled": "yellow",
    }.get(status, "dim")


if __name__ == "__main__":
    sys.exit(main())
