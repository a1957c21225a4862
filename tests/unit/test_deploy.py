"""`dagcast deploy` / `destroy` offline: the order of the commands, the parameters template.yaml
needs, the outputs checked against and wired into the Chalice stage, a table left by `destroy`
(FakeAws stands in for chalice, sam and aws, with an account that remembers what they made)."""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from chalicelib.config import ASL_FUNCTIONS
from dagcast.deploy import iam
from dagcast.deploy.commands import CommandFailed, DeployError
from dagcast.deploy.concurrency import BUDGET
from dagcast.deploy.deployer import Deployer
from dagcast.deploy.stage import FUNCTION_PARAMETERS, function_arns
from tests.support.cloudformation import Stack, template

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", tmp_path / ".chalice" / "config.json")
    for policy in (ROOT / ".chalice").glob("policy-dev-*.json"):
        shutil.copy(policy, tmp_path / ".chalice" / policy.name)
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    # what the SSE bundle is made of (dagcast/deploy/bundle.py)
    shutil.copytree(
        ROOT / "chalicelib", tmp_path / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "infra" / "sse").mkdir(parents=True)
    shutil.copy(ROOT / "infra" / "sse" / "run.sh", tmp_path / "infra" / "sse" / "run.sh")
    return tmp_path


def found(tool: str) -> str:
    return tool  # every tool is "installed"; FakeAws answers for them


@dataclass
class Account:
    """What exists in the fake AWS account, across commands and Deployer runs."""

    tables: set[str] = field(default_factory=set)
    stacks: dict[str, dict[str, str]] = field(default_factory=dict)  # stack → its parameters
    log_groups: dict[str, int | None] = field(default_factory=dict)  # group → retention
    rolled_back: set[str] = field(default_factory=set)  # stacks whose first deploy rolled back
    keys: set[str] = field(default_factory=set)  # KMS key ARNs not scheduled for deletion
    # (REST API id, API Gateway stage) → its method settings: patch path → value
    api_stages: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # function ARN → its published versions; ARNs whose $LATEST changed since the last one
    versions: dict[str, int] = field(default_factory=dict)
    updated: set[str] = field(default_factory=set)
    # Lambda: the region's concurrency limit, and what each function reserves (other accounts' too)
    concurrency_limit: int = 1000
    reserved: dict[str, int] = field(default_factory=dict)
    python: str = "3.13"  # the version of the Python behind `chalice`


def failed(argv: Sequence[str], stderr: str) -> CommandFailed:
    return CommandFailed(f"{argv[0]} {argv[1]} failed with exit code 254", stderr)


