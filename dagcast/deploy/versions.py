"""Executions in flight keep the code they started with: `dagcast deploy` pins the state machine's
functions to published Lambda versions.

Chalice updates each function's ``$LATEST`` in place. A Standard execution runs for up to a year,
and every task is a Lambda call made while it runs: with unqualified ARNs in the definition, a
deploy swaps the code (and the item layouts and protocols it speaks) under the executions already
running. So, after the last ``chalice deploy`` of the four functions the ASL invokes, deploy
publishes a version of each (``aws lambda publish-version``: an immutable copy of ``$LATEST``'s code
and configuration; none is made when nothing changed since the last one) and passes the numbers as
template parameters. template.yaml substitutes ``<function ARN>:<version>`` into the definition, and
Step Functions runs every execution on the definition it was started with (UpdateStateMachine:
"running executions will continue to use the previous definition"): an execution started before
the deploy keeps calling version N, one started after it calls N+1. Aliases would not do: an
alias moved by a deploy moves under the running executions too.

What this does not pin: the functions the state machine does not invoke (the REST API, the
fan-out, the webhook retry, the SSE function) serve old and new executions alike, so they must
read both layouts (``dagcast migrate`` moves the data). Old versions are kept (Lambda does not
delete them); docs/deploy.md § Upgrading a live stage says when one may go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chalicelib.config import ASL_FUNCTIONS

# template.yaml parameter holding a function's ARN → the one holding its published version
VERSION_PARAMETERS = {param: param.removesuffix("Arn") + "Version" for param in ASL_FUNCTIONS}
UNPINNED = "$LATEST"  # the parameters' default: what a stack deployed by hand without versions runs

Command = Callable[..., str]


def qualified(arn: str, version: str) -> str:
    """A function ARN with its version (what the definition invokes)."""
    return f"{arn}:{version}"


def publish(cmd: Command, params: Mapping[str, str], region: str, dry_run: bool = False) -> dict[str, str]:
    """Publish a version of each function the state machine invokes (``params``: the template
    parameters, whose ``…FunctionArn`` are the unqualified ARNs ``Deployer.parameters`` has); the
    parameters with each one's version beside its ARN. Each function's last update must have
    finished first (a version copies ``$LATEST`` as it is; publishing during an update is refused),
    hence the wait."""
    pinned: dict[str, str] = {}
    for param, value in params.items():
        pinned[param] = value
        if param not in VERSION_PARAMETERS:
            continue
        cmd("aws", "lambda", "wait", "function-updated-v2", "--function-name", value, "--region", region)
        out = cmd(
            "aws", "lambda", "publish-version", "--function-name", value, "--region", region,
            "--description", "dagcast deploy", "--query", "Version", "--output", "text",
        )  # fmt: skip
        pinned[VERSION_PARAMETERS[param]] = f"<{ASL_FUNCTIONS[param]} version>" if dry_run else out.strip()
    return pinned
