"""The stack's concurrency budget: what each function reserves of the region's Lambda pool, and the
check `dagcast deploy` makes against the account before it changes anything.

Every function of a stage has reserved concurrency. A reservation is both a floor and a ceiling: the
task Lambdas keep their share however many viewers, API callers or other functions of the account
run, and none of them can take more than its share either (a throttled state machine call is retried
by the ASL). AWS keeps at least 100 of an account's concurrency unreserved, and refuses a
``PutFunctionConcurrency`` that would leave less — half way through a deploy. So deploy adds up the
stage's reservations and those other functions already hold (``GetAccountSettings``:
``ConcurrentExecutions`` − ``UnreservedConcurrentExecutions``, less what this stage's own functions
hold today, which the new values replace) and refuses before the first change.

Where the values live: Chalice's own ``reserved_concurrency`` per function in each stage of
.chalice/config.json (Chalice puts it on every deploy, and removes it from a function that has none);
`dagcast deploy --reserved-concurrency FUNCTION=N` writes it there, so the stage's file says what
it reserves and a deploy without the flag keeps it. The SSE function's is template.yaml's
``SseReservedConcurrency`` (`--sse-reserved-concurrency`; the managed-instances profile reserves
none: it runs on its own instances, not the pool).

This module reads and checks; it calls nothing (dagcast/deploy/ runs the AWS CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIG_KEY = "reserved_concurrency"  # Chalice's per-function, per-stage setting
MIN_UNRESERVED = 100  # what AWS keeps unreserved in every account and region

# Every Chalice function of the app (app.py), each with the reservation a new stage starts from.
# A new function goes here and into every stage of .chalice/config.json (tests/unit/test_concurrency.py
# holds app.py, this table and the config to one another). Sized for an account at the default
# limit of 1,000: with the SSE function's 100 they reserve 502 and leave 498 (≥ 100) unreserved.
BUDGET: dict[str, int] = {
    "api_handler": 50,  # the REST API; its stage throttling (dagcast/deploy/throttle.py) keeps it below this
    "register_task": 100,  # every task's child execution registers at once (up to 1,000)
    "run_task": 200,  # the tasks that run at once, all executions together
    "record_failure": 20,
    "finalize": 15,  # once per execution, seconds long
    "fanout": 10,  # one per stream shard (ParallelizationFactor 1)
    "webhook_retry": 2,  # scheduled every minute; a sweep may overlap the next
    "reconcile_execution": 5,  # one per execution Step Functions itself ended (timeout, abort)
}
SSE_FUNCTION = "sse"  # template.yaml's SseFunction, dagcast-<stage>-sse (on-demand profile)


class BudgetError(ValueError):
    """The reservations are not whole numbers ≥ 1, or do not fit the account."""


def function_name(app_name: str, stage: str, function: str) -> str:
    """The deployed name: Chalice names the API handler after the app and stage, the others after
    the app, stage and function; the SSE function is named by template.yaml the same way."""
    return f"{app_name}-{stage}" if function == "api_handler" else f"{app_name}-{stage}-{function}"


def _stage(config: dict[str, Any], stage: str) -> dict[str, Any]:
    stages = config.get("stages", {})
    found: dict[str, Any] = stages.get(stage, stages.get("dev", {}))
    return found


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def reservations(config: dict[str, Any], stage: str) -> dict[str, int]:
    """Each Chalice function's ``reserved_concurrency`` in the stage (Chalice's lookup: the
    function's in the stage, the stage's, the function's at the top level, the top level's)."""
    entry = _stage(config, stage)
    found: dict[str, int] = {}
    for function in BUDGET:
        chain = (
            entry.get("lambda_functions", {}).get(function, {}),
            entry,
            config.get("lambda_functions", {}).get(function, {}),
            config,
        )
        value = next((level[CONFIG_KEY] for level in chain if CONFIG_KEY in level), None)
        whole = _whole(value)
        if whole is None:
            raise BudgetError(
                f"stage {stage}: {function} has {CONFIG_KEY} {value!r} in .chalice/config.json; every "
                "function needs a whole number ≥ 1 (docs/deploy.md § Concurrency budget)"
            )
        found[function] = whole
    return found


def apply(config: dict[str, Any], stage: str, overrides: dict[str, int]) -> dict[str, int]:
    """Write ``overrides`` (the deploy flags) into the stage of ``config`` (a stage in it:
    deploy.stage_config) and return the stage's reservations, checked."""
    unknown = sorted(set(overrides) - set(BUDGET))
    if unknown:
        raise BudgetError(f"no function {', '.join(unknown)}: the functions are {', '.join(BUDGET)}")
    functions = config["stages"][stage].setdefault("lambda_functions", {})
    for function, value in overrides.items():
        functions.setdefault(function, {})[CONFIG_KEY] = value
    return reservations(config, stage)


def parse_flag(text: str) -> tuple[str, int]:
    """``FUNCTION=N`` of --reserved-concurrency."""
    function, _, number = text.partition("=")
    if function not in BUDGET or not number.isdigit() or int(number) < 1:
        raise BudgetError(
            f"--reserved-concurrency {text!r}: FUNCTION=N with N ≥ 1, FUNCTION one of {', '.join(BUDGET)}"
        )
    return function, int(number)


@dataclass(frozen=True)
class AccountConcurrency:
    """``GetAccountSettings``' ``AccountLimit`` of the region."""

    limit: int  # ConcurrentExecutions
    unreserved: int  # UnreservedConcurrentExecutions: the limit less every reservation in place


def check(planned: dict[str, int], account: AccountConcurrency, held: dict[str, int]) -> int:
    """What stays unreserved once ``planned`` (deployed name → reservation) replaces ``held`` (what
    those functions reserve now); BudgetError when that is below AWS's minimum of 100."""
    others = account.limit - account.unreserved - sum(held.values())
    left = account.limit - others - sum(planned.values())
    if left >= MIN_UNRESERVED:
        return left
    table = "\n".join(f"  {name:<40} {value:>6}" for name, value in sorted(planned.items()))
    raise BudgetError(
        f"the stage's reserved concurrency does not fit the account: it reserves {sum(planned.values())} "
        f"of the region's {account.limit}, other functions already reserve {others}, and AWS keeps at "
        f"least {MIN_UNRESERVED} unreserved ({left} would be left). Nothing was changed.\n{table}\n"
        "Lower some (--reserved-concurrency FUNCTION=N, --sse-reserved-concurrency N), free what other "
        "functions reserve, or ask AWS for a higher concurrency limit (Service Quotas: Lambda "
        "'Concurrent executions'). docs/deploy.md § Concurrency budget."
    )