class FakeAws:
    """chalice, sam and aws as far as dagcast uses them: chalice deploy writes
    .chalice/deployed/<stage>.json like the real one; sam deploy makes the stack (and its table,
    which sam delete keeps: Retain); describe-stacks answers the outputs of the project's
    template.yaml resolved for the stage and the parameters sam was given (Stack, test_infra)."""

    def __init__(
        self,
        root: Path,
        stage: str,
        account: Account | None = None,
        outputs: dict[str, str | None] | None = None,
        region: str = REGION,
    ) -> None:
        self.root, self.stage, self.region = root, stage, region
        self.account = account or Account()
        self.changed_outputs = outputs or {}
        self.calls: list[list[str]] = []
        self.regions: dict[str, str | None] = {}  # tool → AWS_DEFAULT_REGION in the env it was given

    def outputs(self) -> dict[str, str]:
        params = self.account.stacks[f"dagcast-{self.stage}"]
        tpl = template(self.root / "template.yaml")
        stack = Stack(self.stage, self.region, ACCOUNT, tpl=tpl, **params)
        values: dict[str, str | None] = {key: stack.output(key) for key in tpl["Outputs"]}
        values.update(self.changed_outputs)
        return {k: v for k, v in values.items() if v is not None}

    def __call__(
        self, argv: Sequence[str], *, quiet: bool = False, env: Mapping[str, str] | None = None
    ) -> str:
        argv = list(argv)
        self.calls.append(argv)
        self.regions[argv[0]] = (env or {}).get("AWS_DEFAULT_REGION")
        arg = {k: v for k, v in itertools.pairwise(argv) if k.startswith("--")}
        stack, table = f"dagcast-{self.stage}", f"dagcast-{self.stage}"
        if argv[:2] == ["chalice", "deploy"]:
            deployed = self.root / ".chalice" / "deployed"
            deployed.mkdir(exist_ok=True)
            resources = [
                {
                    "name": fn,
                    "resource_type": "lambda_function",
                    "lambda_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dagcast-{self.stage}-{fn}",
                }
                for fn in [*FUNCTION_PARAMETERS.values(), "webhook_retry", "api_handler"]
            ]
            resources.append(  # as Chalice records it (deploy/planner.py: rest_api_id, rest_api_url)
                {
                    "name": "rest_api",
                    "resource_type": "rest_api",
                    "rest_api_id": rest_api_id(self.stage),
                    "rest_api_url": f"https://{rest_api_id(self.stage)}.execute-api.{REGION}.amazonaws.com/api/",
                }
            )
            (deployed / f"{self.stage}.json").write_text(json.dumps({"resources": resources}))
            self.account.updated |= {str(r["lambda_arn"]) for r in resources if "lambda_arn" in r}
        elif argv[:3] == ["aws", "lambda", "publish-version"]:
            fn = arg["--function-name"]  # a new version only when $LATEST changed (as Lambda does)
            if fn in self.account.updated or fn not in self.account.versions:
                self.account.versions[fn] = self.account.versions.get(fn, 0) + 1
                self.account.updated.discard(fn)
            return f"{self.account.versions[fn]}\n"
        elif argv[:2] == ["aws", "sts"]:
            return ACCOUNT + "\n"
        elif argv[:2] == ["chalice", "--version"]:  # names the Python that runs it
            return f"chalice 1.34.0, python {self.account.python}.1, linux 6.1.0\n"
        elif argv[1:4] == ["-m", "pip", "install"]:
            assert "--python-version" in argv and argv[argv.index("--python-version") + 1] == "3.13"
        elif argv[:3] == ["aws", "lambda", "get-account-settings"]:
            left = self.account.concurrency_limit - sum(self.account.reserved.values())
            limit = {
                "ConcurrentExecutions": self.account.concurrency_limit,
                "UnreservedConcurrentExecutions": left,
            }
            return json.dumps(limit)
        elif argv[:3] == ["aws", "lambda", "get-function-concurrency"]:
            if arg["--function-name"] not in self.account.reserved:
                raise failed(argv, "An error occurred (ResourceNotFoundException) when calling the "
                             "GetFunctionConcurrency operation: Function not found")  # fmt: skip
            return f"{self.account.reserved[arg['--function-name']]}\n"
        elif argv[:3] == ["aws", "dynamodb", "describe-table"]:
            if arg["--table-name"] not in self.account.tables:
                raise failed(argv, "An error occurred (ResourceNotFoundException) when calling the "
                             f"DescribeTable operation: Requested resource not found: Table: {table} not found")  # fmt: skip
            return "ACTIVE\n"
        elif argv[:3] == ["aws", "dynamodb", "delete-table"]:
            self.account.tables.discard(arg["--table-name"])
        elif argv[:3] == ["aws", "cloudformation", "describe-stack-resources"]:
            if arg["--stack-name"] not in self.account.stacks:
                raise failed(argv, "An error occurred (ValidationError) when calling the DescribeStackResources "
                             f"operation: Stack with id {stack} does not exist")  # fmt: skip
            return (
                "DELETE_SKIPPED\n" if arg["--stack-name"] in self.account.rolled_back else "CREATE_COMPLETE\n"
            )
        elif argv[:3] == ["aws", "cloudformation", "describe-stacks"]:
            if arg["--stack-name"] not in self.account.stacks:
                raise failed(argv, "An error occurred (ValidationError) when calling the DescribeStacks "
                             f"operation: Stack with id {stack} does not exist")  # fmt: skip
            outputs = self.outputs()
            return json.dumps([{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()])
        elif argv[:3] == ["aws", "kms", "schedule-key-deletion"]:
            assert arg["--key-id"] in self.account.keys, "NotFoundException"
            assert 7 <= int(arg["--pending-window-in-days"]) <= 30, "ValidationException"
            self.account.keys.discard(arg["--key-id"])
        elif argv[:3] == ["aws", "logs", "create-log-group"]:
            if arg["--log-group-name"] in self.account.log_groups:
                raise failed(argv, "An error occurred (ResourceAlreadyExistsException) when calling the "
                             "CreateLogGroup operation: The specified log group already exists")  # fmt: skip
            self.account.log_groups[arg["--log-group-name"]] = None
        elif argv[:3] == ["aws", "logs", "put-retention-policy"]:
            assert arg["--log-group-name"] in self.account.log_groups, "ResourceNotFoundException"
            self.account.log_groups[arg["--log-group-name"]] = int(arg["--retention-in-days"])
        elif argv[:3] == ["aws", "apigateway", "update-stage"]:
            assert arg["--rest-api-id"] == rest_api_id(self.stage), (
                "NotFoundException: Invalid API identifier"
            )
            settings = self.account.api_stages.setdefault((arg["--rest-api-id"], arg["--stage-name"]), {})
            for operation in argv[argv.index("--patch-operations") + 1 :]:
                patch = dict(part.split("=", 1) for part in operation.split(","))
                # API Gateway refuses a path it does not know (BadRequestException)
                assert patch["op"] == "replace" and patch["path"] in THROTTLE_PATHS, patch
                settings[patch["path"]] = patch["value"]
        elif argv[:2] == ["sam", "deploy"]:
            if table in self.account.tables and stack not in self.account.stacks:
                raise failed(argv, f"Resource handler returned message: {table} already exists")
            overrides = argv[argv.index("--parameter-overrides") + 1 :]
            self.account.stacks[stack] = dict(p.split("=", 1) for p in overrides)
            self.account.tables.add(table)
            self.account.keys.add(self.outputs()["WebhookKeyArn"])
        elif argv[:2] == ["sam", "delete"]:
            # what the template retains stays: the table and the webhook key (DeletionPolicy Retain)
            self.account.stacks.pop(arg["--stack-name"], None)
        return ""


def rest_api_id(stage: str) -> str:
    return f"{stage[:6]}api1234"


THROTTLE_PATHS = {"/*/*/throttling/rateLimit", "/*/*/throttling/burstLimit"}


def deploy(
    project: Path,
    stage: str,
    fake: FakeAws,
    lines: list[str] | None = None,
    cors: str = "",
    api_throttle: dict[str, float] | None = None,
    reserved: dict[str, int] | None = None,
) -> None:
    say = lines.append if lines is not None else (lambda _: None)
    Deployer(
        stage,
        REGION,
        project,
        run=fake,
        say=say,
        which=found,
        cors_origins=cors,
        api_throttle=api_throttle or {},
        reserved=reserved or {},
    ).deploy()


def throttle(account: Account, stage: str) -> dict[str, str]:
    """The REST API's stage throttling as API Gateway holds it (Chalice's stage is ``api``)."""
    settings = account.api_stages.get((rest_api_id(stage), "api"), {})
    return {path.rsplit("/", 1)[1]: value for path, value in settings.items()}


def stage_config_of(project: Path, stage: str) -> dict[str, Any]:
    config = json.loads((project / ".chalice" / "config.json").read_text())
    stage_config: dict[str, Any] = config["stages"][stage]
    return stage_config


def stage_env(project: Path, stage: str) -> dict[str, str]:
    config = json.loads((project / ".chalice" / "config.json").read_text())
    env: dict[str, str] = config["stages"][stage]["environment_variables"]
    return env


def test_deploy_runs_chalice_then_the_template_then_chalice_with_the_stream_url(project):
    fake = FakeAws(project, "staging")
    lines: list[str] = []
    deploy(project, "staging", fake, lines)
    tools = [" ".join(c[:3]) for c in fake.calls]
    assert tools == [
        "aws sts get-caller-identity",
        "aws dynamodb describe-table",  # no table left by an earlier destroy
        "chalice --version",  # the Python behind chalice is the runtime's
        "aws lambda get-account-settings",  # the concurrency budget, before anything changes
        # what the stage's functions and its SSE function reserve now
        *["aws lambda get-function-concurrency"] * (len(BUDGET) + 1),
        "chalice deploy --stage",
        "aws logs create-log-group",  # the API handler's retention
        "aws logs put-retention-policy",
        *["aws lambda wait", "aws lambda publish-version"] * 4,  # the versions the state machine runs
        "python -m pip",  # the SSE bundle's wheels (dagcast/deploy/bundle.py), not `sam build`
        "sam deploy --template-file",
        "aws cloudformation describe-stacks",
        "chalice deploy --stage",  # again: the API now knows the SSE function URL
        "aws apigateway update-stage",  # the REST rate limit, after the last chalice deploy
    ]
    assert throttle(fake.account, "staging") == {"rateLimit": "100", "burstLimit": "200"}  # the top level's
    sam = next(c for c in fake.calls if c[:2] == ["sam", "deploy"])
    overrides = dict(p.split("=", 1) for p in sam[sam.index("--parameter-overrides") + 1 :])
    template = decode_str((project / "template.yaml").read_text())[0]
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    assert required <= set(overrides)  # every parameter without a default is passed
    assert set(overrides) <= set(template["Parameters"])
    assert overrides["FanoutFunctionArn"].endswith(":function:dagcast-staging-fanout")
    assert overrides["LambdaWebAdapterLayerArn"].startswith(f"arn:aws:lambda:{REGION}:")  # the stack's region
    assert overrides["LogRetentionInDays"] == "14"  # the stage's (made from dev)
    assert sam[sam.index("--stack-name") + 1] == "dagcast-staging"
    env = stage_env(project, "staging")
    assert env["DAGCAST_EVENTS_URL"] == fake.outputs()["EventsUrl"].rstrip("/")
    assert ".lambda-url.eu-west-1." in env["DAGCAST_EVENTS_URL"]
    assert (
        env["DAGCAST_STATE_MACHINE_ARN"]
        == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:dagcast-staging-dag"
    )
    assert (
        env["DAGCAST_TABLE"] == "dagcast-staging"
        and env["DAGCAST_STREAM_SECRET_NAME"] == "dagcast-internal/staging/stream-secret"
        and env["DAGCAST_WEBHOOK_KMS_KEY"] == "alias/dagcast-staging-webhooks"
    )
    policies = sorted((project / ".chalice").glob("policy-staging-*.json"))
    assert [p.name for p in policies] == [f"policy-staging-{f}.json" for f in sorted(iam.FUNCTION_GRANTS)]
    for path in policies:
        assert "dagcast-staging" in path.read_text() and "dagcast-dev" not in path.read_text()
    assert stage_config_of(project, "staging")["lambda_functions"]["run_task"]["iam_policy_file"] == (
        "policy-staging-run_task.json"
    )
    assert any("commit the stage's settings" in line for line in lines)


@pytest.mark.parametrize(("stage", "days"), [("dev", 14), ("prod", 90)])
def test_every_deploy_gives_the_api_log_group_the_stages_retention(project, stage, days):
    """Chalice 1.34 would put it on /aws/lambda/dagcast-<stage>-api_handler; the API logs to
    /aws/lambda/dagcast-<stage>. A second deploy finds the group there and sets it again."""
    account = Account()
    deploy(project, stage, FakeAws(project, stage, account))
    assert account.log_groups == {f"/aws/lambda/dagcast-{stage}": days}
    assert account.stacks[f"dagcast-{stage}"]["LogRetentionInDays"] == str(days)  # the SSE function's
    account.log_groups[f"/aws/lambda/dagcast-{stage}"] = None  # someone removed it
    deploy(project, stage, FakeAws(project, stage, account))  # the group exists: no failure
    assert account.log_groups == {f"/aws/lambda/dagcast-{stage}": days}


def test_a_second_deploy_with_the_same_url_deploys_chalice_once(project):
    account = Account()
    deploy(project, "dev", FakeAws(project, "dev", account))
    again = FakeAws(project, "dev", account)
    deploy(project, "dev", again)
    assert [c[:2] for c in again.calls].count(["chalice", "deploy"]) == 1
    # the stack holds the table: an update, not a leftover
    assert ["aws", "cloudformation", "describe-stack-resources"] in [c[:3] for c in again.calls]


def invoked_and_granted(account: Account, stage: str) -> tuple[set[str], list[str]]:
    """What the stack's state machine definition invokes, and what its role may invoke."""
    stack = Stack(stage, REGION, ACCOUNT, None, **account.stacks[f"dagcast-{stage}"])
    props = stack.props("DagStateMachine")
    invoked = {stack.text(v) for v in props["DefinitionSubstitutions"].values()}
    grants = [
        stack.text(r)
        for st in props["Policies"][0]["Statement"]
        if "lambda:InvokeFunction" in st["Action"]
        for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
    ]
    return invoked, grants


def test_each_deploy_pins_the_state_machine_to_versions_published_after_chalice_deployed(project):
    """Chalice updates $LATEST in place; a definition naming unqualified ARNs ran every execution
    in flight on the new code from the moment of the deploy. Each deploy publishes a version of
    the four functions after chalice deploy and the definition invokes those; the role may still
    invoke the versions of earlier deploys, which running executions keep calling."""
    account = Account()
    fake = FakeAws(project, "dev", account)
    deploy(project, "dev", fake)
    first, grants = invoked_and_granted(account, "dev")
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dagcast-dev-"
    assert first == {arn + fn + ":1" for fn in ASL_FUNCTIONS.values()}
    calls = [" ".join(c[:3]) for c in fake.calls]
    published = [i for i, c in enumerate(calls) if c == "aws lambda publish-version"]
    assert calls.index("chalice deploy --stage") < min(published)
    assert max(published) < calls.index("sam deploy --template-file")
    for i in published:  # each after waiting for that function's update to end
        assert fake.calls[i - 1][:4] == ["aws", "lambda", "wait", "function-updated-v2"]
        assert fake.calls[i - 1][5] == fake.calls[i][4]
    deploy(project, "dev", FakeAws(project, "dev", account))  # a new release of the code
    second, grants = invoked_and_granted(account, "dev")
    assert second == {arn + fn + ":2" for fn in ASL_FUNCTIONS.values()}
    for version in (*first, *second):
        assert any(fnmatch.fnmatchcase(version, g) for g in grants), f"the role may not invoke {version}"


@pytest.mark.parametrize(
    ("output", "value", "variable"),
    [
        ("TableName", "dagcast-dev-events", "DAGCAST_TABLE"),
        (
            "StateMachineArn",
            f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:dagcast-dev-workflow",
            "DAGCAST_STATE_MACHINE_ARN",
        ),
        ("StreamSecretName", "dagcast/dev/stream-secret", "DAGCAST_STREAM_SECRET_NAME"),
        ("WebhookKeyAlias", "alias/dagcast-dev-hooks", "DAGCAST_WEBHOOK_KMS_KEY"),
    ],
)
def test_an_output_that_differs_from_the_stage_stops_the_deploy(project, output, value, variable):
    fake = FakeAws(project, "dev", outputs={output: value})
    with pytest.raises(DeployError, match=f"output {output} = '{value}', but {variable} = ") as raised:
        deploy(project, "dev", fake)
    assert "must agree" in str(raised.value)
    assert [c[:2] for c in fake.calls].count(["chalice", "deploy"]) == 1  # not deployed with a wrong URL
    assert stage_env(project, "dev")["DAGCAST_EVENTS_URL"] == ""  # nothing wired


def test_a_stage_without_webhooks_is_not_held_to_the_key_alias(project):
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["DAGCAST_WEBHOOK_KMS_KEY"] = ""  # webhooks off
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    deploy(project, "dev", FakeAws(project, "dev"))
    assert stage_env(project, "dev")["DAGCAST_WEBHOOK_KMS_KEY"] == ""


@pytest.mark.parametrize("output", ["EventsUrl", "TableName"])
def test_a_stack_without_an_output_deploy_reads_stops_it_by_name(project, output):
    with pytest.raises(DeployError, match=f"the stack dagcast-dev has no output {output}"):
        deploy(project, "dev", FakeAws(project, "dev", outputs={output: None}))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("TableName: !Sub dagcast-${Stage}", "TableName: !Sub dagcast-${Stage}-events", "output TableName"),
        ("Name: !Sub dagcast-${Stage}-dag", "Name: !Sub dagcast-${Stage}-workflow", "output StateMachineArn"),
        (
            "Value: !Sub dagcast-internal/${Stage}/stream-secret",
            "Value: !Sub dagcast/${Stage}/stream-secret",
            "output StreamSecretName",
        ),
        (
            "AliasName: !Sub alias/dagcast-${Stage}-webhooks",
            "AliasName: !Sub alias/dagcast-${Stage}-hooks",
            "output WebhookKeyAlias",
        ),
        ("  EventsUrl:\n", "  StreamUrl:\n", "no output EventsUrl"),
    ],
)
def test_a_template_that_names_things_otherwise_than_the_stage_stops_the_deploy(project, old, new, message):
    """The same renames, made in template.yaml: the deploy checks what the stack really made."""
    path = project / "template.yaml"
    assert path.read_text().count(old) == 1
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(DeployError, match=message):
        deploy(project, "dev", FakeAws(project, "dev"))


