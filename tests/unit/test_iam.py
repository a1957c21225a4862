"""Least privilege: each Chalice function's role grants exactly the AWS calls its handler's code can
reach (tests/support/callgraph.py reads them from the source), on the stage's own resources."""

from __future__ import annotations

import ast
import fnmatch
import inspect
import json
from functools import cache
from typing import Any

import pytest
from chalice.config import Config

from dagcast.deploy import iam
from dagcast.deploy.stage import for_stage
from tests.support.callgraph import INDEX, CallGraph
from tests.support.cloudformation import ROOT, Stack

CONFIG: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
# Called by AWS with the function's role, not by dagcast's code: Lambda's logs and X-Ray for every
# function, and the stream → fan-out mapping's reads and its on-failure queue (template.yaml).
PLATFORM = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"} | {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
MAPPING = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
}
# Code a function reaches only when its environment names the resource (checked in test_the_gates…).
GATES = {
    "chalicelib.config:_read_secret": "DAGCAST_STREAM_SECRET_NAME",
    "chalicelib.fanout:FanOut._publish": "DAGCAST_EVENT_BUS",
    "chalicelib.webhooks.secrets:SecretBox.seal": "DAGCAST_WEBHOOK_KMS_KEY",
    "chalicelib.webhooks.secrets:SecretBox.open": "DAGCAST_WEBHOOK_KMS_KEY",
}
# AWS calls only the SSE function makes (its role: tests/unit/test_infra.py::sse_actions)
SSE_ONLY = {
    "chalicelib.persistence.logreads:LogReads.events_after",
    "chalicelib.persistence.activity:ActivityLog._shard",  # the many-run stream reads the activity log
}


@cache
def graph() -> CallGraph:
    return CallGraph([ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))])


