"""What `dagcast deploy` checks against the machine and the account before it changes anything:
the Python Chalice packages for (dagcast/deploy/bundle.py says why it must be the runtime's) and the
concurrency budget (dagcast/deploy/concurrency.py). Each stops the deploy with a DeployError saying what to
do; a dry run prints the commands and checks nothing it would have to ask AWS for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import bundle, concurrency, regions

if TYPE_CHECKING:
    from .deployer import Deployer


def python_of(chalice_version: str) -> str | None:
    """``chalice --version`` says "chalice 1.34.0, python 3.13.1, linux …": the Python's X.Y."""
    found = re.search(r"python (\d+\.\d+)", chalice_version)
    return found.group(1) if found else None


def chalice_runtime(deployer: Deployer, error: Callable[[str], Exception]) -> None:
    """The Python behind ``chalice`` is the runtime's (3.13), or the deploy stops."""
    if deployer.dry_run:
        deployer.say(
            f"would check that chalice runs on Python {bundle.PYTHON_VERSION}, the functions' runtime"
        )
        return
    said = deployer._cmd("chalice", "--version", quiet=True)
    found = python_of(said) or f"unknown ({said.strip()!r})"
    if found == bundle.PYTHON_VERSION:
        return
    raise error(
        f"chalice runs under Python {found}, and Chalice gives every function the runtime "
        f"of the Python that runs it (and picks its wheels for it): the functions must run "
        f"{bundle.RUNTIME}. Nothing was changed. Run dagcast from a Python {bundle.PYTHON_VERSION} "
        "environment: `make clean && make install PYTHON=python3.13` (docs/deploy.md § Runtime)."
    )


def web_adapter_layer(deployer: Deployer, error: Callable[[str], Exception]) -> str:
    """The layer deploy passes: the flag's, else the one AWS publishes in the region."""
    try:
        return deployer.web_adapter_layer or regions.web_adapter_layer(deployer.region)
    except regions.RegionError as exc:
        raise error(str(exc)) from exc


def planned(deployer: Deployer, config: dict[str, Any]) -> dict[str, int]:
    """Deployed function name → the reservation this deploy gives it (the flags over the stage)."""
    stage, app = deployer.stage, str(config.get("app_name", "dagcast"))
    plan = {
        concurrency.function_name(app, stage, fn): value
        for fn, value in concurrency.apply(config, stage, deployer.reserved).items()
    }
    sse = deployer.sse.parameters().get("SseReservedConcurrency")
    if sse is not None:  # on-demand; managed instances take nothing from the pool
        plan[concurrency.function_name(app, stage, concurrency.SSE_FUNCTION)] = int(sse)
    return plan


def held(deployer: Deployer, names: list[str]) -> dict[str, int]:
    """What each of the stage's functions reserves now (0: none, or not deployed yet)."""
    found = {}
    for name in names:
        text = deployer._probe(
            "aws", "lambda", "get-function-concurrency", "--function-name", name, "--region",
            deployer.region, "--query", "ReservedConcurrentExecutions", "--output", "text",
            answer="ResourceNotFoundException",
        )  # fmt: skip
        value = (text or "").strip()
        found[name] = int(value) if value.isdigit() else 0
    return found


def concurrency_budget(deployer: Deployer, config: dict[str, Any], error: Callable[[str], Exception]) -> None:
    """The stage's reservations fit the account's limit with 100 left unreserved, or the deploy stops."""
    try:
        plan = planned(deployer, config)
    except concurrency.BudgetError as exc:
        raise error(str(exc)) from exc
    text = deployer._cmd(
        "aws", "lambda", "get-account-settings", "--region", deployer.region,
        "--query", "AccountLimit", "--output", "json", quiet=True,
    )  # fmt: skip
    if deployer.dry_run:
        deployer.say(
            f"would check that the stage's reserved concurrency ({sum(plan.values())}), with what other "
            f"functions reserve, leaves {concurrency.MIN_UNRESERVED} unreserved "
            "(aws lambda get-function-concurrency of each function)"
        )
        return
    now = held(deployer, sorted(plan))
    limit = json.loads(text)
    account = concurrency.AccountConcurrency(
        int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"])
    )
    try:
        left = concurrency.check(plan, account, now)
    except concurrency.BudgetError as exc:
        raise error(str(exc)) from exc
    deployer.say(f"reserved concurrency {sum(plan.values())} of {account.limit}: {left} stay unreserved")
