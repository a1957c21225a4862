"""``dagcast fanout redrive``: deliver the events of the fan-out's on-failure queue from the table
(docs/operations.md § The fan-out gave up on records).

Only the flags and the clients live here; what a redrive does is ``dagcast.redrive``'s.
"""

from __future__ import annotations

import argparse
import re
import sys

from .command import EXIT_ERROR, EXIT_INTERRUPTED, Subcommands
from .deployment import STAGE_PATTERN


def add_fanout(sub: Subcommands) -> None:
    fanout = sub.add_parser("fanout", help="the fan-out (webhooks, EventBridge) of a deployed stage")
    actions = fanout.add_subparsers(dest="action", required=True, metavar="ACTION")
    redrive = actions.add_parser(
        "redrive",
        help="deliver what the fan-out gave up on: the events its on-failure queue names, read from "
        "the table, through the fanout function; each message deleted once delivered",
    )
    redrive.set_defaults(handler=redrive_command)
    redrive.add_argument("--stage", default="dev", help="the stage (default dev)")
    redrive.add_argument("--region", help="AWS region (default $AWS_REGION / $AWS_DEFAULT_REGION)")
    redrive.add_argument("--queue-url", help="the on-failure queue (default dagcast-<stage>-fanout-failures)")
    redrive.add_argument("--table", help="the events table (default dagcast-<stage>)")
    redrive.add_argument("--function", help="the fan-out function (default dagcast-<stage>-fanout)")
    redrive.add_argument("--max-messages", type=int, help="stop after this many messages (default: all)")
    redrive.add_argument(
        "--margin-minutes",
        type=float,
        default=15.0,
        help="for expired records: how long before the batch's first arrival an event's timestamp may "
        "be (default 15)",
    )
    redrive.add_argument(
        "--dry-run", action="store_true", help="say what each message names; deliver and delete nothing"
    )


def redrive_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ..deploy.stage import table_name
    from ..redrive import EventReader, Redrive, lambda_deliver

    if not re.fullmatch(STAGE_PATTERN, args.stage):
        parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
    if args.max_messages is not None and args.max_messages < 1:
        parser.error("--max-messages must be ≥ 1")
    session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
    sqs = session.client("sqs")
    queue_url = (
        args.queue_url or sqs.get_queue_url(QueueName=f"dagcast-{args.stage}-fanout-failures")["QueueUrl"]
    )
    reader = EventReader(session.client("dynamodb"), args.table or table_name(args.stage))
    deliver = lambda_deliver(session.client("lambda"), args.function or f"dagcast-{args.stage}-fanout")
    redrive = Redrive(
        sqs, queue_url, reader, session.client("dynamodbstreams"), deliver, args.margin_minutes * 60
    )
    try:
        report = redrive.run(args.max_messages, args.dry_run)
    except (BotoCoreError, ClientError) as exc:
        print(f"dagcast: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("dagcast: interrupted (an unfinished message shows again later)", file=sys.stderr)
        return EXIT_INTERRUPTED
    for o in report.outcomes:
        state = "deleted" if o.deleted else ("kept (dry run)" if args.dry_run else f"kept: {o.failed} failed")
        print(f"{o.message_id}  {o.events} event(s) from the {o.source}  {state}")
    print(f"{len(report.outcomes)} message(s), {report.kept} kept", file=sys.stderr)
    return 1 if report.kept and not args.dry_run else 0
