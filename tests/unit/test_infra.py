"""Offline checks of the cloud artefacts: template.yaml, the Chalice config and the ASL agree
with the code."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
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
    assert env["DAGCAST_AUTH"] == "on" and env["DAGCAST_STREAM_SECRET_NAME"] == {"Ref": "StreamSecret"}
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
    # httpx: the http and llm task kinds; boto3: matches the botocore aws-xray-sdk brings along
    assert shipped == ["pydantic", "aws-lambda-powertools", "boto3", "httpx"]


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


# ---------------------------------------------------------------- offline deployment validation

CODE = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]
# Called by AWS on the function role's behalf, not by dagcast's code.
ROLE_ACTIONS = {
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # the event source mapping reads the stream and writes its on-failure queue as the fan-out
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
}


def code_actions() -> set[str]:
    """The IAM actions dagcast's own code needs: boto3 calls on the services it uses, found in the
    source as ``.<operation>(`` (botocore's own operation names), plus powertools' parameter reads."""
    import boto3
    from botocore import xform_name

    text = "\n".join(p.read_text() for p in CODE)
    session = boto3.Session(region_name="us-east-1")
    found: set[str] = set()
    # service → (IAM prefix, how the code names its client); factory.py builds them all
    for service, (prefix, receiver) in {
        "dynamodb": ("dynamodb", r"self\._db"),
        "stepfunctions": ("states", r"self\._sfn"),
        "kms": ("kms", r"self\._kms"),
        "events": ("events", r"self\.eventbridge"),
        "lambda": ("lambda", r"boto3\.client\(\"lambda\"[^)]*\)"),
    }.items():
        assert re.search(receiver + r"\.\w+\(", text), (
            f"no {service} call found: has the client been renamed?"
        )
        model = session.client(service).meta.service_model  # type: ignore[call-overload]
        for op in model.operation_names:
            if re.search(rf"{receiver}\.{xform_name(op)}\(", text):
                found.add(f"{prefix}:{'InvokeFunction' if op == 'Invoke' else op}")
    if "parameters.get_parameter(" in text:
        found.add("ssm:GetParameter")
    if "parameters.get_secret(" in text:
        found.add("secretsmanager:GetSecretValue")
    return found


def policy_actions(stage: str) -> set[str]:
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    return {
        a
        for st in policy["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }


def test_the_iam_policy_grants_exactly_what_the_code_calls():
    needed = code_actions()
    assert {
        "dynamodb:PutItem",
        "states:StartExecution",
        "kms:Decrypt",
        "events:PutEvents",
    } <= needed  # the scan works
    for stage in ("dev", "prod"):
        granted = policy_actions(stage)
        assert needed - granted == set(), f"policy-{stage}.json misses what the code calls"
        assert granted - needed - ROLE_ACTIONS == set(), f"policy-{stage}.json grants what nothing calls"


def test_every_policy_statement_is_scoped():
    for stage in ("dev", "prod"):
        policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
        for st in policy["Statement"]:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if resources == ["*"]:  # only where AWS offers no resource-level permission
                assert st["Sid"] in {"ReleaseTasks", "XRay"}, st
            for r in resources:
                if stage == "prod":
                    assert "dagcast-dev" not in r, st


def test_the_prod_policy_is_the_dev_policy_for_prod_resources():
    from dagcast.deploy import for_stage

    dev = (ROOT / ".chalice" / "policy-dev.json").read_text()
    assert (ROOT / ".chalice" / "policy-prod.json").read_text() == for_stage(dev, "prod")


def code_env_vars() -> set[str]:
    text = "\n".join(p.read_text() for p in CODE)
    return set(re.findall(r"DAGCAST_[A-Z_]+", text))


def test_every_environment_variable_set_is_one_the_code_reads_and_stages_are_valid(monkeypatch):
    from chalicelib.config import Settings

    read = code_env_vars()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    sse_env = template()["Resources"]["SseFunction"]["Properties"]["Environment"]["Variables"]
    for name in [*config["environment_variables"], *sse_env] + [
        n for st in config["stages"].values() for n in st["environment_variables"]
    ]:
        assert name in read or not name.startswith("DAGCAST_"), f"{name} is set but nothing reads it"
    monkeypatch.setattr("chalicelib.config._read_secret", lambda name: "x" * 48)  # Secrets Manager
    for stage, values in config["stages"].items():
        env = {**config["environment_variables"], **values["environment_variables"]}
        settings = Settings.from_env(env)  # every required setting is there and valid
        assert settings.table_name == f"dagcast-{stage}" and settings.auth and settings.webhook_kms_key
        assert settings.state_machine_arn.endswith(f":stateMachine:dagcast-{stage}-dag")
        assert env["DAGCAST_STREAM_SECRET_NAME"] == f"dagcast-internal/{stage}/stream-secret"
    parameters = template()["Parameters"]

    def resolve(value: Any) -> str:  # a parameter's default, or a resource's name for the dev stage
        if isinstance(value, dict) and "Ref" in value:
            return str(parameters.get(value["Ref"], {}).get("Default", "dagcast-dev"))
        return str(value)

    sse = Settings.from_env({k: resolve(v) for k, v in sse_env.items()})
    assert sse.table_name == "dagcast-dev" and sse.auth and sse.heartbeat_seconds == 15


def test_the_state_machine_is_well_formed():
    definition = json.loads((ROOT / "infra" / "statemachine" / "dag.asl.json").read_text())

    def check(machine: dict[str, Any], where: str) -> None:
        states = machine["States"]
        assert machine["StartAt"] in states, where
        targets: dict[str, set[str]] = {name: set() for name in states}
        for name, state in states.items():
            nexts = [state.get("Next"), state.get("Default")]
            nexts += [c.get("Next") for c in state.get("Catch", []) + state.get("Choices", [])]
            for n in filter(None, nexts):
                assert n in states, f"{where}{name} → {n}: no such state"
                targets[name].add(n)
            ends = state.get("End") or state["Type"] in ("Succeed", "Fail")
            assert ends or state.get("Next") or state["Type"] == "Choice", (
                f"{where}{name} neither ends nor continues"
            )
            if "ItemProcessor" in state:
                check(state["ItemProcessor"], f"{where}{name}/")
            resource = json.dumps(state.get("Parameters", {})) + str(state.get("Resource", ""))
            assert "${" not in resource or re.search(
                r"\$\{(" + "|".join(ASL_SUBSTITUTIONS) + r")\}", resource
            )
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += targets[name]
        assert seen == set(states), f"{where}unreachable states: {set(states) - seen}"

    check(definition, "")


def test_chalice_package_builds_a_deployment_within_lambda_limits(tmp_path):
    out = tmp_path / "package"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    bundle = out / "deployment.zip"
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        unzipped = sum(i.file_size for i in zf.infolist())
    assert bundle.stat().st_size < 50 * 2**20 and unzipped < 250 * 2**20  # Lambda's zip limits
    assert "app.py" in names and "chalicelib/webhooks.py" in names
    assert any(
        n.startswith("pydantic_core/") and n.endswith("linux-gnu.so") for n in names
    )  # built for Lambda
    assert not any(n.startswith(("tests/", "dagcast/", "moto/", "bench/")) for n in names)
    sam = json.loads((out / "sam.json").read_text())["Resources"]
    functions = [r["Properties"] for r in sam.values() if r["Type"] == "AWS::Serverless::Function"]
    assert {f["Handler"] for f in functions} == {
        "app.app",  # the REST API
        "app.register_task",
        "app.run_task",
        "app.record_failure",
        "app.finalize",
        "app.fanout_handler",
        "app.webhook_retry",
    }
    assert all(f["Tracing"] == "Active" for f in functions)
    retention = {
        r["Properties"]["RetentionInDays"] for r in sam.values() if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert retention == {14}


def test_the_sse_function_ships_everything_the_chalice_functions_ship():
    lines = [
        line.strip()
        for line in (ROOT / "infra" / "sse" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "-r ../../requirements.txt" in lines  # chalicelib is shared: so are its dependencies
    assert {line.split("==")[0] for line in lines} >= {"starlette", "uvicorn"}
