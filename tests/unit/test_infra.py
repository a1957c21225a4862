"""Offline checks of the cloud artefacts: template.yaml, the Chalice config and the ASL agree
with the code, and with each other for every stage."""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import inspect
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from chalicelib.config import ASL_SUBSTITUTIONS
from chalicelib.persistence.executions import COMPLETED_IDS, FAILED_IDS, RUNNING_IDS, SKIPPED_IDS
from chalicelib.persistence.keys import (
    LIST_INDEX,
    LIST_PK,
    LIST_SHARDS,
    STREAMS_PREFIX,
    client_streams_pk,
    execution_streams_pk,
    list_keys,
    list_shard,
    table_definition,
)
from dagcast.deploy.bundle import BUNDLE_DIR, RUNTIME
from dagcast.deploy.regions import web_adapter_layer
from dagcast.deploy.sse_profiles import MANAGED_INSTANCES, SseProfile
from dagcast.deploy.stage import (
    EVENTS_URL_OUTPUT,
    STAGE_OUTPUTS,
    api_log_group,
    log_retention,
    stage_config,
)
from tests.support.cloudformation import ROOT, Stack, template

# a stage of each SSE profile, as `dagcast deploy` passes them
SSE_PROFILES = (
    SseProfile(),
    SseProfile(MANAGED_INSTANCES, subnets="subnet-0a,subnet-0b", security_groups="sg-0a"),
)


def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config


STAGES = sorted(chalice_config()["stages"])


