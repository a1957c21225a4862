"""The cloud artefacts as the tools that build and check them see them: cfn-lint on template.yaml
(with the SAM transform), and the bundle `chalice package` builds. Both run the tools as
subprocesses, which is why they are here and not with the offline checks in tests/unit/test_infra.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.cloudformation import ROOT


def test_template_passes_cfn_lint_including_the_sam_transform():
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint, "cfn-lint is a dev dependency (pyproject.toml)"
    result = subprocess.run([cfn_lint, str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# A managed-instances stage's values, made the template's defaults: cfn-lint checks the resources
# that profile makes with the ids it is given (the endpoints too), not only the on-demand defaults.
MANAGED_DEFAULTS = {
    "SseProfile": "managed-instances",
    "SseSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "SseSecurityGroupIds": "sg-0123456789abcdef0",
    "SseVpcEndpoints": "create",
    "SseVpcId": "vpc-0123456789abcdef0",
    "SseRouteTableIds": "rtb-0123456789abcdef0",
}


def test_the_managed_instances_profile_passes_cfn_lint(tmp_path):
    text = (ROOT / "template.yaml").read_text()
    text = text.replace("  ignore_checks: [W1030]", "  ignore_checks: []")  # its values are real here
    for name, value in MANAGED_DEFAULTS.items():
        text, n = re.subn(
            rf"(\n  {name}:\n    Type: [^\n]+\n    Default: )[^\n]*", rf'\g<1>"{value}"', text, count=1
        )
        assert n == 1, name
    (tmp_path / "template.yaml").write_text(text)
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint
    result = subprocess.run([cfn_lint, str(tmp_path / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


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
    assert "app.py" in names and "chalicelib/webhooks/dispatcher.py" in names
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
        "app.reconcile_execution",  # Step Functions ended an execution without Finalize
    }
    [reconcile] = [f for f in functions if f["Handler"] == "app.reconcile_execution"]
    [rule] = reconcile["Events"].values()
    assert rule["Type"] == "CloudWatchEvent"
    assert rule["Properties"]["Pattern"]["detail-type"] == ["Step Functions Execution Status Change"]
    assert all(f["Tracing"] == "Active" for f in functions)
    # one log group per function but the API handler's (dagcast deploy sets that one: Chalice would
    # name it after api_handler, and refer to a resource ${ApiHandler} that is called APIHandler)
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"]["RetentionInDays"]
        for r in sam.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    named = {name for name, r in sam.items() if r["Type"] == "AWS::Serverless::Function"} - {"APIHandler"}
    assert groups == {f"/aws/lambda/${{{name}}}": 14 for name in named}
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint
    lint = subprocess.run(
        [cfn_lint, "--format", "parseable", str(out / "sam.json")], capture_output=True, text=True
    )
    errors = [line for line in lint.stdout.splitlines() if re.search(r":E\d{4}:", line)]
    assert not errors and lint.returncode & 2 == 0, lint.stdout + lint.stderr