def test_redeploying_after_destroy_stops_on_the_kept_table_until_it_is_deleted(project):
    account = Account()
    deploy(project, "dev", FakeAws(project, "dev", account))
    lines: list[str] = []
    Deployer(
        "dev", REGION, project, run=FakeAws(project, "dev", account), say=lines.append, which=found
    ).destroy()
    assert account.tables == {"dagcast-dev"} and not account.stacks
    assert any(
        "a new `dagcast deploy --stage dev` stops until the table is deleted" in line for line in lines
    )
    before = (project / ".chalice" / "config.json").read_text()
    again = FakeAws(project, "dev", account)
    with pytest.raises(DeployError) as raised:
        deploy(project, "dev", again)
    message = str(raised.value)
    assert "the table dagcast-dev exists but no stack dagcast-dev holds it" in message
    assert "Nothing was changed" in message
    assert "`aws dynamodb delete-table --table-name dagcast-dev --region eu-west-1`" in message
    assert [c[:3] for c in again.calls] == [
        ["aws", "sts", "get-caller-identity"],
        ["aws", "dynamodb", "describe-table"],
        ["aws", "cloudformation", "describe-stack-resources"],
    ]  # before chalice, sam or any file
    assert (project / ".chalice" / "config.json").read_text() == before
    FakeAws(project, "dev", account)(["aws", "dynamodb", "delete-table", "--table-name", "dagcast-dev"])
    deploy(project, "dev", FakeAws(project, "dev", account))  # what the message says works
    assert account.tables == {"dagcast-dev"} and "dagcast-dev" in account.stacks


