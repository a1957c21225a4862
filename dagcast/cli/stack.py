"""``dagcast up``: the embedded local stack (moto, or provisioned into LocalStack), and starting one
in-process for ``dagcast run`` when none answers.

``dagcast.local`` is imported inside the functions that start a stack, never at the top: moto and
the Lambda runtime are heavy, and ``dagcast ls`` or ``trace`` against a deployed API need neither.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from typing import Any

import httpx

from chalicelib.http.gate import key_digest
from chalicelib.tenants import tenant_problem

from ..client import DEFAULT_HOST, DEFAULT_PORT, CliError
from .command import Subcommands

START_TIMEOUT_SECONDS = 30  # for `dagcast run`'s in-process stack to answer


def add_up(sub: Subcommands) -> None:
    up = sub.add_parser("up", help="run the embedded local stack (no AWS account, no Docker)")
    up.set_defaults(handler=up_command)
    up.add_argument("--host", default=DEFAULT_HOST)
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    _add_stream_flags(up)
    _add_rest_flags(up)
    up.add_argument("--no-hub", action="store_true", help="one poller per stream (the benchmark baseline)")
    up.add_argument("--verbose", action="store_true", help="access log and the fan-out's log lines")
    _add_fanout_flags(up)
    up.add_argument(
        "--backend",
        choices=["moto", "localstack"],
        default="moto",
        help="moto: the embedded stack (default); localstack: provision into LocalStack at "
        "$LOCALSTACK_ENDPOINT (default http://localhost:4566)",
    )


def _add_stream_flags(up: argparse.ArgumentParser) -> None:
    up.add_argument("--heartbeat-seconds", type=float, help="SSE heartbeat interval (default 15)")
    up.add_argument("--max-stream-seconds", type=float, help="a stream closes after this long (default 840)")
    up.add_argument("--no-auth", action="store_true", help="serve streams without stream tokens")
    up.add_argument(
        "--cors-origin", action="append", default=[], help="allow this web origin (repeatable; '*' for any)"
    )
    up.add_argument("--max-streams-per-ip", type=int, help="concurrent streams per client IP (default 50)")
    up.add_argument("--max-streams-per-execution", type=int, help="concurrent streams per execution (5000)")


def _add_rest_flags(up: argparse.ArgumentParser) -> None:
    up.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="require this API key on the REST API (repeatable; default: open); TENANT=KEY makes it that "
        "tenant's (default: tenant 'default'). `dagcast api-key` makes one",
    )
    up.add_argument("--api-rate", type=float, help="REST requests/s per client IP (default 0: no limit)")
    up.add_argument("--api-burst", type=int, help="REST requests per client IP at once (default 100)")


def _add_fanout_flags(up: argparse.ArgumentParser) -> None:
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


def tenant_key_entry(flag: str) -> str:
    """``--api-key [TENANT=]KEY`` → its DAGCAST_API_KEYS entry (``[tenant:]digest``). Keys made by
    `dagcast api-key` never hold ``=``, so a ``=`` always separates a tenant."""
    tenant, sep, key = flag.partition("=")
    if not sep:
        return key_digest(flag)
    problem = tenant_problem(tenant)
    if problem or not key:
        raise CliError(f"--api-key {tenant}=…: {problem or 'the key is empty'}")
    return f"{tenant}:{key_digest(key)}"


def up_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        key_entries = [tenant_key_entry(k) for k in args.api_key]
    except CliError as exc:
        parser.error(str(exc))
    # The stack's settings travel as the environment its Lambda handlers and the SSE app read.
    env = {
        "DAGCAST_HEARTBEAT_SECONDS": args.heartbeat_seconds,
        "DAGCAST_MAX_STREAM_SECONDS": args.max_stream_seconds,
        "DAGCAST_AUTH": "off" if args.no_auth else None,
        "DAGCAST_CORS_ORIGINS": ",".join(args.cors_origin) or None,
        "DAGCAST_MAX_STREAMS_PER_IP": args.max_streams_per_ip,
        "DAGCAST_MAX_STREAMS_PER_EXECUTION": args.max_streams_per_execution,
        "DAGCAST_SSE_HUB": "off" if args.no_hub else None,
        "DAGCAST_API_KEYS": ",".join(key_entries) or None,
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
        from dagcast.local.localstack.backend import cmd_up as cmd_up_localstack

        return cmd_up_localstack(args.host, args.port, args.verbose, stack_options)
    stack_options["fanout_max_retry_attempts"] = args.fanout_max_retries
    return serve_forever(args.host, args.port, args.verbose, stack_options)


def _serve(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> Any:
    from dagcast.local.moto.process import StackProcess
    from dagcast.local.server import http_server

    os.environ.setdefault("DAGCAST_PUBLIC_URL", f"http://{host}:{port}")
    # Stream tokens are signed with a fresh random secret unless one is given.
    os.environ.setdefault("DAGCAST_STREAM_SECRET", secrets.token_urlsafe(32))
    stack = StackProcess(verbose=verbose, **(stack_options or {})).start()
    return stack, http_server(stack, host, port, verbose)


def serve_forever(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> int:
    """The moto stack on ``host:port`` until the server stops (Ctrl-C)."""
    from dagcast.local.server import print_banner

    stack, server = _serve(host, port, verbose, stack_options)
    print_banner(host, port, f"dagcast local stack (moto at {stack.endpoint})")
    try:
        server.run()
    finally:
        stack.stop()
    return 0


def reachable(url: str) -> bool:
    """A dagcast API answers at ``url`` (local or deployed: both serve the executions list; one
    that wants an API key or asks to slow down answers too)."""
    try:
        return httpx.get(f"{url}/api/v1/dag-executions?limit=1", timeout=5.0).status_code in (200, 401, 429)
    except httpx.HTTPError:
        return False


def start_in_process(base: str, port: int) -> None:
    """A moto stack on ``port`` in this process's background, for as long as the process runs;
    returns once the API answers at ``base``."""
    print(f"dagcast: no local stack on port {port}; starting one in this process…", file=sys.stderr)
    _stack, server = _serve(DEFAULT_HOST, port, False)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not reachable(base):
        if time.monotonic() > deadline:
            raise CliError(f"the local stack did not come up within {START_TIMEOUT_SECONDS} s")
        time.sleep(0.1)