def stage_env(stage: str) -> dict[str, str]:
    """What every Chalice Lambda of the stage gets: the top level's variables, then the stage's."""
    config = chalice_config()
    return {**config["environment_variables"], **config["stages"][stage]["environment_variables"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_sam_translates_the_template_to_cloudformation(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    tpl = template()
    # `sam package` replaces local paths with S3 URIs before the transform runs
    tpl["Resources"]["DagStateMachine"]["Properties"]["DefinitionUri"] = "s3://bucket/dag.asl.json"
    for name in ("SseFunction", "SseManagedFunction"):  # one per SSE profile (test_sse_profiles.py)
        tpl["Resources"][name]["Properties"]["CodeUri"] = "s3://bucket/sse.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out = transform(tpl, {"Stage": "dev"}, NoManagedPolicies())
    types = {name: r["Type"] for name, r in out["Resources"].items()}
    assert types["DagStateMachine"] == "AWS::StepFunctions::StateMachine"
    assert types["SseFunctionUrl"] == "AWS::Lambda::Url"
    assert out["Resources"]["SseFunctionUrl"]["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    sse = out["Resources"]["SseFunction"]["Properties"]  # SAM keeps the layer and the log group
    assert sse["Layers"] == template()["Resources"]["SseFunction"]["Properties"]["Layers"]
    assert sse["LoggingConfig"] == {"LogGroup": {"Ref": "SseLogGroup"}}


@pytest.mark.parametrize(
    ("region", "given", "layer"),
    [
        ("eu-west-1", "", "arn:aws:lambda:eu-west-1:753240598075:layer:LambdaAdapterLayerX86:25"),
        ("cn-north-1", "", "arn:aws-cn:lambda:cn-north-1:041581134020:layer:LambdaAdapterLayerX86:25"),
        ("us-gov-west-1", "arn:aws-us-gov:lambda:us-gov-west-1:1:layer:Mine:1", None),
    ],
)
@pytest.mark.parametrize("profile", SSE_PROFILES)
def test_the_web_adapter_layer_is_the_stacks_regions(region, given, layer, profile):
    """Not us-east-1's wherever the stack is (a layer of another region cannot be attached): the
    template alone picks the commercial one of its region and partition, deploy passes the one AWS
    publishes there (China's publishers differ), and a given ARN wins."""
    name = "SseFunction" if profile.profile == "on-demand" else "SseManagedFunction"
    stack = Stack("dev", region=region, **profile.parameters())
    [alone] = stack(stack.props(name)["Layers"])
    assert (
        alone
        == f"arn:{stack.pseudo['AWS::Partition']}:lambda:{region}:753240598075:layer:LambdaAdapterLayerX86:25"
    )
    passed = given or web_adapter_layer(region)
    assert layer is None or passed == layer
    stack = Stack("dev", region=region, LambdaWebAdapterLayerArn=passed, **profile.parameters())
    assert stack(stack.props(name)["Layers"]) == [passed]


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
    """The function URL streams only through the Lambda Web Adapter: the layer, run.sh as the
    handler, the exec wrapper that starts the adapter, response_stream on both sides, 900 s."""
    stack = Stack("dev")
    fn = stack.props("SseFunction")
    assert fn["Handler"] == "run.sh" and fn["Runtime"] == RUNTIME
    env = fn["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert fn["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert fn["Timeout"] == 900
    # streams end before the function does; on-demand ones much sooner (no disconnect signal)
    assert float(stack.ref("OnDemandMaxStreamSeconds")) < float(stack.ref("MaxStreamSeconds")) < fn["Timeout"]
    assert env["DAGCAST_AUTH"] == "on" and env["DAGCAST_STREAM_SECRET_NAME"] == {"Ref": "StreamSecret"}
    assert env["DAGCAST_SSE_PROFILE"] == "on-demand"
    assert env["DAGCAST_MAX_STREAM_SECONDS"] == {"Ref": "OnDemandMaxStreamSeconds"}
    # run.sh starts the app the SSE code defines, on the port the adapter proxies to
    run_sh = (ROOT / "infra" / "sse" / "run.sh").read_text()
    assert f"{SSE_ENTRY}:app_factory" in run_sh and '"${PORT:-8080}"' in run_sh
    sse_app = importlib.import_module(SSE_ENTRY)

    assert callable(sse_app.app_factory) and env["PORT"] == "8080"
    # the bundle dagcast/deploy/bundle.py builds (run.sh included: tests/unit/test_bundle.py)
    assert fn["CodeUri"] == BUNDLE_DIR.as_posix()
    mapping = stack.props("FanoutMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_stack_makes_what_each_chalice_stage_names(stage: str):
    """The names template.yaml gives each stage's resources are the ones the Chalice stage's
    settings use (what `dagcast deploy` checks against the outputs after `sam deploy`)."""
    stack = Stack(stage)
    env = stage_env(stage)
    for output, var in STAGE_OUTPUTS.items():
        assert stack.output(output) == env[var], f"template.yaml's output {output} for {stage} is not {var}"
    # the outputs are the resources' own names
    assert env["DAGCAST_TABLE"] == stack.ref("EventsTable") == f"dagcast-{stage}"
    assert env["DAGCAST_STATE_MACHINE_ARN"] == stack.ref("DagStateMachine")
    secret = stack.ref("StreamSecret")
    assert secret.startswith(
        f"arn:aws:secretsmanager:REGION:ACCOUNT:secret:{env['DAGCAST_STREAM_SECRET_NAME']}-"
    )
    assert env["DAGCAST_WEBHOOK_KMS_KEY"] == stack.ref("WebhookKeyAlias")
    assert stack(stack.props("WebhookKeyAlias")["TargetKeyId"]) == stack.ref("WebhookKey")
    # the state machine ARN dagcast deploy writes for an account and region is the stack's
    written = stage_config(chalice_config(), stage, "eu-west-1", "123456789012")
    real = Stack(stage, "eu-west-1", "123456789012")
    assert written["stages"][stage]["environment_variables"]["DAGCAST_STATE_MACHINE_ARN"] == real.ref(
        "DagStateMachine"
    )
    # the SSE function reads the table and the secret the API writes and signs with
    sse = {k: stack.text(v) for k, v in stack.props("SseFunction")["Environment"]["Variables"].items()}
    assert sse["DAGCAST_TABLE"] == env["DAGCAST_TABLE"]
    assert sse["DAGCAST_STREAM_SECRET_NAME"] == secret  # Secrets Manager takes the ARN as the name
    assert sse["DAGCAST_AUTH"] == env["DAGCAST_AUTH"]
    # the stream → fan-out mapping feeds the stage's fan-out
    assert stack.text(stack.props("FanoutMapping")["FunctionName"]).endswith(
        f":function:dagcast-{stage}-fanout"
    )


def test_every_output_deploy_reads_is_in_the_template():
    outputs = template()["Outputs"]
    for key in (*STAGE_OUTPUTS, EVENTS_URL_OUTPUT):
        assert key in outputs, f"dagcast/deploy/ reads the output {key}: template.yaml has none"
    url = Stack("dev").output(EVENTS_URL_OUTPUT)
    assert url.startswith("https://") and ".lambda-url." in url  # the SSE function's URL


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_dagcast_deploys_keeps_its_logs_for_the_stages_retention(stage: str):
    """Chalice's functions through Chalice; not the API handler, whose group Chalice 1.34 names
    after `api_handler` instead of the function (dagcast deploy sets it: test_deploy.py); the SSE
    function through its own log group in template.yaml."""
    from chalice.config import Config

    import app

    config = chalice_config()
    days = log_retention(config, stage)
    assert days
    chalice_functions = [f.name for f in app.app.pure_lambda_functions] + [
        e.name for e in app.app.event_sources
    ]
    assert "fanout" in chalice_functions and "webhook_retry" in chalice_functions
    for name in chalice_functions:
        scoped = Config(chalice_stage=stage, function_name=name, config_from_disk=config)
        assert scoped.log_retention_in_days == days, name
    api = Config(chalice_stage=stage, function_name="api_handler", config_from_disk=config)
    assert not api.log_retention_in_days  # off in Chalice, see above
    assert api_log_group(stage) == f"/aws/lambda/{config['app_name']}-{stage}"
    stack = Stack(stage, LogRetentionInDays=str(days))  # as dagcast deploy passes it
    assert str(days) in [str(v) for v in stack.tpl["Parameters"]["LogRetentionInDays"]["AllowedValues"]]
    functions = [
        n
        for n, r in stack.tpl["Resources"].items()
        if r["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    ]
    assert functions == ["SseFunction", "SseManagedFunction"]  # one per SSE profile, one at a time
    for name, profile in zip(functions, SSE_PROFILES, strict=True):
        stack = Stack(stage, tpl=template(), LogRetentionInDays=str(days), **profile.parameters())
        group = stack.props(name)["LoggingConfig"]["LogGroup"]
        kind, props = stack.resource(group["Ref"])
        assert kind == "AWS::Logs::LogGroup"
        # one group for both profiles, named for the on-demand function: a switch keeps the logs
        assert stack.text(props["LogGroupName"]) == f"/aws/lambda/dagcast-{stage}-sse"
        assert stack.text(props["RetentionInDays"]) == str(days)


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
    from dagcast.local.moto.poller import is_event_insert

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
    from chalicelib.webhooks.store import WebhookStore

    ttl = template()["Resources"]["EventsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}
    assert "expiresAt" in inspect.getsource(WebhookStore.enqueue)


# ---------------------------------------------------------------- offline deployment validation

# The SSE function's entry point (what infra/sse/run.sh starts) and its own code: every module of
# the stream package, besides what it takes from other modules.
SSE_ENTRY = "chalicelib.stream.app"
SSE_MODULES = tuple(
    "chalicelib.stream" + ("" if p.stem == "__init__" else f".{p.stem}")
    for p in sorted((ROOT / "chalicelib" / "stream").glob("*.py"))
)
# Modules the SSE code imports from that sse_actions derives (the store, the settings) or checks by
# itself (the factory: only build_services().store is taken from it).
SSE_DERIVED = (
    "chalicelib.persistence.executions",
    "chalicelib.config",
    "chalicelib.factory",
    "chalicelib.persistence.streamleases",  # the stream slots: slot_actions
    "chalicelib.persistence.activity",  # the activity log (the many-run stream): store_methods
)


def module_file(dotted: str) -> Path | None:
    """The file of a project module or package (``chalicelib.domain`` → its __init__.py)."""
    base = ROOT / dotted.replace(".", "/")
    return next((f for f in (base.with_suffix(".py"), base / "__init__.py") if f.exists()), None)


def imported_module(path: Path, node: ast.ImportFrom) -> str:
    """The dotted module a ``from … import`` in ``path`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join((*base, node.module) if node.module else base)


# Names that mark a call to AWS: boto3, the clients the factory hands out, powertools' parameter
# reads; and any `.client(...)` call.
AWS_MARKERS = {"boto3", "_db", "_sfn", "_kms", "eventbridge", "get_secret", "get_parameter"}


def _names(node: ast.AST) -> set[str]:
    return {
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    }


def aws_uses(node: ast.AST) -> set[str]:
    clients = {
        "client()"
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "client"
    }
    return (_names(node) & AWS_MARKERS) | clients


# DynamoStore's classes by module of chalicelib/persistence: the store, its base, its event log.
STORE_CLASSES = {
    "executions": "DynamoStore",
    "table": "Table",
    "eventlog": "EventLog",
    "activity": "ActivityLog",
}


def store_methods() -> dict[str, tuple[set[str], set[str]]]:
    """DynamoStore's methods, its base Table's and its EventLog's: what each calls on self (on
    self.event_log, the EventLog the store passes the log's calls to; through self._read_meta, the
    store's get_meta), and the DynamoDB operations (botocore names) it calls on self._db. Methods
    are keyed by name: a name both DynamoStore and EventLog define is a pass-through."""
    classes: dict[str, ast.ClassDef] = {}
    for module, name in STORE_CLASSES.items():
        tree = ast.parse((ROOT / "chalicelib" / "persistence" / f"{module}.py").read_text())
        [classes[name]] = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == name]
    assert "read_meta=self.get_meta" in ast.unparse(classes["DynamoStore"]), "the EventLog's read_meta"
    methods: dict[str, tuple[set[str], set[str]]] = {}
    for cls in classes.values():
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            calls, ops = methods.setdefault(fn.name, (set(), set()))
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner = ast.unparse(node.func.value)
                    if owner in ("self", "self.event_log"):
                        calls.add(node.func.attr)
                    elif owner == "self._db":
                        ops.add(node.func.attr)
                elif isinstance(node, ast.Call) and ast.unparse(node.func) == "self._read_meta":
                    calls.add("get_meta")
    log_methods = {d.name for d in classes["EventLog"].body if isinstance(d, ast.FunctionDef)} - {"__init__"}
    for fn in classes["DynamoStore"].body:
        if isinstance(fn, ast.FunctionDef) and fn.name in log_methods:
            assert ast.unparse(fn).count("self.event_log.") == 1, f"{fn.name} is not a pass-through"
    return methods


def _imported(module: str, name: str) -> ast.AST:
    """What ``from .<module> import <name>`` in chalicelib/ brings in: the definition of ``name``,
    or a whole module (``name`` a submodule of a package, or defined by an assignment)."""
    path = ROOT / "chalicelib" / module.replace(".", "/")
    if (path / f"{name}.py").exists():
        return ast.parse((path / f"{name}.py").read_text())
    source = ast.parse(
        (path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py").read_text()
    )
    defs: list[ast.AST] = [d for d in source.body if getattr(d, "name", None) == name]
    return defs[0] if defs else source


def slot_operations(methods: dict[str, tuple[set[str], set[str]]]) -> set[str]:
    """The DynamoDB operations (botocore names) of StreamSlots (the stream leases of
    chalicelib/stream/limits.py): its own calls on self._db and those of the Table helpers it calls."""
    tree = ast.parse((ROOT / "chalicelib" / "persistence" / "streamleases.py").read_text())
    [cls] = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "StreamSlots"]
    ops: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, attr = ast.unparse(node.func.value), node.func.attr
            if owner == "self._db":
                ops.add(attr)
            elif owner == "self" and attr in methods:
                ops |= methods[attr][1]
    assert {"put_item", "update_item", "delete_item", "query"} <= ops  # the walk works
    return ops


def sse_actions() -> set[str]:
    """The IAM actions code reachable from the SSE entry point (SSE_ENTRY) needs: the
    DynamoStore methods the SSE modules call, with the methods those call, to their DynamoDB
    operations; and the stream secret, which Settings.from_env reads when the function is given
    DAGCAST_STREAM_SECRET_NAME. What the derivation relies on is asserted first."""
    from botocore import xform_name
    from botocore.session import get_session

    files = {m: module_file(m) for m in SSE_MODULES}
    trees = {m: ast.parse(f.read_text()) for m, f in files.items() if f is not None}
    assert SSE_ENTRY in trees and "chalicelib.stream.endpoint" in trees  # the walk works
    entry = ast.unparse(trees[SSE_ENTRY])
    # the entry point builds only the store (build_store: one DynamoDB client), not the services
    assert "build_store(" in entry and "build_services" not in entry, (
        "the SSE function builds more than the store: extend sse_actions"
    )
    factory = ast.parse((ROOT / "chalicelib" / "factory.py").read_text())
    [build_store] = [d for d in factory.body if getattr(d, "name", None) == "build_store"]
    clients = [
        n
        for n in ast.walk(build_store)
        if isinstance(n, ast.Call) and ast.unparse(n.func).endswith(".client")
    ]
    assert [ast.unparse(c.args[0]) for c in clients] == ["'dynamodb'"]
    assert not any(
        "build_services" in ast.unparse(t) or "build_store" in ast.unparse(t)
        for m, t in trees.items()
        if m != SSE_ENTRY
    ), "another SSE module builds services: extend sse_actions"
    # the SSE modules call AWS only through the store, and so does what they import from elsewhere
    checked = 0
    for module, tree in trees.items():
        assert not aws_uses(tree), f"{module} calls AWS itself: extend sse_actions"
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source_module = imported_module(files[module], node)  # type: ignore[arg-type]
            if source_module in (*SSE_MODULES, *SSE_DERIVED) or not source_module.startswith("chalicelib"):
                continue  # the SSE modules (checked themselves), derived below, or not the project's
            for alias in node.names:
                whole = module_file(f"{source_module}.{alias.name}")  # a module imported from a package
                source_file = whole or module_file(source_module)
                assert source_file is not None, f"{module} imports {source_module}, which is not found"
                source = ast.parse(source_file.read_text())
                defs: list[ast.AST] = [d for d in source.body if getattr(d, "name", None) == alias.name]
                defn = source if whole else defs[0] if defs else source  # a module imported whole: all of it
                assert not aws_uses(defn), (
                    f"{module} uses {source_module}.{alias.name}, which calls AWS: extend sse_actions"
                )
                checked += 1
    assert checked >= 3  # the walk follows the imports (the events, the errors, the snapshot view)
    methods = store_methods()
    todo = sorted(set().union(*(_names(tree) for tree in trees.values())) & set(methods))
    assert {"events_after", "get_meta"} <= set(todo)  # the walk works
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += sorted(methods[name][0] & set(methods))
    ops = set().union(*(methods[name][1] for name in reached), slot_operations(methods))
    model = get_session().get_service_model("dynamodb")  # read from disk: no client, no call
    operations = {xform_name(op): op for op in model.operation_names}
    needed = {f"dynamodb:{operations[op]}" for op in ops}
    env = template()["Resources"]["SseFunction"]["Properties"]["Environment"]["Variables"]
    config = ast.parse((ROOT / "chalicelib" / "config.py").read_text())
    [read_secret] = [d for d in config.body if getattr(d, "name", None) == "_read_secret"]
    if "DAGCAST_STREAM_SECRET_NAME" in env and "get_secret" in _names(read_secret):
        needed.add("secretsmanager:GetSecretValue")
    return needed


def test_the_sse_function_role_grants_exactly_what_its_code_calls():
    needed = sse_actions()
    assert {"dynamodb:Query", "dynamodb:GetItem", "secretsmanager:GetSecretValue"} <= needed  # the scan works
    stack = Stack("dev")
    statements = [st for policy in stack.props("SseFunction")["Policies"] for st in policy["Statement"]]
    granted = {a for st in statements for a in as_list(st["Action"])}
    assert needed - granted == set(), "the SSE function's policy (template.yaml) misses what its code calls"
    assert granted - needed == set(), "the SSE function's policy grants what its code never calls"
    table = stack.getatt("EventsTable", "Arn")
    resources = {stack.text(r) for st in statements for r in as_list(st["Resource"])}
    assert {table, table + "/index/*", stack.ref("StreamSecret")} == resources


def test_the_sse_function_counts_streams_in_the_table_and_writes_only_their_slots():
    """Each stream is its own environment: the caps hold only when counted in the table (the
    leases on), and the function's writes are held to the slots' partitions."""
    stack = Stack("dev")
    fn = stack.props("SseFunction")
    assert fn["Environment"]["Variables"]["DAGCAST_STREAM_LEASES"] == "on"
    writes = [
        st
        for policy in fn["Policies"]
        for st in policy["Statement"]
        if set(as_list(st["Action"])) & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ]
    assert len(writes) == 1
    assert writes[0]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [STREAMS_PREFIX + "*"]}
    }
    assert execution_streams_pk("e").startswith(STREAMS_PREFIX)
    assert client_streams_pk("1.2.3.4").startswith(STREAMS_PREFIX)
    # the managed-instances profile runs several environments too: the same leases, the same grant
    managed = template()["Resources"]["SseManagedFunction"]["Properties"]
    assert managed["Environment"]["Variables"]["DAGCAST_STREAM_LEASES"] == "on"
    assert [st for policy in managed["Policies"] for st in policy["Statement"]] == [
        st for policy in fn["Policies"] for st in policy["Statement"]
    ]


# ------------------------------------------------------------- the environment the code reads


@dataclass(frozen=True)
class EnvRead:
    name: str | None  # None: the name is computed (a job's own variable, say)
    required: bool  # os.environ[...] or a Settings field without a default
    where: str


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ) or (isinstance(node, ast.Name) and node.id == "environ")


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the name of the function (or module) it is in."""

    def walk(node: ast.AST, where: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else where
            yield inner, child
            yield from walk(child, inner)

    yield from walk(tree, "<module>")


@functools.cache  # each module is read for every function that runs it, in every stage
def env_reads(path: Path) -> tuple[EnvRead, ...]:
    """The environment variables a module reads: os.environ[...] (required), os.environ.get,
    os.getenv and `in os.environ` (optional: a default, or None, which the code handles), and for
    chalicelib/config.py the _ENV table Settings.from_env reads (required where the Settings
    field has no default). Comments and docstrings are not code: they do not count."""
    from chalicelib.config import Settings

    tree = ast.parse(path.read_text())
    reads: list[EnvRead] = []
    rel = path.relative_to(ROOT).as_posix()
    for where, node in _functions(tree):
        here = f"{rel}:{where}"
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            reads.append(EnvRead(_literal(node.slice), True, here))
        elif isinstance(node, ast.Call):
            f = node.func
            getter = isinstance(f, ast.Attribute) and (
                (f.attr == "get" and _is_environ(f.value))
                or (f.attr == "getenv" and isinstance(f.value, ast.Name) and f.value.id == "os")
            )
            if getter or (isinstance(f, ast.Name) and f.id == "getenv"):
                reads.append(EnvRead(_literal(node.args[0]) if node.args else None, False, here))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            reads.append(EnvRead(_literal(node.left), False, here))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(x) for x in node.targets] == ["_ENV"]:
            assert isinstance(node.value, ast.Dict)
            from_env = inspect.getsource(Settings.from_env)
            assert "_ENV.items()" in from_env, "Settings.from_env no longer reads the _ENV table"
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                field, var = _literal(key), _literal(value)
                assert field in Settings.model_fields, f"_ENV names {field}, which Settings has not"
                required = Settings.model_fields[field].is_required()
                reads.append(EnvRead(var, required, f"{rel}:Settings.{field}"))
    return tuple(reads)


def module_closure(entry: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """``entry`` and every project module it imports (at any depth, in functions too)."""
    seen: dict[Path, None] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = imported_module(path, node)
                names = [module] + [f"{module}.{a.name}" for a in node.names]  # a name may be a module
            # importing a module runs its packages' __init__ first
            names += [".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)]
            for name in names:
                target = module_file(name) if name else None
                if target is not None and name not in skip:
                    todo.append(target)
    return sorted(seen)


CHALICE_CODE = module_closure(ROOT / "app.py")
SSE_CODE = module_closure(module_file(SSE_ENTRY))  # type: ignore[arg-type]
# Set for the function, read by what runs it rather than by dagcast's code.
READ_BY_THE_PLATFORM = {
    "POWERTOOLS_SERVICE_NAME": "aws-lambda-powertools: the service name of its logs, metrics, traces",
    "AWS_LAMBDA_EXEC_WRAPPER": "the Lambda runtime: /opt/bootstrap starts the Web Adapter",
    "AWS_LWA_INVOKE_MODE": "the Lambda Web Adapter: response streaming",
    "AWS_LWA_ERROR_STATUS_CODES": "the Lambda Web Adapter: answers that fail the invocation",
}
# Reads of a variable whose name comes from elsewhere (a job names its LLM key's variable).
COMPUTED_READS = {"chalicelib/references.py:resolve_key"}


def run_sh_reads() -> set[str]:
    text = (ROOT / "infra" / "sse" / "run.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code))


def function_environments() -> dict[str, tuple[list[Path], dict[str, Any]]]:
    """Each function dagcast deploys: the code it runs and the environment it is given."""
    sse_env = template()["Resources"]["SseFunction"]["Properties"]["Environment"]["Variables"]
    from chalice.config import Config

    functions = {
        f"chalice stage {s}, {fn}": (
            CHALICE_CODE,
            Config(
                chalice_stage=s, function_name=fn, config_from_disk=chalice_config()
            ).environment_variables,
        )
        for s in STAGES
        for fn in chalice_config()["stages"][s]["lambda_functions"]
    }
    functions["SseFunction"] = (SSE_CODE, sse_env)
    return functions


def test_the_code_read_is_found_and_the_functions_ship_it():
    assert (
        ROOT / "chalicelib" / "config.py" in CHALICE_CODE
        and module_file("chalicelib.stream.endpoint") in SSE_CODE
    )
    reads = [r for path in CHALICE_CODE for r in env_reads(path)]
    names = {r.name for r in reads}
    assert {"DAGCAST_TABLE", "DAGCAST_PYTHON_MODULES", "DAGCAST_LLM_KEYS"} <= names  # the walk works
    assert [r.name for r in reads if r.required] == ["DAGCAST_TABLE"]
    assert {r.where for r in reads if r.name is None} <= COMPUTED_READS, (
        "a new read of a computed variable name: check it cannot be a required setting, then list it"
    )
    from aws_lambda_powertools.shared import constants

    assert constants.SERVICE_NAME_ENV == "POWERTOOLS_SERVICE_NAME"


def test_every_variable_the_code_requires_is_set_for_the_function_that_reads_it():
    for function, (code, env) in function_environments().items():
        for read in (r for path in code for r in env_reads(path)):
            if read.required:
                assert read.name in env, f"{function} reads {read.name} ({read.where}) but is not given it"


def test_every_environment_variable_set_is_one_the_function_reads(monkeypatch):
    for function, (code, env) in function_environments().items():
        read = {r.name for path in code for r in env_reads(path)}
        if function == "SseFunction":
            read |= run_sh_reads()
        for name in env:
            assert name in read or name in READ_BY_THE_PLATFORM, (
                f"{function} is given {name}; nothing reads it"
            )


def test_every_stage_and_the_sse_function_have_valid_settings(monkeypatch):
    from chalicelib.config import Settings

    monkeypatch.setattr("chalicelib.config._read_secret", lambda name: "x" * 48)  # Secrets Manager
    for stage in STAGES:
        env = stage_env(stage)
        settings = Settings.from_env(env)  # every required setting is there and valid
        assert settings.table_name == f"dagcast-{stage}" and settings.auth and settings.webhook_kms_key
        assert settings.state_machine_arn.endswith(f":stateMachine:dagcast-{stage}-dag")
        assert env["DAGCAST_STREAM_SECRET_NAME"] == f"dagcast-internal/{stage}/stream-secret"
    stack = Stack("dev")
    sse_env = stack.props("SseFunction")["Environment"]["Variables"]
    sse = Settings.from_env({k: stack.text(v) for k, v in sse_env.items()})
    assert sse.table_name == "dagcast-dev" and sse.auth and sse.heartbeat_seconds == 15
    assert sse.trust_proxy  # behind the function URL: the per-IP limit needs the caller's address


# ------------------------------------------------------------------------------ the state machine


def asl() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((ROOT / "infra" / "statemachine" / "dag.asl.json").read_text())
    return definition


def placeholders(node: Any) -> set[str]:
    """Every ${Name} in the definition: in any string, key or value, at any depth (SAM substitutes
    them as text, wherever they are)."""
    if isinstance(node, dict):
        return set().union(*(placeholders(k) | placeholders(v) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(*(placeholders(v) for v in node))
    return set(re.findall(r"\$\{([^}]*)\}", node)) if isinstance(node, str) else set()


def unknown_placeholders(definition: dict[str, Any]) -> set[str]:
    return placeholders(definition) - set(ASL_SUBSTITUTIONS)


def all_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in machine["States"].items():
        yield name, state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                yield from all_states(inner)


def test_the_state_machine_is_well_formed():
    definition = asl()

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
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += targets[name]
        assert seen == set(states), f"{where}unreachable states: {set(states) - seen}"

    check(definition, "")
    assert unknown_placeholders(definition) == set(), "placeholders SAM does not substitute"
    assert placeholders(definition) == set(ASL_SUBSTITUTIONS)


@pytest.mark.parametrize(
    "inject",
    [
        lambda d: d["States"]["Init"].update(Comment="see ${Foo}"),
        lambda d: d["States"]["Tasks"]["ItemProcessor"]["States"]["Run"]["ResultSelector"].update(
            {"x.$": "States.Format('${Foo}')"}
        ),
        lambda d: d["States"]["Tasks"]["ItemSelector"].update({"${Foo}": 1}),
        lambda d: d["States"]["Tasks"]["ItemProcessor"]["States"]["Run"]["Retry"][0]["ErrorEquals"].append(
            "${Foo}"
        ),
    ],
    ids=["comment", "nested-result-selector", "key", "list-in-a-retry"],
)
def test_an_unknown_placeholder_anywhere_in_the_asl_is_found(inject):
    definition = asl()
    inject(definition)
    assert unknown_placeholders(definition) == {"Foo"}


def asl_invoked_functions(definition: dict[str, Any]) -> set[str]:
    """The substitution names of the Lambdas the ASL's Task states invoke."""
    invoked: set[str] = set()
    for name, state in all_states(definition):
        if state["Type"] != "Task":
            continue
        resource = str(state["Resource"])
        if resource.startswith("arn:aws:states:::lambda:invoke"):
            target = str(state["Parameters"]["FunctionName"])
        else:
            assert re.fullmatch(r"\$\{\w+\}", resource), f"{name}: a task resource the role check knows not"
            target = resource
        match = re.fullmatch(r"\$\{(\w+)\}", target)
        assert match, f"{name} invokes {target}, not a substitution"
        invoked.add(match.group(1))
    return invoked


def test_the_state_machine_role_may_invoke_every_function_the_asl_invokes():
    stack = Stack("dev", "eu-west-1", "123456789012")
    props = stack.props("DagStateMachine")
    invoked = {stack.text(props["DefinitionSubstitutions"][name]) for name in asl_invoked_functions(asl())}
    assert len(invoked) == len(ASL_SUBSTITUTIONS)  # all four: register, run, record failure, finalize
    grants = [
        stack.text(r)
        for st in props["Policies"][0]["Statement"]
        if "lambda:InvokeFunction" in as_list(st["Action"])
        for r in as_list(st["Resource"])
    ]
    for arn in invoked:
        assert any(fnmatch.fnmatchcase(arn, g) for g in grants), f"the state machine may not invoke {arn}"


def test_the_sse_function_ships_everything_the_chalice_functions_ship():
    lines = [
        line.strip()
        for line in (ROOT / "infra" / "sse" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "-r ../../requirements.txt" in lines  # chalicelib is shared: so are its dependencies
    assert {line.split("==")[0] for line in lines} >= {"starlette", "uvicorn"}


def test_the_list_index_is_sharded_and_projects_nothing_a_task_changes():
    """GSI1 put every execution under one partition key (``EXECUTIONS``: 1,000 WCU/s for the
    account) and projected ALL, so each per-task update of META's counter sets was written twice
    at META's full size. The list index spreads executions over LIST_SHARDS partitions and holds
    only what the per-task updates never touch."""
    (index,) = [i for i in table_definition("x")["GlobalSecondaryIndexes"] if i["IndexName"] == LIST_INDEX]
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    projected = set(index["Projection"]["NonKeyAttributes"])
    per_task = {COMPLETED_IDS, FAILED_IDS, SKIPPED_IDS, RUNNING_IDS, "holding", "queued", "firstError"}
    assert not projected & per_task
    assert not projected & {"originalRequest", "finalResultJson", "finalResultPreview"}
    assert LIST_SHARDS >= 8
    ids = [f"dag-exec_{n:032x}" for n in range(400)]
    partitions = {list_keys(1, i)[LIST_PK] for i in ids}
    assert len(partitions) == LIST_SHARDS  # every shard used
    assert list_keys(1, "dag-exec_a")[LIST_PK] == list_keys(9, "dag-exec_a")[LIST_PK]  # stable: crc32
    assert list_shard("dag-exec_a") == zlib.crc32(b"dag-exec_a") % LIST_SHARDS
