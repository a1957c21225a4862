"""The commands about executions: ``run`` (submit a job and follow it), ``trace`` (follow one live),
``ls`` (the recent ones), ``show`` (one: its tasks and its history), ``result`` (its whole result)
and ``approve`` (an approval task's decision).

Each parses its flags, calls the API through ``dagcast.client`` and hands what came back to a view
in ``render/`` or to ``follow``; none formats output itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from chalicelib.domain.events import HEARTBEAT
from chalicelib.domain.model import ExecutionStatus

from ..client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Api,
    CliError,
    EventStream,
    auth_hint,
    error_message,
    resolve_target,
    stream_access,
)
from .api import TIMEOUT, api_flags, execution_id, fetch_execution, open_api
from .command import Subcommands, guarded
from .follow import JSON, PLAIN, follow, view_mode
from .render import tables
from .stack import reachable, start_in_process

# ----------------------------------------------------------------------------------------- run


def add_run(sub: Subcommands) -> None:
    run = sub.add_parser("run", help="submit a job and print its events live")
    run.set_defaults(handler=lambda parser, args: run_command(args))
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


@guarded
def run_command(args: argparse.Namespace) -> int:
    try:
        body = args.job.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.job}: {exc.strerror}") from None
    target = resolve_target(
        args.url, args.events_url, None, default=f"http://{DEFAULT_HOST}:{args.port}", api_key=args.api_key
    )
    if not reachable(target.api):
        if not target.is_default:
            raise CliError(f"no dagcast API answers at {target.api} (from {target.api_from})")
        start_in_process(target.api, args.port)
    with httpx.Client(timeout=TIMEOUT) as http:
        api = Api(target.api, http, target.api_key)
        reply = api.request(
            "POST", "/api/v1/execute-dag", content=body, headers={"content-type": "application/json"}
        )
        if reply.status_code != 202:
            _print_rejection(reply)
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
            return follow(http, api, access, eid, view_mode(plain=False, as_json=False))
        # The whole history from the first event (it is all new), as one line or one JSON line each.
        return follow(http, api, access, eid, JSON if args.json else PLAIN, since=0)


def _print_rejection(reply: httpx.Response) -> None:
    """Why the API refused the job: its message, and each problem it found with the job's path."""
    print(f"dagcast: the job was rejected ({reply.status_code}):", file=sys.stderr)
    print(f"  {error_message(reply)}{auth_hint(reply.status_code)}", file=sys.stderr)
    try:
        problems = reply.json().get("problems", [])
    except (ValueError, AttributeError):
        problems = []
    for problem in problems:
        print(f"  - {problem['path']}: {problem['message']}", file=sys.stderr)


# --------------------------------------------------------------------------------------- trace


def add_trace(sub: Subcommands) -> None:
    trace = sub.add_parser("trace", help="watch an execution live: its DAG, progress and result")
    trace.set_defaults(handler=lambda parser, args: trace_command(args))
    trace.add_argument(
        "id", nargs="?", type=execution_id, help="the execution id (default: the newest execution)"
    )
    api_flags(trace)
    shown = trace.add_mutually_exclusive_group()
    shown.add_argument("--plain", action="store_true", help="one line per event (the default when piped)")
    shown.add_argument("--json", action="store_true", help="print each event as one JSON line")


@guarded
def trace_command(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=TIMEOUT) as http:
        target, api = open_api(args, http)
        eid = args.id
        if eid is None:
            newest = api.executions(1)
            if not newest:
                raise CliError(f"no executions yet at {api.base}")
            eid = str(newest[0]["executionId"])
            print(f"dagcast: tracing the newest execution, {eid}", file=sys.stderr)
        fetch_execution(api, eid)  # a clear 404 before anything else
        access = stream_access(api, target, eid)
        return follow(http, api, access, eid, view_mode(args.plain, args.json))


# ------------------------------------------------------------------------------------------ ls


def add_ls(sub: Subcommands) -> None:
    ls = sub.add_parser("ls", help="recent executions, newest first (filter: --status, --tag, --since)")
    ls.set_defaults(handler=ls_command)
    api_flags(ls, events=False, token=False)
    ls.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    ls.add_argument("--status", choices=list(ExecutionStatus), help="only executions in this status")
    ls.add_argument(
        "--tag", action="append", default=[], help="only executions with this tag (repeat: all of them)"
    )
    ls.add_argument("--since", type=int, help="created at or after (epoch milliseconds)")
    ls.add_argument("--until", type=int, help="created at or before (epoch milliseconds)")
    ls.add_argument("--cursor", help="go on from a previous page's nextCursor (printed with --json)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")