def test_a_table_kept_by_a_rolled_back_first_deploy_stops_the_deploy_with_both_deletes(project):
    account = Account(tables={"dagcast-dev"}, stacks={"dagcast-dev": {}}, rolled_back={"dagcast-dev"})
    fake = FakeAws(project, "dev", account)
    with pytest.raises(DeployError) as raised:
        deploy(project, "dev", fake)
    message = str(raised.value)
    assert "the stack dagcast-dev no longer holds it (DELETE_SKIPPED)" in message
    assert "`sam delete --stack-name dagcast-dev --region eu-west-1 --no-prompts`" in message
    assert "`aws dynamodb delete-table --table-name dagcast-dev --region eu-west-1`" in message
    assert ["chalice", "deploy"] not in [c[:2] for c in fake.calls]


def test_a_failed_table_lookup_stops_the_deploy_with_what_aws_said(project):
    class Denied(FakeAws):
        def __call__(
            self, argv: Sequence[str], *, quiet: bool = False, env: Mapping[str, str] | None = None
        ) -> str:
            if list(argv[:3]) == ["aws", "dynamodb", "describe-table"]:
                raise failed(argv, "An error occurred (AccessDeniedException): not authorized")
            return super().__call__(argv, quiet=quiet, env=env)

    with pytest.raises(DeployError, match="AccessDeniedException"):
        deploy(project, "dev", Denied(project, "dev"))


