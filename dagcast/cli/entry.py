"""``dagcast``'s entry point: the top-level parser, built from each command group's module, and
the call of the chosen command's handler.

The order the groups add their commands in is the order ``dagcast --help`` lists them.
"""

from __future__ import annotations

import argparse

from . import deployment, executions, fanout, keys, manage, migrate, stack, verify
from .command import Handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(parser, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagcast",
        description="Run DAGs of tasks and watch them live. Every command and flag: docs/cli.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack.add_up(sub)
    executions.add_run(sub)
    executions.add_trace(sub)
    keys.add_api_key(sub)
    executions.add_ls(sub)
    executions.add_show(sub)
    executions.add_result(sub)
    executions.add_approve(sub)
    manage.add_rerun(sub)
    manage.add_rm(sub)
    deployment.add_deploy_and_destroy(sub)
    verify.add_verify(sub)
    migrate.add_migrate(sub)
    fanout.add_fanout(sub)
    return parser