def ls_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 100:
        parser.error("--limit must be between 1 and 100")
    return _ls(args)


@guarded
def _ls(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=TIMEOUT) as http:
        _, api = open_api(args, http)
        named = {"status": args.status, "since": args.since, "until": args.until, "cursor": args.cursor}
        params = [("limit", str(args.limit)), *(("tag", t) for t in args.tag)]
        params += [(k, str(v)) for k, v in named.items() if v is not None]
        page = api.json("GET", "/api/v1/dag-executions", params=params)
    if args.json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return 0
    tables.print_executions(list(page.get("executions", [])), api.base)
    if page.get("nextCursor"):
        print(f"more: dagcast ls … --cursor {page['nextCursor']}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------- show


def add_show(sub: Subcommands) -> None:
    show = sub.add_parser("show", help="one execution: its snapshot (tasks) and its event history")
    show.set_defaults(handler=show_command)
    show.add_argument("id", type=execution_id, help="the execution id")
    api_flags(show)
    show.add_argument("--since", type=int, default=0, help="events after this seq only (default 0: all)")
    show.add_argument("--json", action="store_true", help='print {"execution": …, "events": […]}')


def show_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.since < 0:
        parser.error("--since must be a non-negative event seq")
    return _show(args)


@guarded
def _show(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=TIMEOUT) as http:
        target, api = open_api(args, http)
        snapshot = fetch_execution(api, args.id)
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
            events = [e for e in stream if e.get("type") != HEARTBEAT]
    if args.json:
        print(json.dumps({"execution": snapshot, "events": events}, ensure_ascii=False, indent=2))
        return 0
    tables.print_execution(snapshot, events, args.since, api.base)
    return 0


# -------------------------------------------------------------------------------------- result


def add_result(sub: Subcommands) -> None:
    result = sub.add_parser("result", help="print an execution's whole final result, or one task's")
    result.set_defaults(handler=lambda parser, args: result_command(args))
    result.add_argument("id", type=execution_id, help="the execution id")
    api_flags(result, events=False, token=False)
    result.add_argument("--task", type=int, default=None, help="this task's result instead")
    result.add_argument("--json", action="store_true", help="print a text result as JSON too")


@guarded
def result_command(args: argparse.Namespace) -> int:
    # Api.result reads every page: results over one answer (~5 MB encoded) come in several.
    with httpx.Client(timeout=TIMEOUT) as http:
        _, api = open_api(args, http)
        value = api.result(args.id, args.task)
    if isinstance(value, str) and not args.json:
        print(value)
    else:
        print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0


# ------------------------------------------------------------------------------------- approve


def add_approve(sub: Subcommands) -> None:
    approve = sub.add_parser("approve", help="decide an approval task: approve it, or --reject it")
    approve.set_defaults(handler=lambda parser, args: approve_command(args))
    approve.add_argument("id", type=execution_id, help="the execution id")
    approve.add_argument("task", type=int, help="the approval task's id")
    api_flags(approve, events=False, token=False)
    approve.add_argument("--reject", action="store_true", help="reject it (the task fails, with the comment)")
    approve.add_argument("--comment", default="", help="why (kept with the decision; a rejection's error)")
    approve.add_argument("--data", default=None, help="JSON kept with the decision (the task's result)")


@guarded
def approve_command(args: argparse.Namespace) -> int:
    try:
        data = None if args.data is None else json.loads(args.data)
    except ValueError as exc:
        raise CliError(f"--data is not JSON: {exc}") from None
    with httpx.Client(timeout=TIMEOUT) as http:
        _, api = open_api(args, http)
        path = f"/api/v1/dag-executions/{quote(args.id, safe='')}/tasks/{args.task}/decision"
        decision = {"approve": not args.reject, "comment": args.comment, "data": data}
        task = api.json("POST", path, json=decision)
    verdict = "rejected" if args.reject else "approved"
    print(f"task {args.task} of {args.id} {verdict}: {task.get('status')}")
    return 0