def test_dry_run_prints_the_plan_and_changes_nothing(project):
    before = {p: p.read_text() for p in (project / ".chalice").iterdir()}
    lines: list[str] = []
    fake = FakeAws(project, "prod")
    Deployer("prod", REGION, project, dry_run=True, run=fake, say=lines.append, which=found).deploy()
    assert fake.calls == []
    assert {p: p.read_text() for p in (project / ".chalice").iterdir()} == before
    assert any(line.startswith("$ chalice deploy --stage prod") for line in lines)
    assert any(line.startswith("$ sam deploy") and "FanoutFunctionArn=<fanout ARN" in line for line in lines)
    assert any(line.startswith("would check that the stack's outputs are the stage's") for line in lines)


def test_destroy_deletes_the_stack_then_chalice_and_keeps_the_table_unless_asked(project):
    fake = FakeAws(project, "dev")
    lines: list[str] = []
    Deployer("dev", REGION, project, run=fake, say=lines.append, which=found).destroy()
    assert [c[:2] for c in fake.calls] == [
        ["aws", "cloudformation"],
        ["sam", "delete"],
        ["chalice", "delete"],
    ]
    assert any("table dagcast-dev" in line for line in lines)
    fake = FakeAws(project, "dev")
    Deployer("dev", REGION, project, run=fake, say=lambda _: None, which=found).destroy(delete_data=True)
    assert fake.calls[-1][:3] == ["aws", "dynamodb", "delete-table"]


