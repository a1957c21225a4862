"""The Deployer: `dagcast deploy` and `dagcast destroy`, step by step (the order: the package's
docstring), and the command line's entry to them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.http.gate import new_api_key

from . import alarms, bundle, concurrency, iam, preflight, retained, versions
from . import throttle as gateway
from .commands import CommandFailed, DeployError, Runner, region_env, run_command, which
from .sse_profiles import SseProfile
from .stage import (
    EVENTS_URL_OUTPUT,
    FUNCTION_PARAMETERS,
    OPTIONAL_OUTPUTS,
    STAGE_OUTPUTS,
    api_log_group,
    function_arns,
    log_retention,
    stack_name,
    stage_config,
    table_name,
)

TOOLS = {
    "chalice": "pip install chalice (it comes with dagcast: use the project's .venv/bin)",
    "sam": "install the AWS SAM CLI: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html",
    "aws": "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
}


@dataclass
class Deployer:
    stage: str
    region: str
    root: Path
    dry_run: bool = False
    cors_origins: str = ""
    sse: SseProfile = field(default_factory=SseProfile)
    api_throttle: dict[str, float] = field(default_factory=dict)  # flags: rate and/or burst for the stage
    alarm_flags: dict[str, str] = field(default_factory=dict)  # flags: email and/or topic (alarms.py)
    reserved: dict[str, int] = field(default_factory=dict)  # flags: function → reserved concurrency
    web_adapter_layer: str = ""  # flag: the layer's ARN where AWS publishes none (regions.py)
    run: Runner = field(default=run_command)
    say: Callable[[str], None] = print
    which: Callable[[str], str | None] = field(default=lambda tool: which(tool))
    changed_files: list[Path] = field(default_factory=list)
    # the stage's REST throttle, checked by write_stage before anything is deployed
    throttle: gateway.StageThrottle | None = field(default=None, init=False)
    alarm_parameters: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def config_path(self) -> Path:
        return self.root / ".chalice" / "config.json"

    def _cmd(self, *argv: str, quiet: bool = False) -> str:
        self.say("$ " + " ".join(argv))
        if self.dry_run:
            return ""
        return self.run([self.which(argv[0]) or argv[0], *argv[1:]], quiet=quiet, env=region_env(self.region))

    def _probe(self, *argv: str, answer: str) -> str | None:
        """Run a quiet command: its output, or None when it failed with ``answer`` in its stderr
        (any other failure stops the deploy, with what the command said)."""
        try:
            return self._cmd(*argv, quiet=True)
        except CommandFailed as exc:
            if answer in exc.stderr:
                return None
            raise DeployError(f"{exc}: {exc.stderr.strip()}") from exc

    def _write(self, path: Path, text: str) -> None:
        if path.exists() and path.read_text() == text:
            return
        self.say(f"{'would write' if self.dry_run else 'writing'} {path.relative_to(self.root)}")
        if not self.dry_run:
            path.write_text(text)
            self.changed_files.append(path)

    def check_tools(self) -> None:
        missing = [f"{tool}: {hint}" for tool, hint in TOOLS.items() if self.which(tool) is None]
        if missing and not self.dry_run:
            raise DeployError("missing tools —\n  " + "\n  ".join(missing))

    def account(self) -> str:
        if self.dry_run:
            self.say("$ aws sts get-caller-identity --query Account --output text")
            return "<ACCOUNT>"
        return self._cmd(
            "aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"
        ).strip()

    def check_table(self) -> None:
        """Stop before changing anything when the stage's table exists but the stack does not hold
        it: `dagcast destroy` keeps it (DeletionPolicy: Retain), and so does the rollback of a
        failed first deploy. CloudFormation cannot create a table whose name is taken."""
        table, stack = table_name(self.stage), stack_name(self.stage)
        found = self._probe(
            "aws", "dynamodb", "describe-table", "--table-name", table, "--region", self.region,
            "--query", "Table.TableStatus", "--output", "text",
            answer="ResourceNotFoundException",
        )  # fmt: skip
        if found is None or self.dry_run:
            return
        status = self._probe(
            "aws", "cloudformation", "describe-stack-resources", "--stack-name", stack,
            "--logical-resource-id", "EventsTable", "--region", self.region,
            "--query", "StackResources[0].ResourceStatus", "--output", "text",
            answer="does not exist",
        )  # fmt: skip
        status = (status or "").strip()
        if status not in ("", "None") and not status.startswith("DELETE"):
            return  # the stack's own table: an update
        delete_table = f"aws dynamodb delete-table --table-name {table} --region {self.region}"
        if status.startswith("DELETE"):  # the stack is there, its table is not its own any more
            raise DeployError(
                f"the table {table} exists but the stack {stack} no longer holds it ({status}): a first "
                "deploy failed and rolled back, which keeps the table, and leaves the stack in a state "
                "it cannot be updated from. Nothing was changed. Delete both, then deploy again: "
                f"`sam delete --stack-name {stack} --region {self.region} --no-prompts` and "
                f"`{delete_table}` (empty after a failed first deploy). docs/deploy.md § 4.3."
            )
        raise DeployError(
            f"the table {table} exists but no stack {stack} holds it: `dagcast destroy` keeps the table "
            "(its events), and CloudFormation cannot create a table whose name is taken. Nothing was "
            "changed. To deploy this stage again, delete it — export or back up what you want to keep "
            f"first; its point-in-time backups go with it — with `{delete_table}`, or deploy under "
            "another stage name. docs/deploy.md § Destroying."
        )

    def check_concurrency(self, account: str) -> None:
        config = stage_config(json.loads(self.config_path.read_text()), self.stage, self.region, account)
        preflight.concurrency_budget(self, config, DeployError)

    def write_stage(self, account: str) -> None:
        config = json.loads(self.config_path.read_text())
        new = stage_config(config, self.stage, self.region, account)
        env = new["stages"][self.stage]["environment_variables"]
        if self.cors_origins:  # the REST API's allow-list; the function URL gets it from SAM
            env["DAGCAST_CORS_ORIGINS"] = self.cors_origins
        try:  # checked before anything is deployed; the flags' values are kept in the stage
            self.throttle = gateway.apply(new, self.stage, self.api_throttle)
            self.alarm_parameters = alarms.apply(new, self.stage, self.alarm_flags)
        except (gateway.ThrottleError, alarms.AlarmSettingError) as exc:
            raise DeployError(str(exc)) from exc
        concurrency.apply(new, self.stage, self.reserved)  # checked by check_concurrency
        if not env.get("DAGCAST_API_KEYS"):
            if self.dry_run:
                self.say(f"would make an API key for stage {self.stage} (its digest → DAGCAST_API_KEYS)")
            else:
                key, env["DAGCAST_API_KEYS"] = new_api_key()
                self.say(
                    f"API key of stage {self.stage} (shown once; keep it in your secret store; callers send "
                    f"'Authorization: Bearer <key>', the CLI reads $DAGCAST_API_KEY):\n  {key}"
                )
        # each function's role, from dagcast/deploy/iam.py for the stage's names (an event bus or KMS key
        # set or cleared in the stage changes them): every deploy writes what differs
        iam.with_policy_files(new, self.stage)
        for name, text in iam.render(new, self.stage).items():
            self._write(self.root / ".chalice" / name, text)
        self._write(self.config_path, json.dumps(new, indent=2) + "\n")

    def chalice_deploy(self) -> None:
        self._cmd("chalice", "deploy", "--stage", self.stage)

    def retention(self) -> int | None:
        return log_retention(json.loads(self.config_path.read_text()), self.stage)

    def api_log_retention(self) -> None:
        """Chalice 1.34 gives the API handler's retention to /aws/lambda/dagcast-<stage>-api_handler
        (and `chalice package` makes an invalid template of it), while the function logs to
        /aws/lambda/dagcast-<stage>. The stages switch Chalice's off (api_handler:
        log_retention_in_days 0) and this sets the stage's retention on the right group."""
        days = self.retention()
        if days is None:
            return
        group = api_log_group(self.stage)
        self._probe(
            "aws", "logs", "create-log-group", "--log-group-name", group, "--region", self.region,
            answer="ResourceAlreadyExistsException",
        )  # fmt: skip
        self._cmd(
            "aws", "logs", "put-retention-policy", "--log-group-name", group,
            "--retention-in-days", str(days), "--region", self.region,
        )  # fmt: skip

    def api_throttling(self) -> None:
        """The REST API's stage throttling (dagcast/deploy/throttle.py), after the last chalice deploy and
        on every deploy: ``replace`` is idempotent, and resets a throttle changed by hand."""
        assert self.throttle is not None, "write_stage runs first"
        try:
            argv = gateway.update_stage(self.root, self.stage, self.region, self.throttle, self.dry_run)
        except gateway.ThrottleError as exc:
            raise DeployError(str(exc)) from exc
        self._cmd(*argv)

    def parameters(self) -> dict[str, str]:
        deployed = self.root / ".chalice" / "deployed" / f"{self.stage}.json"
        if self.dry_run:
            arns = {
                p: f"<{fn} ARN from {deployed.relative_to(self.root)}>"
                for p, fn in FUNCTION_PARAMETERS.items()
            }
        else:
            arns = function_arns(json.loads(deployed.read_text()))
        params = {
            "Stage": self.stage,
            **arns,
            "LambdaWebAdapterLayerArn": preflight.web_adapter_layer(self, DeployError),
        }
        days = self.retention()
        if days is not None:
            params["LogRetentionInDays"] = str(days)
        if self.cors_origins:
            params["CorsOrigins"] = self.cors_origins
        return params | self.sse.parameters() | self.alarm_parameters

    def sam_deploy(self, params: dict[str, str]) -> None:
        bundle.build(self)  # no `sam build`: it would copy the whole repository (dagcast/deploy/bundle.py)
        self._cmd(
            "sam", "deploy", "--template-file", "template.yaml", "--stack-name", stack_name(self.stage),
            "--region", self.region, "--capabilities", "CAPABILITY_IAM", "--resolve-s3",
            "--no-fail-on-empty-changeset", "--parameter-overrides", *(f"{k}={v}" for k, v in params.items()),
        )  # fmt: skip

    def _describe_outputs(self) -> tuple[str, ...]:
        return (
            "aws", "cloudformation", "describe-stacks", "--stack-name", stack_name(self.stage),
            "--region", self.region, "--query", "Stacks[0].Outputs", "--output", "json",
        )  # fmt: skip

    def outputs(self) -> dict[str, str]:
        text = self._cmd(*self._describe_outputs())
        if self.dry_run:
            return {key: f"<{key} output>" for key in (*STAGE_OUTPUTS, EVENTS_URL_OUTPUT)}
        return {o["OutputKey"]: o["OutputValue"] for o in json.loads(text or "[]")}

    def check_outputs(self, outputs: dict[str, str], env: dict[str, str]) -> None:
        """The stack's names are the ones the stage uses (its environment and, by the same names,
        its policy files); a difference stops the deploy before the second chalice deploy."""
        stack = stack_name(self.stage)
        missing = [key for key in (*STAGE_OUTPUTS, EVENTS_URL_OUTPUT) if key not in outputs]
        if missing:
            raise DeployError(
                f"the stack {stack} has no output {', '.join(missing)}: template.yaml's Outputs must "
                "name what dagcast/deploy/ reads (STAGE_OUTPUTS, EVENTS_URL_OUTPUT)"
            )
        pairs = ", ".join(f"{key} = {var}" for key, var in STAGE_OUTPUTS.items())
        if self.dry_run:
            self.say(f"would check that the stack's outputs are the stage's settings: {pairs}")
            return
        differ = [
            f"  output {key} = {outputs[key]!r}, but {var} = {env.get(var, '')!r}"
            for key, var in STAGE_OUTPUTS.items()
            if outputs[key] != env.get(var, "") and not (key in OPTIONAL_OUTPUTS and not env.get(var))
        ]
        if differ:
            raise DeployError(
                f"the stack {stack} and stage {self.stage} of .chalice/config.json name things "
                "differently:\n" + "\n".join(differ) + "\ntemplate.yaml and the stage (its "
                f"environment_variables, and policy-{self.stage}-*.json, scoped by the same names) must "
                "agree: fix the one that is wrong and deploy again. The stack is deployed; the Chalice "
                "functions still run with the stage's values."
            )

    def wire_outputs(self, outputs: dict[str, str]) -> bool:
        """Check the stack's names against the stage, then put the SSE function URL into the stage;
        True when it changed (Chalice must redeploy)."""
        config = json.loads(self.config_path.read_text()) if self.config_path.exists() else {}
        stage = config.get("stages", {}).get(self.stage)
        if stage is None:  # dry run of a new stage: nothing written yet
            self.check_outputs(outputs, {})
            self.say(f"would set DAGCAST_EVENTS_URL of stage {self.stage} to {outputs[EVENTS_URL_OUTPUT]}")
            return True
        env = stage["environment_variables"]
        self.check_outputs(outputs, env)
        url = outputs[EVENTS_URL_OUTPUT].rstrip("/")
        if env.get("DAGCAST_EVENTS_URL") == url:
            return False
        env["DAGCAST_EVENTS_URL"] = url
        self._write(self.config_path, json.dumps(config, indent=2) + "\n")
        return True

    def deploy(self) -> None:
        self.check_tools()
        account = self.account()
        self.check_table()
        preflight.web_adapter_layer(self, DeployError)
        preflight.chalice_runtime(self, DeployError)
        self.check_concurrency(account)
        self.write_stage(account)
        self.chalice_deploy()
        self.api_log_retention()
        self.sam_deploy(versions.publish(self._cmd, self.parameters(), self.region, self.dry_run))
        outputs = self.outputs()
        if self.wire_outputs(outputs):
            self.chalice_deploy()
        self.api_throttling()
        done = "would have deployed" if self.dry_run else "deployed"
        self.say(
            f"\n{done} stage {self.stage}: events at {outputs.get(EVENTS_URL_OUTPUT)}; the API URL is above"
        )
        if self.changed_files:
            names = ", ".join(str(p.relative_to(self.root)) for p in self.changed_files)
            self.say(f"commit the stage's settings: {names}")

    def destroy(self, delete_data: bool = False) -> None:
        self.check_tools()
        # what the stack keeps, named by its outputs: read before it is gone
        text = self._probe(*self._describe_outputs(), answer="does not exist")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in json.loads(text or "[]")}
        if self.dry_run:
            outputs = {key: f"<{key} output>" for key in retained.KEPT_OUTPUTS}
        kept = retained.kept(outputs, self.stage, self.region)
        self._cmd(
            "sam", "delete", "--stack-name", stack_name(self.stage), "--region", self.region, "--no-prompts"
        )
        self._cmd("chalice", "delete", "--stage", self.stage)
        if delete_data:
            for item in kept:  # the table first
                self._cmd(*item.delete)
        else:
            self.say(retained.report(kept, self.stage))


