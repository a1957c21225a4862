"""``dagcast deploy`` and ``dagcast destroy``: a stage in AWS (docs/deploy.md).

Only the flags live here; what deploying does (chalice deploy + the SAM template, wired together)
is ``dagcast.deploy``'s, imported when one of these commands runs.
"""

from __future__ import annotations

import argparse
import re

from ..deploy.concurrency import BUDGET, BudgetError, parse_flag
from ..deploy.sse_profiles import ON_DEMAND, PROFILES, VPC_ENDPOINTS, SseProfile
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
            add_api_throttle(cloud)
            add_sse_profile(cloud)
            add_alarms(cloud)
            add_budget(cloud)
        else:
            cloud.add_argument(
                "--delete-data", action="store_true", help="also delete the events table and its webhook key"
            )


def add_api_throttle(cloud: argparse.ArgumentParser) -> None:
    rest = cloud.add_argument_group(
        "REST rate limit",
        "API Gateway stage throttling, all clients together; kept in the stage's dagcast_api_throttle "
        "in .chalice/config.json (docs/deploy.md § The REST rate limit)",
    )
    rest.add_argument("--api-stage-rate", type=float, help="requests/s, steady (the stage's, else 100)")
    rest.add_argument("--api-stage-burst", type=int, help="requests at once (the stage's, else 200)")


def api_throttle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, float]:
    """The flags given, as the stage's setting takes them; a value API Gateway would refuse every
    request with is a usage error (exit 2)."""
    given = {"rate": args.api_stage_rate, "burst": args.api_stage_burst}
    if (args.api_stage_rate is not None and not args.api_stage_rate > 0) or (
        args.api_stage_burst is not None and args.api_stage_burst < 1
    ):
        parser.error("--api-stage-rate must be > 0 and --api-stage-burst ≥ 1")
    return {key: value for key, value in given.items() if value is not None}


def add_alarms(cloud: argparse.ArgumentParser) -> None:
    notify = cloud.add_argument_group(
        "alarms",
        'where every alarm notifies; kept in the stage\'s dagcast_alarms in .chalice/config.json, "" '
        "switches one off (docs/operations.md § Metrics and alarms)",
    )
    notify.add_argument("--alarm-email", help="an address, through an SNS topic the stack makes")
    notify.add_argument("--alarm-topic", help="an SNS topic ARN of yours (PagerDuty, Chatbot, …)")


def alarm_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The flags given; a value SNS would refuse is a usage error (exit 2)."""
    from ..deploy.alarms import problems

    given = {"email": args.alarm_email, "topic": args.alarm_topic}
    flags = {key: value.strip() for key, value in given.items() if value is not None}
    wrong = problems(flags)
    if wrong:
        parser.error("; ".join(wrong))
    return flags


def add_sse_profile(cloud: argparse.ArgumentParser) -> None:
    sse = cloud.add_argument_group("SSE profile", "how the SSE function runs (docs/deploy.md § SSE profiles)")
    sse.add_argument(
        "--sse-profile",
        choices=PROFILES,
        default=ON_DEMAND,
        help="on-demand (default): one viewer per Lambda, capped by reserved concurrency; "
        "managed-instances: many viewers per environment on instances in your VPC",
    )
    sse.add_argument("--sse-reserved-concurrency", type=int, help="on-demand: most viewers at once (100)")
    sse.add_argument("--sse-subnets", default="", help="managed-instances (required): subnet ids (CSV)")
    sse.add_argument("--sse-security-groups", default="", help="managed-instances (required): ids (CSV)")
    sse.add_argument("--sse-concurrency", type=int, help="managed-instances: viewers per environment (64)")
    sse.add_argument("--sse-max-vcpus", type=int, help="managed-instances: the capacity's ceiling (16)")
    sse.add_argument(
        "--sse-vpc-endpoints",
        choices=VPC_ENDPOINTS,
        help="managed-instances: the DynamoDB and Secrets Manager endpoints exist (default) or are made",
    )
    sse.add_argument("--sse-vpc-id", default="", help="with --sse-vpc-endpoints create: the subnets' VPC")
    sse.add_argument("--sse-route-tables", default="", help="with --sse-vpc-endpoints create: ids (CSV)")


def add_budget(cloud: argparse.ArgumentParser) -> None:
    lambdas = cloud.add_argument_group(
        "Lambda", "reserved concurrency, kept in the stage's lambda_functions in .chalice/config.json "
        "(docs/deploy.md § Concurrency budget), and the Web Adapter layer"
    )  # fmt: skip
    lambdas.add_argument(
        "--reserved-concurrency", action="append", default=[], metavar="FUNCTION=N",
        help=f"a Chalice function's reserved concurrency (repeatable): {', '.join(BUDGET)}",
    )  # fmt: skip
    lambdas.add_argument("--web-adapter-layer", default="", help="its ARN where AWS publishes none")


def reservations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, int]:
    try:
        return dict(parse_flag(text) for text in args.reserved_concurrency)
    except BudgetError as exc:
        parser.error(str(exc))


def sse_profile(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SseProfile:
    """The flags as a profile; a wrong or missing one is a usage error (exit 2)."""
    profile = SseProfile(
        profile=args.sse_profile,
        reserved_concurrency=args.sse_reserved_concurrency,
        subnets=args.sse_subnets,
        security_groups=args.sse_security_groups,
        per_environment_concurrency=args.sse_concurrency,
        max_vcpus=args.sse_max_vcpus,
        vpc_endpoints=args.sse_vpc_endpoints,
        vpc_id=args.sse_vpc_id,
        route_tables=args.sse_route_tables,
    )
    problems = profile.problems()
    if problems:
        parser.error("; ".join(problems))
    return profile


def cloud_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..deploy.deployer import main as cloud_main

    if not re.fullmatch(STAGE_PATTERN, args.stage):
        parser.error("--stage must be 1-20 characters of a-z, 0-9 and -")
    deploying = args.command == "deploy"
    sse = sse_profile(parser, args) if deploying else None
    return cloud_main(
        args.command,
        args.stage,
        args.region,
        args.dry_run,
        getattr(args, "delete_data", False),
        getattr(args, "cors_origins", ""),
        sse,
        api_throttle(parser, args) if deploying else None,
        alarm_flags(parser, args) if deploying else None,
        reservations(parser, args) if deploying else None,
        getattr(args, "web_adapter_layer", ""),
    )
