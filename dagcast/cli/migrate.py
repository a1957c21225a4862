"""``dagcast migrate``: the data changes a release needs, on a deployed stage's table or a local one
(docs/deploy.md § Upgrading a live stage). What each change does is
``dagcast.migrations``'; this module only finds the table and prints the progress.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..client import CliError
from .command import Subcommands, guarded
from .deployment import STAGE_PATTERN


def add_migrate(sub: Subcommands) -> None:
    migrate = sub.add_parser(
        "migrate", help="apply the data changes of this release (idempotent; resumes where it stopped)"
    )
    migrate.set_defaults(handler=migrate_command)
    migrate.add_argument("--stage", help="a deployed stage: its table dagcast-<stage>")
    migrate.add_argument("--region", help="AWS region (default $AWS_REGION / $AWS_DEFAULT_REGION)")
    migrate.add_argument("--table", help="a table by name instead (a local one: with --endpoint-url)")
    migrate.add_argument("--endpoint-url", help="DynamoDB endpoint (LocalStack: http://localhost:4566)")
    migrate.add_argument("--page-size", type=int, default=200, help="items scanned per saved position")


def migrate_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if (args.stage is None) == (args.table is None):
        parser.error("name the table: --stage S (a deployed stage) or --table NAME")
    if args.stage is not None and not re.fullmatch(STAGE_PATTERN, args.stage):
        parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
    if args.page_size < 1:
        parser.error("--page-size must be at least 1")
    return guarded(_migrate)(args)


def _migrate(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ..migrations import Migrator, Progress

    table = args.table or f"dagcast-{args.stage}"
    client = boto3.client("dynamodb", region_name=args.region, endpoint_url=args.endpoint_url)

    def report(p: Progress) -> None:
        state = "already done" if p.already_done else "done" if p.done else "under way"
        print(f"{table}: {p.name}: {p.scanned} items scanned, {p.changed} changed, {state}", file=sys.stderr)

    try:
        Migrator(client, table, args.page_size).run(report)
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"{table}: {exc} (run it again: it goes on from where it stopped)") from exc
    return 0
