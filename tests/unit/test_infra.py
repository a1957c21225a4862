"""Offline checks of the cloud artefacts: template.yaml, the Chalice config and the ASL agree
with the code."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

from chalicelib.config import ASL_SUBSTITUTIONS
from chalicelib.store import table_definition

ROOT = Path(__file__).resolve().parents[2]


def template() -> dict[str, Any]:
    decoded, errors = decode_str((ROOT / "template.yaml").read_text())
    assert not errors, errors
    parsed: dict[str, Any] = json.loads(json.dumps(decoded))
    return parsed


def test_sam_translates_the_template_to_cloudformation(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    tpl = template()
    # `sam package` replaces local paths with S3 URIs before the transform runs
    tpl["Resources"]["DagStateMachine"]["Properties"]["DefinitionUri"] = "s3://bucket/dag.asl.json"
    tpl["Resources"]["SseFunction"]["Properties"]["CodeUri"] = "s3://bucket/sse.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out = transform(tpl, {"Stage": "dev"}, NoManagedPolicies())
    types = {name: r["Type"] for name, r in out["Resources"].items()}
    assert types["DagStateMachine"] == "AWS::StepFunctions::StateMachine"
    assert types["SseFunctionUrl"] == "AWS::Lambda::Url"
    assert out["Resources"]["SseFunctionUrl"]["Properties"]["InvokeMode"] == "RESPONSE_STREAM"


def test_template_passes_cfn_lint_including_the_sam_transform():
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint, "cfn-lint is a dev dependency (pyproject.toml)"
    result = subprocess.run([cfn_lint, str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_table_is_the_table_the_code_creates():
    props = template()["Resources"]["EventsTable"]["Properties"]
    code = table_definition("x")
    assert props["KeySchema"] == code["KeySchema"]
    assert props["AttributeDefinitions"] == code["AttributeDefinitions"]
    assert props["GlobalSecondaryIndexes"] == code["GlobalSecondaryIndexes"]
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"


def test_template_substitutes_every_asl_placeholder():
    sm = template()["Resources"]["DagStateMachine"]["Properties"]
    assert sm["DefinitionUri"] == "infra/statemachine/dag.asl.json"
    assert set(sm["DefinitionSubstitutions"]) == set(ASL_SUBSTITUTIONS)
    text = (ROOT / sm["DefinitionUri"]).read_text()
    for name in ASL_SUBSTITUTIONS:
        assert "${" + name + "}" in text


def test_sse_function_streams_through_the_web_adapter():
    fn = template()["Resources"]["SseFunction"]["Properties"]
    assert fn["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert fn["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert fn["Timeout"] == 900
    env = fn["Environment"]["Variables"]
    assert env["DAGCAST_AUTH"] == "on" and "DAGCAST_STREAM_SECRET" in env
    assert env["DAGCAST_MAX_STREAM_SECONDS"] == {"Ref": "MaxStreamSeconds"}
    mapping = template()["Resources"]["FanoutMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_chalice_stage_sets_the_settings_the_code_requires():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = config["stages"]["dev"]["environment_variables"]
    assert {"DAGCAST_TABLE", "DAGCAST_STATE_MACHINE_ARN"} <= set(env)
    policy = json.loads((ROOT / ".chalice" / config["stages"]["dev"]["iam_policy_file"]).read_text())
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement


def test_lambda_requirements_stay_lean():
    shipped = [
        line.split("==")[0].split("[")[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # httpx: the http and llm task kinds (boto3 comes with the Lambda runtime)
    assert shipped == ["pydantic", "aws-lambda-powertools", "httpx"]


def test_the_map_runs_tasks_as_child_executions_the_role_may_start():
    """A Distributed Map (no 40-iteration cap of an inline Map, one history per task) needs its
    role to start, describe and stop child executions of its own state machine."""
    asl = json.loads((ROOT / "infra/statemachine/dag.asl.json").read_text())
    tasks = asl["States"]["Tasks"]
    assert tasks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert tasks["MaxConcurrency"] == 0 and tasks["ResultPath"] is None
    sm = template()["Resources"]["DagStateMachine"]["Properties"]
    statements = sm["Policies"][0]["Statement"]
    name = sm["Name"]["Fn::Sub"]
    granted = {
        a: json.dumps(st["Resource"])
        for st in statements
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert f":stateMachine:{name}" in granted["states:StartExecution"]
    for action in ("states:DescribeExecution", "states:StopExecution"):
        assert f":execution:{name}/*" in granted[action]


def test_fan_out_mapping_filters_to_event_inserts_as_the_local_poller_does():
    from dagcast.local.poller import is_event_insert

    mapping = template()["Resources"]["FanoutMapping"]["Properties"]
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"SK": {"S": [{"prefix": "EVT#"}]}}}}

    def rec(name: str, sk: str) -> dict[str, Any]:
        return {"eventName": name, "dynamodb": {"Keys": {"SK": {"S": sk}}}}

    assert is_event_insert(rec("INSERT", "EVT#000000000001"))
    assert not is_event_insert(rec("MODIFY", "EVT#000000000001"))
    assert not is_event_insert(rec("INSERT", "DLV#x#000000000001"))
    assert not is_event_insert(rec("INSERT", "EVT~Q#000000000001"))


def test_webhook_items_expire_through_the_tables_ttl_attribute():
    from chalicelib.webhooks import WebhookStore

    ttl = template()["Resources"]["EventsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}
    assert "expiresAt" in inspect.getsource(WebhookStore.enqueue)


def test_the_stage_can_encrypt_webhook_secrets_and_publish_events():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    assert {"DAGCAST_WEBHOOK_KMS_KEY", "DAGCAST_EVENT_BUS"} <= set(stage["environment_variables"])
    policy = json.loads((ROOT / ".chalice" / stage["iam_policy_file"]).read_text())
    granted = {
        a
        for s in policy["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert {"kms:Encrypt", "kms:Decrypt", "events:PutEvents"} <= granted
    assert "WebhookKeyArn" in template()["Outputs"]