def handlers() -> dict[str, list[str]]:
    """Chalice function → its entry points in app.py, from the decorators: every route and the
    "http" middleware run in the API handler; a lambda_function, schedule or other event source
    is its own function (its name= or the Python name); "all" middleware runs in every one."""
    functions: dict[str, list[str]] = {}
    everywhere: list[str] = []
    for node in ast.parse((ROOT / "app.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and ast.unparse(deco.func).startswith("app.")):
                continue
            kind = ast.unparse(deco.func).removeprefix("app.")
            args = [a.value for a in deco.args if isinstance(a, ast.Constant)]
            name = next((k.value.value for k in deco.keywords if k.arg == "name"), node.name)  # type: ignore[attr-defined]
            if kind == "route" or (kind == "middleware" and args == ["http"]):
                functions.setdefault("api_handler", []).append(f"app:{node.name}")
            elif kind == "middleware":
                everywhere.append(f"app:{node.name}")
            else:
                functions.setdefault(name, []).append(f"app:{node.name}")
    return {fn: entries + everywhere for fn, entries in functions.items()}


def function_env(stage: str, function: str) -> dict[str, str]:
    env: dict[str, str] = Config(
        chalice_stage=stage, function_name=function, config_from_disk=CONFIG
    ).environment_variables
    return env


def needed(function: str, env: dict[str, str]) -> set[str]:
    """The actions the function's code can call, given its environment."""
    prune = {qual for qual, var in GATES.items() if not env.get(var)}
    return set(graph().actions(handlers()[function], prune))


def policy_doc(stage: str, function: str) -> dict[str, Any]:
    name = Config(chalice_stage=stage, function_name=function, config_from_disk=CONFIG).iam_policy_file
    doc: dict[str, Any] = json.loads((ROOT / ".chalice" / name).read_text())
    return doc


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(doc: dict[str, Any]) -> set[str]:
    return {a for st in doc["Statement"] for a in as_list(st["Action"])}


def allowed(doc: dict[str, Any], action: str, arn: str) -> bool:
    return any(
        st["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in as_list(st["Action"]))
        and any(fnmatch.fnmatchcase(arn, r) for r in as_list(st["Resource"]))
        for st in doc["Statement"]
    )


def code_actions(function: str, env: dict[str, str]) -> set[str]:
    """What the role must grant for the code: the derived actions (index use folded in)."""
    return {a.removesuffix(INDEX) for a in needed(function, env)}


def test_every_chalice_function_has_a_policy_of_its_own():
    """A function Chalice deploys without an entry here would get the stage's default file
    (policy-<stage>.json), which does not exist: the deploy fails instead of sharing a role."""
    import app

    deployed = (
        {"api_handler"}
        | {f.name for f in app.app.pure_lambda_functions}
        | {e.name for e in app.app.event_sources}
    )
    assert set(handlers()) == deployed == set(iam.FUNCTION_GRANTS)
    for stage in STAGES:
        assert "iam_policy_file" not in CONFIG["stages"][stage] and "iam_policy_file" not in CONFIG
        assert not (ROOT / ".chalice" / f"policy-{stage}.json").exists()
        files = set()
        for function in deployed:
            config = Config(chalice_stage=stage, function_name=function, config_from_disk=CONFIG)
            assert config.autogen_policy is False
            assert config.iam_policy_file == iam.policy_file(stage, function)
            files.add(config.iam_policy_file)
        assert len(files) == len(deployed)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", sorted(iam.FUNCTION_GRANTS))
def test_each_function_policy_grants_exactly_what_its_handler_can_call(stage: str, function: str):
    env = function_env(stage, function)
    code = code_actions(function, env)
    platform = PLATFORM | (MAPPING if function == "fanout" else set())
    have = granted(policy_doc(stage, function))
    assert code - have == set(), f"{function} calls what its role ({stage}) does not grant"
    assert have - code - platform == set(), f"{function}'s role ({stage}) grants what its code never calls"
    assert platform <= have


def test_the_derivation_finds_each_functions_own_calls():
    """The walk reaches through the factory, the ports, the kinds' registry and the adapters:
    the calls each function is known to make are found (if it broke, every set would shrink)."""
    env = function_env("dev", "api_handler")
    assert {
        "states:StartExecution",
        "states:StopExecution",
        "kms:Encrypt",
        "dynamodb:Query" + INDEX,
    } <= needed("api_handler", env)
    assert {"states:SendTaskSuccess", "lambda:InvokeFunction", "ssm:GetParameter"} <= needed(
        "run_task", function_env("dev", "run_task")
    )
    assert needed("register_task", function_env("dev", "register_task")) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "states:SendTaskSuccess",
    }
    assert {"kms:Decrypt", "dynamodb:BatchGetItem"} <= needed("fanout", function_env("dev", "fanout"))
    # a transaction's items are actions of their own: the append lease's check above all, which a
    # role granting TransactWriteItems alone refused in AWS (every queued or drained event write)
    assert {
        "dynamodb:TransactWriteItems",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    } <= needed("finalize", function_env("dev", "finalize"))


def test_a_shared_policy_fails_every_function():
    """One policy for all seven roles (as before) grants each function something it never calls."""
    shared = set().union(*(granted(policy_doc("dev", fn)) for fn in iam.FUNCTION_GRANTS))
    for function in iam.FUNCTION_GRANTS:
        assert shared - code_actions(function, function_env("dev", function)) - PLATFORM - MAPPING, function
    # what the issue named: the public API invokes no task function
    api = granted(policy_doc("dev", "api_handler"))
    assert "lambda:InvokeFunction" not in api
    assert "states:StopExecution" not in set().union(
        *(granted(policy_doc("dev", fn)) for fn in iam.FUNCTION_GRANTS if fn != "api_handler")
    )


def test_every_aws_call_in_the_code_is_reached_by_some_function():
    """A call nothing reaches is a gap in the walk (or dead code): either way, not a grant to drop."""
    g = graph()
    reached = g.reach([e for entries in handlers().values() for e in entries])
    unreached = set(g.leaves()) - reached - SSE_ONLY
    assert unreached == set(), "AWS calls no Chalice function reaches: extend tests/support/callgraph.py"


def test_the_gates_are_the_codes_own_conditions():
    """GATES prunes code a function runs only when its environment names the resource."""
    from chalicelib import factory
    from chalicelib.config import Settings

    stream_key = inspect.getsource(Settings.stream_key)
    assert "if self.stream_secret or not self.stream_secret_name:" in stream_key
    assert "_read_secret(" in stream_key
    dispatcher = inspect.getsource(factory._dispatcher)
    assert "if not settings.webhook_kms_key:" in dispatcher and "SecretBox(" in dispatcher
    assert 'client("events") if settings.event_bus else None' in inspect.getsource(factory._fanout)
    # the six functions that neither sign nor check stream tokens are not given the secret
    for stage in STAGES:
        for function in iam.FUNCTION_GRANTS:
            given = bool(function_env(stage, function).get("DAGCAST_STREAM_SECRET_NAME"))
            assert given == (function == "api_handler"), function
            assert ("StreamSecret" in json.dumps(policy_doc(stage, function))) == given


@pytest.mark.parametrize("stage", STAGES)
def test_the_committed_policies_are_the_generated_ones(stage: str):
    """One source (dagcast/deploy/iam.py): `python -m dagcast.deploy.iam` rewrites them, `dagcast deploy` too."""
    for name, text in iam.render(CONFIG, stage).items():
        assert (ROOT / ".chalice" / name).read_text() == text, f"{name}: run python -m dagcast.deploy.iam"


def test_the_prod_policies_are_the_dev_policies_for_prod_names():
    for function in iam.FUNCTION_GRANTS:
        dev = (ROOT / ".chalice" / iam.policy_file("dev", function)).read_text()
        prod = (ROOT / ".chalice" / iam.policy_file("prod", function)).read_text()
        assert for_stage(dev, "prod") == prod, function


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_reaches_the_stacks_resources_and_no_other_stages(stage: str):
    stack = Stack(stage, "eu-west-1", "123456789012")
    other = Stack("prod" if stage == "dev" else "dev", "eu-west-1", "123456789012")
    table = stack.getatt("EventsTable", "Arn")
    machine = stack.ref("DagStateMachine")
    execution = machine.replace(":stateMachine:", ":execution:") + ":dag-exec_1"
    resources = {
        "dynamodb:PutItem": lambda s: s.getatt("EventsTable", "Arn"),
        "dynamodb:GetRecords": lambda s: s.getatt("EventsTable", "StreamArn"),
        "states:StartExecution": lambda s: s.ref("DagStateMachine"),
        "states:StopExecution": lambda s: (
            s.ref("DagStateMachine").replace(":stateMachine:", ":execution:") + ":dag-exec_1"
        ),
        "secretsmanager:GetSecretValue": lambda s: s.ref("StreamSecret"),
        "sqs:SendMessage": lambda s: s.getatt("FanoutFailures", "Arn"),
    }
    for function in iam.FUNCTION_GRANTS:
        doc = policy_doc(stage, function)
        for action in granted(doc) & set(resources):
            if function == "run_task" and action == "secretsmanager:GetSecretValue":
                continue  # run_task's are the LLM keys (secret:dagcast/*), not the stream secret
            assert allowed(doc, action, resources[action](stack)), f"{function}: {action} on {stage}'s"
            assert not allowed(doc, action, resources[action](other)), (
                f"{function}: {action} on another stage's"
            )
        reads_index = "dynamodb:Query" + INDEX in needed(function, function_env(stage, function))
        assert allowed(doc, "dynamodb:Query", table + "/index/ListIndex") == reads_index, function
        assert not allowed(doc, "dynamodb:PutItem", table + "/index/ListIndex")
        for st in doc["Statement"]:
            if as_list(st["Resource"]) == ["*"]:  # only where AWS has no resource-level permission
                assert st["Sid"] in {"ReleaseTasks", "XRay"}, st
    api = policy_doc(stage, "api_handler")
    assert allowed(api, "states:StopExecution", execution)
    assert not allowed(
        policy_doc(stage, "run_task"), "secretsmanager:GetSecretValue", stack.ref("StreamSecret")
    )


def test_the_webhook_key_is_the_stages_alias_and_only_for_webhook_secrets():
    for stage in STAGES:
        alias = CONFIG["stages"][stage]["environment_variables"]["DAGCAST_WEBHOOK_KMS_KEY"]
        for function in ("api_handler", "fanout", "webhook_retry"):
            [st] = [s for s in policy_doc(stage, function)["Statement"] if s["Sid"] == "WebhookKey"]
            assert st["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": [alias]}
            assert st["Condition"]["ForAllValues:StringEquals"] == {
                "kms:EncryptionContextKeys": ["dagcast:webhook"]
            }
    secrets = (ROOT / "chalicelib" / "webhooks" / "secrets.py").read_text()
    assert secrets.count('EncryptionContext={"dagcast:webhook": ') == 2  # seal and open


@pytest.mark.parametrize(
    ("variable", "value", "function", "action"),
    [
        ("DAGCAST_EVENT_BUS", "orders", "fanout", "events:PutEvents"),
        ("DAGCAST_WEBHOOK_KMS_KEY", "alias/x", "webhook_retry", "kms:Decrypt"),
    ],
)
def test_a_setting_that_turns_a_feature_on_grants_it_and_off_takes_it_away(variable, value, function, action):
    """The policy follows the stage's settings (dagcast deploy regenerates it) and so do the calls."""
    config = json.loads(json.dumps(CONFIG))
    for setting in ("", value):
        config["stages"]["dev"]["environment_variables"][variable] = setting
        doc = json.loads(iam.render(config, "dev")[iam.policy_file("dev", function)])
        env = iam.function_env(config, "dev", function)
        assert (action in granted(doc)) == bool(setting) == (action in code_actions(function, env))
    bus = "arn:aws:events:eu-west-1:123456789012:event-bus/"
    if variable == "DAGCAST_EVENT_BUS":
        assert allowed(doc, action, bus + "orders") and not allowed(doc, action, bus + "default")


def test_only_the_decision_route_and_the_orchestrator_send_task_tokens():
    """A task token ends a wait in the state machine. The API sends one from a single route, the
    approval's decision; every other route reaches no SendTaskSuccess. Of the other functions only
    the orchestrator's may: register, run, record_failure release tasks; finalize and
    reconcile_execution hand an ended execution's tenant slots to the tenant's waiting tasks."""
    senders = {fn for fn in iam.FUNCTION_GRANTS if "states:SendTaskSuccess" in granted(policy_doc("dev", fn))}
    orchestrator = {"register_task", "run_task", "record_failure", "finalize", "reconcile_execution"}
    assert senders == {"api_handler", *orchestrator}
    env = function_env("dev", "api_handler")
    prune = {qual for qual, var in GATES.items() if not env.get(var)}
    sending = {
        entry
        for entry in handlers()["api_handler"]
        if "states:SendTaskSuccess" in graph().actions([entry], prune)
    }
    assert sending == {"app:decide_task"}