def test_destroy_keeps_the_webhook_key_with_the_table_and_says_how_to_delete_both(project):
    """The table's webhook secrets are encrypted under the stack's KMS key: destroy keeps both,
    names both (the key by its ARN, read from the stack before it is deleted) and prints the
    command that deletes each; --delete-data runs them, the table first."""
    account = Account()
    deploy(project, "dev", FakeAws(project, "dev", account))
    key = next(iter(account.keys))
    assert key.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    lines: list[str] = []
    Deployer(
        "dev", REGION, project, run=FakeAws(project, "dev", account), say=lines.append, which=found
    ).destroy()
    assert account.stacks == {} and account.tables == {"dagcast-dev"} and account.keys == {key}
    said = "\n".join(lines)
    assert f"KMS key {key}" in said and "table dagcast-dev" in said
    table_delete = f"aws dynamodb delete-table --table-name dagcast-dev --region {REGION}"
    key_delete = f"aws kms schedule-key-deletion --key-id {key} --pending-window-in-days 30 --region {REGION}"
    assert table_delete in said and key_delete in said
    # the printed commands delete what was kept
    runner = FakeAws(project, "dev", account)
    for command in (table_delete, key_delete):
        runner(command.split())
    assert account.tables == set() and account.keys == set()
    # --delete-data: the same commands, run
    deploy(project, "dev", FakeAws(project, "dev", account))
    fake = FakeAws(project, "dev", account)
    Deployer("dev", REGION, project, run=fake, say=lambda _: None, which=found).destroy(delete_data=True)
    assert [c[:3] for c in fake.calls[-2:]] == [
        ["aws", "dynamodb", "delete-table"],
        ["aws", "kms", "schedule-key-deletion"],
    ]
    assert account.tables == set() and account.keys == set()


