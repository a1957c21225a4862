"""`dagcast deploy` / `destroy` offline: the order of the commands, the parameters template.yaml
needs, the outputs wired into the Chalice stage (a fake runner stands in for chalice, sam, aws)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from dagcast.deploy import FUNCTION_PARAMETERS, Deployer, DeployError, function_arns

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
URL = "https://abc123.lambda-url.eu-west-1.on.aws/"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".chalice").mkdir()
    for name in ("config.json", "policy-dev.json"):
        shutil.copy(ROOT / ".chalice" / name, tmp_path / ".chalice" / name)
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    return tmp_path


def found(tool: str) -> str:
    return tool  # every tool is "installed"; FakeAws answers for them


class FakeAws:
    """chalice deploy writes .chalice/deployed/<stage>.json like the real one; aws answers."""

    def __init__(self, root: Path, stage: str) -> None:
        self.root, self.stage = root, stage
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["chalice", "deploy"]:
            deployed = self.root / ".chalice" / "deployed"
            deployed.mkdir(exist_ok=True)
            resources = [
                {
                    "name": fn,
                    "resource_type": "lambda_function",
                    "lambda_arn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:dagcast-{self.stage}-{fn}",
                }
                for fn in [*FUNCTION_PARAMETERS.values(), "webhook_retry", "api_handler"]
            ]
            (deployed / f"{self.stage}.json").write_text(json.dumps({"resources": resources}))
        if argv[:2] == ["aws", "sts"]:
            return ACCOUNT + "\n"
        if argv[:2] == ["aws", "cloudformation"]:
            return json.dumps([{"OutputKey": "EventsUrl", "OutputValue": URL}])
        return ""


def test_deploy_runs_chalice_then_the_template_then_chalice_with_the_stream_url(project):
    fake = FakeAws(project, "staging")
    lines: list[str] = []
    Deployer("staging", "eu-west-1", project, run=fake, say=lines.append, which=found).deploy()
    tools = [" ".join(c[:2]) for c in fake.calls]
    assert tools == [
        "aws sts",
        "chalice deploy",
        "sam build",
        "sam deploy",
        "aws cloudformation",
        "chalice deploy",  # again: the API now knows the SSE function URL
    ]
    sam = next(c for c in fake.calls if c[:2] == ["sam", "deploy"])
    overrides = dict(p.split("=", 1) for p in sam[sam.index("--parameter-overrides") + 1 :])
    template = decode_str((project / "template.yaml").read_text())[0]
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    assert required <= set(overrides)  # every parameter without a default is passed
    assert overrides["FanoutFunctionArn"].endswith(":function:dagcast-staging-fanout")
    assert overrides["LambdaWebAdapterLayerArn"].startswith("arn:aws:lambda:eu-west-1:")  # the stack's region
    assert sam[sam.index("--stack-name") + 1] == "dagcast-staging"
    config = json.loads((project / ".chalice" / "config.json").read_text())
    env = config["stages"]["staging"]["environment_variables"]
    assert env["DAGCAST_EVENTS_URL"] == URL.rstrip("/")
    assert (
        env["DAGCAST_STATE_MACHINE_ARN"]
        == f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:dagcast-staging-dag"
    )
    assert (
        env["DAGCAST_TABLE"] == "dagcast-staging"
        and env["DAGCAST_STREAM_SECRET_NAME"] == "dagcast-internal/staging/stream-secret"
    )
    policy = (project / ".chalice" / "policy-staging.json").read_text()
    assert "dagcast-staging" in policy and "dagcast-dev" not in policy
    assert any("commit the stage's settings" in line for line in lines)


def test_a_second_deploy_with_the_same_url_deploys_chalice_once(project):
    Deployer(
        "dev", "eu-west-1", project, run=FakeAws(project, "dev"), say=lambda _: None, which=found
    ).deploy()
    again = FakeAws(project, "dev")
    Deployer("dev", "eu-west-1", project, run=again, say=lambda _: None, which=found).deploy()
    assert [c[:2] for c in again.calls].count(["chalice", "deploy"]) == 1


def test_dry_run_prints_the_plan_and_changes_nothing(project):
    before = {p: p.read_text() for p in (project / ".chalice").iterdir()}
    lines: list[str] = []
    fake = FakeAws(project, "prod")
    Deployer("prod", "eu-west-1", project, dry_run=True, run=fake, say=lines.append, which=found).deploy()
    assert fake.calls == []
    assert {p: p.read_text() for p in (project / ".chalice").iterdir()} == before
    assert any(line.startswith("$ chalice deploy --stage prod") for line in lines)
    assert any(line.startswith("$ sam deploy") and "FanoutFunctionArn=<fanout ARN" in line for line in lines)


def test_destroy_deletes_the_stack_then_chalice_and_keeps_the_table_unless_asked(project):
    fake = FakeAws(project, "dev")
    lines: list[str] = []
    Deployer("dev", "eu-west-1", project, run=fake, say=lines.append, which=found).destroy()
    assert [c[:2] for c in fake.calls] == [["sam", "delete"], ["chalice", "delete"]]
    assert any("kept the table dagcast-dev" in line for line in lines)
    fake = FakeAws(project, "dev")
    Deployer("dev", "eu-west-1", project, run=fake, say=lambda _: None, which=found).destroy(delete_data=True)
    assert fake.calls[-1][:3] == ["aws", "dynamodb", "delete-table"]


def test_a_chalice_deployment_without_a_function_is_a_clear_error():
    with pytest.raises(DeployError, match="did not deploy register_task, record_failure, finalize, fanout"):
        function_arns(
            {"resources": [{"name": "run_task", "resource_type": "lambda_function", "lambda_arn": "x"}]}
        )


def test_the_cli_refuses_a_bad_stage_and_works_as_a_dry_run(capsys, monkeypatch):
    from dagcast.cli import main

    with pytest.raises(SystemExit):
        main(["deploy", "--stage", "Bad_Stage", "--dry-run", "--region", "eu-west-1"])
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)  # restored after the test
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert main(["deploy", "--stage", "dev", "--dry-run", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert "$ sam deploy" in out and "would have deployed stage dev" in out
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"  # chalice deploys where the stack goes


def test_missing_tools_are_named_with_how_to_install_them(project):
    deployer = Deployer("dev", "eu-west-1", project, run=FakeAws(project, "dev"), which=lambda t: None)
    with pytest.raises(DeployError, match="sam: install the AWS SAM CLI") as raised:
        deployer.deploy()
    assert "aws: install the AWS CLI" in str(raised.value)


def test_a_stage_without_api_keys_gets_one_shown_once_and_only_its_digest_stored(project):
    from chalicelib.gate import key_digest

    lines: list[str] = []
    deployer = Deployer(
        "staging",
        "eu-west-1",
        project,
        run=FakeAws(project, "staging"),
        say=lines.append,
        which=found,
        cors_origins="https://app.example",
    )
    deployer.deploy()
    env = json.loads((project / ".chalice" / "config.json").read_text())["stages"]["staging"][
        "environment_variables"
    ]
    shown = [line.split("\n")[1].strip() for line in lines if line.startswith("API key of stage staging")]
    assert len(shown) == 1 and shown[0].startswith("dk_")
    assert env["DAGCAST_API_KEYS"] == key_digest(shown[0])
    assert shown[0] not in (project / ".chalice" / "config.json").read_text()
    assert env["DAGCAST_CORS_ORIGINS"] == "https://app.example"
    # A second deploy keeps the key.
    again: list[str] = []
    Deployer(
        "staging", "eu-west-1", project, run=FakeAws(project, "staging"), say=again.append, which=found
    ).deploy()
    assert not [line for line in again if line.startswith("API key")]
    env2 = json.loads((project / ".chalice" / "config.json").read_text())["stages"]["staging"][
        "environment_variables"
    ]
    assert env2["DAGCAST_API_KEYS"] == env["DAGCAST_API_KEYS"]
