"""Where a deployed stage is, found the way `dagcast deploy` recorded it: the REST API and the
Lambda functions in ``.chalice/deployed/<stage>.json`` (Chalice), the stage's settings in
``.chalice/config.json``, and the stack ``dagcast-<stage>``'s outputs and alarms (CloudFormation).
The API key is not recorded anywhere (deploy shows it once): the caller passes it. The AWS clients
are handed in (``Any``: no type stubs for CloudFormation here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..client import CliError
from ..deploy.stage import EVENTS_URL_OUTPUT, stack_name

ALARM_TYPE = "AWS::CloudWatch::Alarm"


@dataclass(frozen=True)
class StageTarget:
    stage: str
    api_url: str  # the REST API's base (Chalice's rest_api_url, no trailing slash)
    api_key: str | None
    events_url: str  # the stack's EventsUrl: the SSE function URL
    table: str
    event_bus: str  # the stage's DAGCAST_EVENT_BUS ("" = EventBridge off)
    alarms: tuple[str, ...] = ()  # the stack's alarm names
    functions: tuple[str, ...] = ()  # Lambda function names whose logs show cold starts


def _deployed(root: Path, stage: str) -> dict[str, Any]:
    path = root / ".chalice" / "deployed" / f"{stage}.json"
    if not path.exists():
        raise CliError(f"no {path.relative_to(root)}: stage {stage} was not deployed from this directory")
    deployed: dict[str, Any] = json.loads(path.read_text())
    return deployed


def _stage_env(root: Path, stage: str) -> dict[str, str]:
    config = json.loads((root / ".chalice" / "config.json").read_text())
    env: dict[str, str] = config.get("stages", {}).get(stage, {}).get("environment_variables", {})
    return env


def stack_outputs_and_alarms(cfn: Any, stage: str) -> tuple[dict[str, str], list[str]]:
    name = stack_name(stage)
    try:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        raise CliError(f"no stack {name}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    alarms: list[str] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        alarms += [
            r["PhysicalResourceId"] for r in page["StackResourceSummaries"] if r["ResourceType"] == ALARM_TYPE
        ]
    return outputs, alarms


def from_deployment(root: Path, stage: str, cfn: Any, api_key: str | None) -> StageTarget:
    deployed = _deployed(root, stage)
    resources = deployed.get("resources", [])
    api = next((r for r in resources if r.get("resource_type") == "rest_api"), None)
    if api is None:
        raise CliError(f".chalice/deployed/{stage}.json has no rest_api: run dagcast deploy --stage {stage}")
    functions = [
        str(r["lambda_arn"]).rsplit(":", 1)[-1]
        for r in resources
        if r.get("resource_type") == "lambda_function"
    ]
    outputs, alarms = stack_outputs_and_alarms(cfn, stage)
    if outputs.get("SseFunctionName"):
        functions.append(outputs["SseFunctionName"])
    return StageTarget(
        stage=stage,
        api_url=str(api["rest_api_url"]).rstrip("/"),
        api_key=api_key,
        events_url=outputs.get(EVENTS_URL_OUTPUT, "").rstrip("/"),
        table=outputs.get("TableName", ""),
        event_bus=_stage_env(root, stage).get("DAGCAST_EVENT_BUS", ""),
        alarms=tuple(alarms),
        functions=tuple(functions),
    )
