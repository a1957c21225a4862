"""The concurrency budget read offline: every Chalice function reserves concurrency in every stage,
as Chalice itself reads the config, and the account check's arithmetic (dagcast/deploy/concurrency.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dagcast.deploy.concurrency import (
    BUDGET,
    MIN_UNRESERVED,
    AccountConcurrency,
    BudgetError,
    apply,
    check,
    parse_flag,
    reservations,
)
from tests.support.cloudformation import ROOT


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return loaded


STAGES = sorted(config()["stages"])


def test_the_budget_names_every_function_of_the_app():
    """A function added to app.py without a line in BUDGET would deploy with no reservation: it
    would draw on the pool the task Lambdas count on, and the account check would not count it."""
    import app

    functions = {f.name for f in app.app.pure_lambda_functions} | {e.name for e in app.app.event_sources}
    assert functions | {"api_handler"} == set(BUDGET)


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_reserves_concurrency_in_every_stage_as_chalice_reads_it(stage: str):
    from chalice.config import Config

    found = reservations(config(), stage)
    for function in BUDGET:
        scoped = Config(chalice_stage=stage, function_name=function, config_from_disk=config())
        assert scoped.reserved_concurrency == found[function] >= 1, function
    assert found == BUDGET  # the stages start from the table's values


def test_a_function_without_a_reservation_is_refused():
    broken = config()
    del broken["stages"]["dev"]["lambda_functions"]["run_task"]["reserved_concurrency"]
    with pytest.raises(BudgetError, match="run_task has reserved_concurrency None"):
        reservations(broken, "dev")


def test_the_flags_go_into_the_stage_and_a_bad_one_is_refused():
    changed = config()
    assert apply(changed, "prod", {"run_task": 7})["run_task"] == 7
    run_task = changed["stages"]["prod"]["lambda_functions"]["run_task"]
    assert (run_task["lambda_timeout"], run_task["reserved_concurrency"]) == (900, 7)
    assert parse_flag("fanout=3") == ("fanout", 3)
    for bad in ("fanout=0", "fanout", "nothing=3", "run_task=-1"):
        with pytest.raises(BudgetError, match="FUNCTION=N"):
            parse_flag(bad)


@pytest.mark.parametrize(
    ("limit", "unreserved", "held", "left"),
    [
        (1000, 1000, 0, 498),  # a fresh account: 502 reserved by the stage
        (1000, 600, 0, 98),  # others hold 400
        (1000, 498, 502, 498),  # a redeploy: the stage's own 502 are replaced, not added
        (602, 602, 0, 100),  # exactly AWS's minimum
    ],
)
def test_what_stays_unreserved(limit, unreserved, held, left):
    planned = {f"dagcast-dev-{fn}": value for fn, value in BUDGET.items()} | {"dagcast-dev-sse": 100}
    now = {"dagcast-dev-run_task": held} if held else {}
    account = AccountConcurrency(limit, unreserved)
    if left >= MIN_UNRESERVED:
        assert check(planned, account, now) == left
    else:
        with pytest.raises(BudgetError, match=rf"\({left} would be left\)"):
            check(planned, account, now)
