"""A stage's names and settings: what the stack and the Chalice stage each call a resource, the stage
made from ``dev`` when new, and what passes between Chalice and template.yaml."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.config import ASL_FUNCTIONS

from .commands import DeployError
from .regions import partition

# template.yaml parameter → the Chalice function whose ARN it takes
FUNCTION_PARAMETERS = {**ASL_FUNCTIONS, "FanoutFunctionArn": "fanout"}
# template.yaml output → the Chalice stage variable that must hold the same value. Both follow one
# naming convention (dagcast-<stage>…); deploy checks it after `sam deploy` and stops on a difference.
STAGE_OUTPUTS = {
    "TableName": "DAGCAST_TABLE",
    "StateMachineArn": "DAGCAST_STATE_MACHINE_ARN",
    "StreamSecretName": "DAGCAST_STREAM_SECRET_NAME",
    "WebhookKeyAlias": "DAGCAST_WEBHOOK_KMS_KEY",
}
# A stage may switch these off with "" (webhooks: docs/webhooks.md); they are checked when set.
OPTIONAL_OUTPUTS = {"WebhookKeyAlias"}
# Not known before the stack exists: deploy writes it into DAGCAST_EVENTS_URL.
EVENTS_URL_OUTPUT = "EventsUrl"


def stack_name(stage: str) -> str:
    return f"dagcast-{stage}"


def table_name(stage: str) -> str:
    return f"dagcast-{stage}"


def api_log_group(stage: str) -> str:
    """The API Lambda is ``dagcast-<stage>`` (Chalice names the API handler after the app and stage)."""
    return f"/aws/lambda/dagcast-{stage}"


def log_retention(config: dict[str, Any], stage: str) -> int | None:
    """The stage's ``log_retention_in_days`` (a new stage is made from dev), else the top level's."""
    stages = config.get("stages", {})
    days = stages.get(stage, stages.get("dev", {})).get("log_retention_in_days")
    days = days or config.get("log_retention_in_days")
    return int(days) if days else None


def for_stage(text: str, stage: str) -> str:
    """The dev stage's names (config or policy) for another stage."""
    for old, new in (
        ("dagcast-dev", f"dagcast-{stage}"),
        ("dagcast-internal/dev/", f"dagcast-internal/{stage}/"),
        ("policy-dev-", f"policy-{stage}-"),
    ):
        text = text.replace(old, new)
    return text


def stage_config(config: dict[str, Any], stage: str, region: str, account: str) -> dict[str, Any]:
    """The config with ``stage`` present (made from dev when new) and its state machine ARN set."""
    config = json.loads(json.dumps(config))
    stages = config.setdefault("stages", {})
    if stage not in stages:
        stages[stage] = json.loads(for_stage(json.dumps(stages["dev"]), stage))
        stages[stage]["environment_variables"]["DAGCAST_EVENTS_URL"] = ""
    env = stages[stage]["environment_variables"]
    arn = f"arn:{partition(region)}:states:{region}:{account}:stateMachine:dagcast-{stage}-dag"
    env["DAGCAST_STATE_MACHINE_ARN"] = arn
    return config


def function_arns(deployed: dict[str, Any]) -> dict[str, str]:
    """Template parameters from .chalice/deployed/<stage>.json."""
    arns = {
        str(r["name"]): str(r["lambda_arn"])
        for r in deployed.get("resources", [])
        if r.get("resource_type") == "lambda_function"
    }
    missing = [fn for fn in FUNCTION_PARAMETERS.values() if fn not in arns]
    if missing:
        raise DeployError(f"chalice did not deploy {', '.join(missing)}; see .chalice/deployed/")
    return {param: arns[fn] for param, fn in FUNCTION_PARAMETERS.items()}
