"""The commands that change an execution after it ended: ``rerun`` (a new execution that reuses
what completed, docs/api.md) and ``rm`` (delete it now, with everything it stored)."""

from __future__ import annotations

import argparse
from urllib.parse import quote

import httpx

from .api import TIMEOUT, api_flags, execution_id, open_api
from .command import Subcommands, guarded


def add_rerun(sub: Subcommands) -> None:
    rerun = sub.add_parser("rerun", help="run a finished execution again, reusing what completed")
    rerun.set_defaults(handler=lambda parser, args: rerun_command(args))
    rerun.add_argument("id", type=execution_id, help="the execution to rerun")
    rerun.add_argument(
        "--tasks",
        type=_task_ids,
        default=None,
        help="also run these tasks again (and their dependents), e.g. 2,5 (default: from failure)",
    )
    api_flags(rerun, events=False, token=False)


def _task_ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"task ids are numbers separated by commas, e.g. 2,5; got {raw!r}"
        ) from None
    if not ids:
        raise argparse.ArgumentTypeError("name at least one task id, e.g. --tasks 2")
    return ids


@guarded
def rerun_command(args: argparse.Namespace) -> int:
    body = {"tasks": args.tasks} if args.tasks else {}  # {}: from failure
    with httpx.Client(timeout=TIMEOUT) as http:
        _, api = open_api(args, http)
        accepted = api.json("POST", f"/api/v1/dag-executions/{quote(args.id, safe='')}/rerun", json=body)
    print(f"{accepted['executionId']}  rerun of {args.id} (dagcast trace {accepted['executionId']})")
    return 0


def add_rm(sub: Subcommands) -> None:
    rm = sub.add_parser("rm", help="delete a finished execution now: its events, tasks and results")
    rm.set_defaults(handler=lambda parser, args: rm_command(args))
    rm.add_argument("id", type=execution_id, help="the execution to delete")
    api_flags(rm, events=False, token=False)


@guarded
def rm_command(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=TIMEOUT) as http:
        _, api = open_api(args, http)
        api.json("DELETE", f"/api/v1/dag-executions/{quote(args.id, safe='')}")
    print(f"{args.id} deleted")
    return 0