def main(
    command: str,
    stage: str,
    region: str | None,
    dry_run: bool,
    delete_data: bool,
    cors: str,
    sse: SseProfile | None = None,
    api_throttle: dict[str, float] | None = None,
    alarm_flags: dict[str, str] | None = None,
    reserved: dict[str, int] | None = None,
    web_adapter_layer: str = "",
) -> int:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    if not region:
        print("dagcast: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    root = Path.cwd()
    if not (root / ".chalice" / "config.json").exists() or not (root / "template.yaml").exists():
        print(
            "dagcast: run this from the dagcast project directory (.chalice/ and template.yaml)",
            file=sys.stderr,
        )
        return 2
    # chalice reads the region from its environment: every command gets it there (Deployer._cmd),
    # this process's environment is left as it was
    deployer = Deployer(
        stage, region, root, dry_run=dry_run, cors_origins=cors, sse=sse or SseProfile(),
        api_throttle=api_throttle or {}, alarm_flags=alarm_flags or {}, reserved=reserved or {},
        web_adapter_layer=web_adapter_layer,
    )  # fmt: skip
    try:
        if command == "deploy":
            deployer.deploy()
        else:
            deployer.destroy(delete_data)
    except DeployError as exc:
        print(f"dagcast {command}: {exc}", file=sys.stderr)
        return 1
    return 0
