"""What the commands that call a dagcast API share: the flags saying where it is, opening it,
and a clear error for an unknown execution.

Where the URLs and the key come from (flags › environment › config file › default) is decided by
``dagcast.client.resolve_target``; this module only maps the parsed flags onto it.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

import httpx

from ..client import DEFAULT_HOST, DEFAULT_PORT, Api, ApiError, CliError, Target, resolve_target

# read: longer than the 15 s heartbeat, so a quiet stream is not cut
TIMEOUT: Final = httpx.Timeout(10.0, read=60.0)


def execution_id(text: str) -> str:
    """An execution id as typed: not blank (a blank id would name the list endpoint)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an execution id cannot be empty (`dagcast ls` lists them)")
    return text.strip()


def api_flags(p: argparse.ArgumentParser, events: bool = True, token: bool = True) -> None:
    """--url and --api-key; --events-url and --token for the commands that read a stream."""
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


def open_api(args: argparse.Namespace, http: httpx.Client) -> tuple[Target, Api]:
    """Where the flags (or the environment, or the config file) say the API is, and the API there."""
    target = resolve_target(
        args.url, getattr(args, "events_url", None), getattr(args, "token", None), api_key=args.api_key
    )
    return target, Api(target.api, http, target.api_key)


def fetch_execution(api: Api, execution_id: str) -> dict[str, Any]:
    """The execution's snapshot; an unknown id is a CliError that says where to find the known ones."""
    try:
        return api.execution(execution_id)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"{exc} at {api.base} (dagcast ls lists the recent ones)") from None
        raise