def test_alarm_destinations_reach_the_stack_and_stay_with_the_stage(project):
    """--alarm-email / --alarm-topic become the template's parameters; the stage keeps them, so a
    deploy without the flags does not drop the subscription; an empty value switches one off."""
    account = Account()
    fake = FakeAws(project, "dev", account)
    Deployer("dev", REGION, project, run=fake, say=lambda _: None, which=found,
             alarm_flags={"email": "ops@example.com"}).deploy()  # fmt: skip
    assert account.stacks["dagcast-dev"]["AlarmEmail"] == "ops@example.com"
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["dagcast_alarms"] == {"email": "ops@example.com"}
    assert fake.outputs()["AlarmTopicArn"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:dagcast-dev-alarms"
    deploy(project, "dev", FakeAws(project, "dev", account))  # no flags: kept
    assert account.stacks["dagcast-dev"]["AlarmEmail"] == "ops@example.com"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:pager"
    Deployer("dev", REGION, project, run=FakeAws(project, "dev", account), say=lambda _: None,
             which=found, alarm_flags={"email": "", "topic": topic}).deploy()  # fmt: skip
    assert "AlarmEmail" not in account.stacks["dagcast-dev"]
    assert account.stacks["dagcast-dev"]["AlarmTopicArn"] == topic


def test_a_wrong_alarm_destination_stops_the_deploy_before_anything_changes(project):
    fake = FakeAws(project, "dev")
    deployer = Deployer("dev", REGION, project, run=fake, say=lambda _: None, which=found,
                        alarm_flags={"topic": "pager"})  # fmt: skip
    with pytest.raises(DeployError, match="not an SNS topic ARN"):
        deployer.deploy()
    assert not [c for c in fake.calls if c[:2] == ["chalice", "deploy"] or c[0] == "sam"]


def test_the_cli_refuses_an_alarm_email_that_is_not_one(capsys):
    from dagcast.cli import main

    with pytest.raises(SystemExit):
        main(["deploy", "--stage", "dev", "--dry-run", "--region", REGION, "--alarm-email", "ops"])
    assert "is not an e-mail address" in capsys.readouterr().err


def test_a_chalice_deployment_without_a_function_is_a_clear_error():
    with pytest.raises(DeployError, match="did not deploy register_task, record_failure, finalize, fanout"):
        function_arns(
            {"resources": [{"name": "run_task", "resource_type": "lambda_function", "lambda_arn": "x"}]}
        )


def test_the_cli_refuses_a_bad_stage_and_works_as_a_dry_run(capsys, monkeypatch):
    from dagcast.cli import main

    with pytest.raises(SystemExit):
        main(["deploy", "--stage", "Bad_Stage", "--dry-run", "--region", REGION])
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)  # restored after the test
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert main(["deploy", "--stage", "dev", "--dry-run", "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert "$ sam deploy" in out and "would have deployed stage dev" in out


def test_deploy_leaves_this_process_environment_as_it_was(monkeypatch):
    """The region goes to each command's environment (chalice has no region flag), not into
    os.environ, where it would outlive the call: later tests in the process saw it."""
    from dagcast.deploy import deployer

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    before = dict(os.environ)
    assert deployer.main("deploy", "dev", REGION, dry_run=True, delete_data=False, cors="") == 0
    assert deployer.main("destroy", "dev", REGION, dry_run=True, delete_data=False, cors="") == 0
    assert dict(os.environ) == before


def test_every_command_is_run_in_the_deploy_region(project, monkeypatch):
    """chalice deploys where the stack goes, whatever region this process's environment names."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fake = FakeAws(project, "dev")
    deploy(project, "dev", fake)
    Deployer("dev", REGION, project, run=fake, say=lambda _: None, which=found).destroy()
    assert fake.regions == {"aws": REGION, "chalice": REGION, "sam": REGION, "python": REGION}
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"


def test_the_dry_run_shown_in_the_docs_is_what_deploy_prints(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    from dagcast.cli import main

    assert main(["deploy", "--stage", "dev", "--dry-run"]) == 0
    printed = capsys.readouterr().out.strip()
    docs = (ROOT / "docs" / "deploy.md").read_text()
    shown = docs.split(
        "AWS_REGION=eu-west-1 .venv/bin/dagcast deploy --stage dev --dry-run`\nin this repository:\n\n```\n",
        1,
    )[1]
    assert shown.split("\n```", 1)[0].strip() == printed


def test_missing_tools_are_named_with_how_to_install_them(project):
    deployer = Deployer("dev", REGION, project, run=FakeAws(project, "dev"), which=lambda t: None)
    with pytest.raises(DeployError, match="sam: install the AWS SAM CLI") as raised:
        deployer.deploy()
    assert "aws: install the AWS CLI" in str(raised.value)


def test_a_stage_without_api_keys_gets_one_shown_once_and_only_its_digest_stored(project):
    from chalicelib.http.gate import key_digest

    lines: list[str] = []
    account = Account()
    deploy(project, "staging", FakeAws(project, "staging", account), lines, cors="https://app.example")
    env = stage_env(project, "staging")
    shown = [line.split("\n")[1].strip() for line in lines if line.startswith("API key of stage staging")]
    assert len(shown) == 1 and shown[0].startswith("dk_")
    assert env["DAGCAST_API_KEYS"] == key_digest(shown[0])
    assert shown[0] not in (project / ".chalice" / "config.json").read_text()
    assert env["DAGCAST_CORS_ORIGINS"] == "https://app.example"
    # A second deploy keeps the key.
    again: list[str] = []
    deploy(project, "staging", FakeAws(project, "staging", account), again)
    assert not [line for line in again if line.startswith("API key")]
    assert stage_env(project, "staging")["DAGCAST_API_KEYS"] == env["DAGCAST_API_KEYS"]


def test_every_deploy_sets_the_rest_apis_stage_throttling_and_keeps_the_flags_in_the_stage(project):
    """The per-process bucket (gate.py) counts per Lambda instance; API Gateway's stage throttle
    counts in front of all of them. The flags are written into the stage, so the next deploy
    without them sets the same; a throttle changed by hand is set back."""
    account = Account()
    deploy(project, "dev", FakeAws(project, "dev", account), api_throttle={"rate": 12.5})
    assert throttle(account, "dev") == {"rateLimit": "12.5", "burstLimit": "200"}
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["dagcast_api_throttle"] == {"rate": 12.5}
    assert config["dagcast_api_throttle"] == {"rate": 100, "burst": 200}  # other stages keep theirs
    account.api_stages[(rest_api_id("dev"), "api")]["/*/*/throttling/burstLimit"] = "5000"  # by hand
    again = FakeAws(project, "dev", account)
    deploy(project, "dev", again)
    assert throttle(account, "dev") == {"rateLimit": "12.5", "burstLimit": "200"}
    assert [c[:3] for c in again.calls][-1] == ["aws", "apigateway", "update-stage"]


def test_a_stage_of_its_own_gets_its_own_throttle(project):
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["prod"]["dagcast_api_throttle"] = {"rate": 400, "burst": 800}
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    account = Account()
    deploy(project, "prod", FakeAws(project, "prod", account))
    deploy(project, "dev", FakeAws(project, "dev", account))
    assert throttle(account, "prod") == {"rateLimit": "400", "burstLimit": "800"}
    assert throttle(account, "dev") == {"rateLimit": "100", "burstLimit": "200"}


@pytest.mark.parametrize(
    "setting",
    [{"rate": 0, "burst": 10}, {"rate": 10, "burst": 0}, {"rate": "10", "burst": 10}, {"rate": 10}, {}],
)
def test_a_throttle_api_gateway_would_refuse_every_request_with_stops_the_deploy_first(project, setting):
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["dagcast_api_throttle"] = setting
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    before = (project / ".chalice" / "config.json").read_text()
    fake = FakeAws(project, "dev")
    with pytest.raises(DeployError, match=r"dagcast_api_throttle in \.chalice/config\.json is"):
        deploy(project, "dev", fake)
    assert ["chalice", "deploy"] not in [c[:2] for c in fake.calls]
    assert (project / ".chalice" / "config.json").read_text() == before


def test_a_chalice_deployment_without_a_rest_api_is_a_clear_error(project):
    class NoApi(FakeAws):
        def __call__(
            self, argv: Sequence[str], *, quiet: bool = False, env: Mapping[str, str] | None = None
        ) -> str:
            out = super().__call__(argv, quiet=quiet, env=env)
            if list(argv[:2]) == ["chalice", "deploy"]:
                path = self.root / ".chalice" / "deployed" / f"{self.stage}.json"
                deployed = json.loads(path.read_text())
                deployed["resources"] = [r for r in deployed["resources"] if r["resource_type"] != "rest_api"]
                path.write_text(json.dumps(deployed))
            return out

    with pytest.raises(DeployError, match="chalice deployed no REST API for stage dev"):
        deploy(project, "dev", NoApi(project, "dev"))


def test_the_dry_run_shows_the_throttle_it_would_set(project):
    lines: list[str] = []
    Deployer(
        "dev", REGION, project, dry_run=True, run=FakeAws(project, "dev"), say=lines.append, which=found,
        api_throttle={"burst": 50},
    ).deploy()  # fmt: skip
    assert (
        "$ aws apigateway update-stage --rest-api-id <rest_api_id from .chalice/deployed/dev.json> "
        "--stage-name api --region eu-west-1 --patch-operations "
        "op=replace,path=/*/*/throttling/rateLimit,value=100 op=replace,path=/*/*/throttling/burstLimit,value=50"
    ) in lines


@pytest.mark.parametrize(
    "flag", [["--api-stage-rate", "0"], ["--api-stage-rate", "nan"], ["--api-stage-burst", "0"]]
)
def test_the_cli_refuses_a_throttle_that_would_refuse_every_request(flag):
    from dagcast.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["deploy", "--stage", "dev", "--dry-run", "--region", REGION, *flag])
    assert raised.value.code == 2


def changes(fake: FakeAws) -> list[list[str]]:
    """The commands that change something in the account (every other one only reads)."""
    return [
        c
        for c in fake.calls
        if c[:2] == ["chalice", "deploy"] or c[0] == "sam" or c[1] in ("logs", "apigateway")
    ]


def config_text(project: Path) -> str:
    return (project / ".chalice" / "config.json").read_text()


def test_a_reservation_that_leaves_less_than_100_unreserved_stops_the_deploy_before_any_change(project):
    """AWS refuses a PutFunctionConcurrency that leaves under 100 of the account unreserved, half way
    through a deploy (Chalice puts each function's); deploy adds up first, counting what other
    functions of the account reserve, and changes nothing."""
    account = Account(reserved={"someone-elses-function": 450})  # 1,000 - 450 - 502 = 48 left
    fake = FakeAws(project, "dev", account)
    before = config_text(project)
    with pytest.raises(DeployError, match=r"reserves 502 of the region's 1000, other functions already "
                       r"reserve 450.*\(48 would be left\)\. Nothing was changed") as raised:  # fmt: skip
        deploy(project, "dev", fake)
    assert "dagcast-dev-run_task" in str(raised.value) and "--reserved-concurrency" in str(raised.value)
    assert changes(fake) == []
    assert config_text(project) == before and not account.stacks
    account.reserved["someone-elses-function"] = 398  # exactly 100 left: AWS's minimum
    deploy(project, "dev", FakeAws(project, "dev", account))
    assert "dagcast-dev" in account.stacks


def test_what_the_stages_functions_reserve_now_is_replaced_not_counted_twice(project):
    """A redeploy: the account's unreserved figure already has the stage's own reservations taken
    out; they are what the new values replace, so a stage that fits fits again."""
    deployed = {"dagcast-dev": 50, "dagcast-dev-run_task": 200, "dagcast-dev-register_task": 100}
    deployed |= {"dagcast-dev-record_failure": 20, "dagcast-dev-finalize": 20, "dagcast-dev-fanout": 10}
    deployed |= {"dagcast-dev-webhook_retry": 2, "dagcast-dev-sse": 100}
    account = Account(concurrency_limit=700, reserved=dict(deployed))  # 198 unreserved today
    deploy(project, "dev", FakeAws(project, "dev", account))
    assert "dagcast-dev" in account.stacks
    with pytest.raises(DeployError, match=r"\(98 would be left\)"):  # 100 more for run_task does not fit
        deploy(project, "dev", FakeAws(project, "dev", account), reserved={"run_task": 300})


def test_the_reservation_flags_are_kept_in_the_stage_and_the_sse_one_in_the_stack(project):
    account = Account()
    deploy(project, "dev", FakeAws(project, "dev", account), reserved={"run_task": 300, "fanout": 4})
    functions = json.loads(config_text(project))["stages"]["dev"]["lambda_functions"]
    assert (
        functions["run_task"]["reserved_concurrency"] == 300
        and functions["run_task"]["lambda_timeout"] == 900
    )
    assert functions["fanout"]["reserved_concurrency"] == 4
    assert functions["finalize"]["reserved_concurrency"] == 15  # the others keep theirs
    assert account.stacks["dagcast-dev"]["SseReservedConcurrency"] == "100"


def test_a_chalice_on_another_python_than_the_runtime_stops_the_deploy_before_any_change(project):
    """Chalice gives the functions the runtime of the Python that runs it (3.11 here), and its wheels."""
    account = Account(python="3.11")
    fake = FakeAws(project, "dev", account)
    before = config_text(project)
    with pytest.raises(DeployError, match=r"chalice runs under Python 3\.11, .* must run python3\.13"):
        deploy(project, "dev", fake)
    assert changes(fake) == [] and config_text(project) == before


@pytest.mark.parametrize(
    ("region", "layer"),
    [
        ("ap-southeast-2", "arn:aws:lambda:ap-southeast-2:753240598075:layer:LambdaAdapterLayerX86:25"),
        ("cn-northwest-1", "arn:aws-cn:lambda:cn-northwest-1:069767869989:layer:LambdaAdapterLayerX86:25"),
    ],
)
def test_deploy_passes_the_regions_web_adapter_layer_and_writes_arns_in_its_partition(project, region, layer):
    account = Account()
    fake = FakeAws(project, "dev", account, region=region)
    Deployer("dev", region, project, run=fake, say=lambda _: None, which=found).deploy()
    assert account.stacks["dagcast-dev"]["LambdaWebAdapterLayerArn"] == layer
    arn = stage_env(project, "dev")["DAGCAST_STATE_MACHINE_ARN"]
    assert arn.startswith(f"arn:{layer.split(':')[1]}:states:{region}:")


def test_a_region_without_a_published_web_adapter_layer_needs_one_given(project):
    fake = FakeAws(project, "dev")
    deployer = Deployer("dev", "us-gov-west-1", project, run=fake, say=lambda _: None, which=found)
    with pytest.raises(
        DeployError, match=r"no Lambda Web Adapter layer in us-gov-west-1.*--web-adapter-layer"
    ):
        deployer.deploy()
    assert changes(fake) == []
