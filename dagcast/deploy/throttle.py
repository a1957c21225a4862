"""API Gateway stage throttling for the Chalice REST API: the REST rate limit that holds in AWS.

The gate's token bucket (chalicelib/http/gate.py) counts per client IP in one process, and in
Lambda every instance is a process of its own, so N instances let a client through N times over.
API Gateway counts in front of every instance: `dagcast deploy` sets the stage's default method
throttling (all resources, all methods: the ``/*/*`` method-settings key) after the last
``chalice deploy``, with ``aws apigateway update-stage``. ``replace`` sets the value whether or not
one was there, so running it on every deploy is idempotent.

The limit is the stage's, for all clients together (API Gateway's per-client limits need its own
API keys and usage plans, which dagcast does not use): it bounds what the REST API can cost and the
Lambda concurrency it can draw from the pool the task functions share. It is a setting of its own,
``dagcast_api_throttle`` (``{"rate": requests/s, "burst": requests at once}``) in
.chalice/config.json — the top level's for every stage, a stage's own over it, `dagcast deploy
--api-stage-rate/--api-stage-burst` write it into the stage — so the stage's file says what its
API is allowed and a deploy without the flags keeps it. Not ``DAGCAST_API_RATE`` /
``DAGCAST_API_BURST``: those are per client and per instance, and a stage-wide 20/s would throttle
every client together. Not an environment variable either: no function reads it (test_infra holds
every variable a function is given to one it reads). Chalice ignores keys it does not know.

Not done here: per-client limits in AWS (usage plans), WAF on the REST stage.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_KEY = "dagcast_api_throttle"
DEFAULT_STAGE = "api"  # Chalice's api_gateway_stage when a config names none
# The stage's default method settings: every resource ("/*"), every method ("*"); in a patch path
# the key's "/" is not escaped (AWS CLI UpdateStage; the serverless-rules "default throttling" page).
THROTTLE_PATH = "/*/*/throttling/{}"


class ThrottleError(ValueError):
    """A stage's throttle settings are missing or not positive numbers."""


@dataclass(frozen=True)
class StageThrottle:
    rate: float  # requests/s, steady state, all clients of the stage together
    burst: int  # requests at once

    def patch_operations(self) -> list[str]:
        return [
            f"op=replace,path={THROTTLE_PATH.format('rateLimit')},value={self.rate:g}",
            f"op=replace,path={THROTTLE_PATH.format('burstLimit')},value={self.burst}",
        ]


def _stage(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """The stage's settings; a stage not in the file yet is made from dev (deploy.stage_config)."""
    stages = config.get("stages", {})
    found: dict[str, Any] = stages.get(stage, stages.get("dev", {}))
    return found


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def stage_throttle(config: dict[str, Any], stage: str) -> StageThrottle:
    """The stage's ``dagcast_api_throttle``, each of rate and burst from the stage over the top level."""
    values = {**config.get(CONFIG_KEY, {}), **_stage(config, stage).get(CONFIG_KEY, {})}
    rate, burst = _number(values.get("rate")), _number(values.get("burst"))
    if rate is None or burst is None or rate <= 0 or burst < 1 or burst != int(burst):
        raise ThrottleError(
            f"stage {stage}: {CONFIG_KEY} in .chalice/config.json is {values!r}; it needs a rate > 0 "
            "(requests/s) and a whole burst ≥ 1: API Gateway refuses every request at 0 "
            "(docs/deploy.md § The REST rate limit)"
        )
    return StageThrottle(rate, int(burst))


def apply(config: dict[str, Any], stage: str, overrides: dict[str, float]) -> StageThrottle:
    """Write ``overrides`` (the deploy flags: rate and/or burst) into the stage's setting in
    ``config`` (a stage in it: deploy.stage_config) and return the stage's throttle, checked."""
    if overrides:
        entry = config["stages"][stage]
        entry[CONFIG_KEY] = {**entry.get(CONFIG_KEY, {}), **overrides}
    return stage_throttle(config, stage)


def api_gateway_stage(config: dict[str, Any], stage: str) -> str:
    """The API Gateway stage Chalice deploys the REST API to (``api_gateway_stage``)."""
    return str(
        _stage(config, stage).get("api_gateway_stage") or config.get("api_gateway_stage") or DEFAULT_STAGE
    )


def rest_api_id(deployed: dict[str, Any]) -> str | None:
    """The REST API's id from .chalice/deployed/<stage>.json (Chalice records it as ``rest_api_id``)."""
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_id"):
            return str(resource["rest_api_id"])
    return None


def update_stage_command(api_id: str, api_stage: str, region: str, throttle: StageThrottle) -> list[str]:
    """The one AWS CLI call that sets the stage's throttling."""
    return [
        "aws", "apigateway", "update-stage", "--rest-api-id", api_id, "--stage-name", api_stage,
        "--region", region, "--patch-operations", *throttle.patch_operations(),
    ]  # fmt: skip


def update_stage(root: Path, stage: str, region: str, throttle: StageThrottle, dry_run: bool) -> list[str]:
    """The command for the stage Chalice deployed (its REST API id from .chalice/deployed/; a
    placeholder in a dry run, which deploys nothing)."""
    config = json.loads((root / ".chalice" / "config.json").read_text())
    deployed = root / ".chalice" / "deployed" / f"{stage}.json"
    if dry_run:
        api_id: str | None = f"<rest_api_id from {deployed.relative_to(root)}>"
    else:
        api_id = rest_api_id(json.loads(deployed.read_text()))
    if api_id is None:
        raise ThrottleError(f"chalice deployed no REST API for stage {stage}: see {deployed}")
    return update_stage_command(api_id, api_gateway_stage(config, stage), region, throttle)
