"""``dagcast deploy`` and ``dagcast destroy``: a stage in AWS (docs/deploy.md).

Only the flags live here; what deploying does (chalice deploy + the SAM template, wired together)
is ``dagcast.deploy``'s, imported when one of these commands runs.
"""

from __future__ import annotations

import argparse
import re

from .command import Subcommands

# A stage names AWS resources (dagcast-<stage>, its table, its stack), whose names allow no more.
STAGE_PATTERN = r"[a-z0-9-]{1,20}"


def add_deploy_and_destroy(sub: Subcommands) -> None:
    for name, text in (
        ("deploy", "deploy a stage to AWS: chalice deploy + template.yaml, wired together"),
        ("destroy", "delete a deployed stage (keeps its table unless --delete-data)"),
    ):
        cloud = sub.add_parser(name, help=text)
        cloud.set_defaults(handler=cloud_command)
        cloud.add_argument("--stage", default="dev", help="the stage (default dev)")
        cloud.add_argument("--region", help="AWS region (default $AWS_REGION / $AWS_DEFAULT_REGION)")
        cloud.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        if name == "deploy":
            cloud.add_argument("--cors-origins", default="", help="web origins that may read streams (CSV)")
        else:
            cloud.add_argument("--delete-data", action="store_true", help="also delete the events table")


def cloud_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..deploy import main as cloud_main

    if not re.fullmatch(STAGE_PATTERN, args.stage):
        parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
    return cloud_main(
        args.command,
        args.stage,
        args.region,
        args.dry_run,
        getattr(args, "delete_data", False),
        getattr(args, "cors_origins", ""),
    )
