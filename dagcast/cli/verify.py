"""``dagcast verify``: check a deployed stage end to end (docs/deploy.md § Verifying a stage).

Only the flags and the printing live here; the checks are ``dagcast.verify``'s, imported when the
command runs.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ..client import CliError
from .command import Subcommands, guarded
from .deployment import STAGE_PATTERN


def add_verify(sub: Subcommands) -> None:
    verify = sub.add_parser("verify", help="run a small job through a deployed stage and check it end to end")
    verify.set_defaults(handler=lambda parser, args: verify_command(parser, args))
    verify.add_argument("--stage", default="dev", help="the stage (default dev)")
    verify.add_argument("--region", help="AWS region (default $AWS_REGION / $AWS_DEFAULT_REGION)")
    verify.add_argument("--api-key", help="the stage's API key (default $DAGCAST_API_KEY)")
    verify.add_argument(
        "--webhook-url", default="", help="a receiver you watch: the job's events are sent there"
    )
    verify.add_argument(
        "--webhook-secret",
        default="",
        help="your receiver's signing secret ($DAGCAST_VERIFY_WEBHOOK_SECRET; else a one-off one)",
    )
    verify.add_argument("--viewers", type=int, default=3, help="live streams at once (default 3)")
    verify.add_argument("--timeout", type=float, default=120, help="seconds for the job and each observer")
    verify.add_argument(
        "--skip-alarms",
        action="store_true",
        help="do not set the alarms to ALARM (it notifies their subscribers)",
    )
    verify.add_argument(
        "--metrics-wait", type=float, default=300, help="seconds to wait for CloudWatch's RCU datapoints"
    )


def verify_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not re.fullmatch(STAGE_PATTERN, args.stage):
        parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
    if args.viewers < 1:
        parser.error("--viewers must be at least 1")
    return guarded(_verify)(args)


def _verify(args: argparse.Namespace) -> int:
    import boto3
    import httpx

    from ..verify import Options, report, run_checks
    from ..verify.target import from_deployment

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise CliError("no region: pass --region or set AWS_REGION")
    session = boto3.Session(region_name=region)
    api_key = args.api_key or os.environ.get("DAGCAST_API_KEY")
    target = from_deployment(Path.cwd(), args.stage, session.client("cloudformation"), api_key)
    options = Options(
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret or os.environ.get("DAGCAST_VERIFY_WEBHOOK_SECRET", ""),
        viewers=args.viewers,
        timeout=args.timeout,
        alarms=not args.skip_alarms,
        metrics_wait=args.metrics_wait,
    )
    print(f"verifying stage {args.stage}: API {target.api_url}, events {target.events_url}", flush=True)
    with httpx.Client(timeout=httpx.Timeout(30, read=90)) as client:
        results = run_checks(target, session, client, options, lambda r: print(report.line(r), flush=True))
    print(report.summary(results))
    return 1 if any(r.outcome == report.Outcome.FAIL for r in results) else 0
