"""The IAM policy of each Chalice function, for any stage: one source for every
``.chalice/policy-<stage>-<function>.json``.

Chalice gives each function its own role (``autogen_policy: false``) with the policy file the
stage names for it (``stages.<stage>.lambda_functions.<function>.iam_policy_file``). What each
function may call is listed here, once, as grants (GRANTS) per function (FUNCTION_GRANTS); the
resources are the stage's own, by the names its settings use (the table, the state machine, the
secret, the KMS alias, the event bus) — the names `dagcast deploy` checks against the stack.
`tests/unit/test_iam.py` holds each function's actions equal to the AWS calls its handler's code
can reach (a call graph over the source), so a grant nothing needs fails as a missing one does.

To give a new function a role: add it to FUNCTION_GRANTS (a new kind of access: a grant in
GRANTS), then ``python -m dagcast.deploy.iam`` writes the files and the stages' entries for every stage
of .chalice/config.json; `dagcast deploy` does the same for the stage it deploys.

Deliberately not here: the SSE function's role and the state machine's (template.yaml has them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Statement = dict[str, Any]

# Written `arn:aws:<service>:*:*:…`: any region and account, the names make them the stage's.
_ARN = "arn:aws:{service}:*:*:{resource}"

TABLE_ITEMS = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "BatchGetItem",
    "BatchWriteItem",
)


@dataclass(frozen=True)
class Names:
    """The stage's resources, by the names its Chalice settings use."""

    stage: str
    function: str
    table: str
    state_machine: str  # its name
    stream_secret: str  # "" when the function is not given it
    kms_alias: str  # "" while webhooks are off
    event_bus: str  # "" while EventBridge is off; a name or an ARN

    @classmethod
    def of(cls, stage: str, function: str, env: Mapping[str, str]) -> Names:
        return cls(
            stage=stage,
            function=function,
            table=env.get("DAGCAST_TABLE", f"dagcast-{stage}"),
            state_machine=env.get("DAGCAST_STATE_MACHINE_ARN", f"dagcast-{stage}-dag").rsplit(":", 1)[-1],
            stream_secret=env.get("DAGCAST_STREAM_SECRET_NAME", ""),  # Settings.from_env reads it if set
            kms_alias=env.get("DAGCAST_WEBHOOK_KMS_KEY", ""),
            event_bus=env.get("DAGCAST_EVENT_BUS", ""),
        )

    def arn(self, service: str, resource: str) -> str:
        return _ARN.format(service=service, resource=resource)

    @property
    def log_group(self) -> str:
        # Chalice names the API's function after the app and stage, the others after themselves
        suffix = "" if self.function == "api_handler" else f"-{self.function}"
        return f"/aws/lambda/dagcast-{self.stage}{suffix}"


def _table(*actions: str) -> Callable[[Names], list[Statement]]:
    def grant(n: Names) -> list[Statement]:
        return [_allow("Table", [f"dynamodb:{a}" for a in actions], n.arn("dynamodb", f"table/{n.table}"))]

    return grant


def _event_appends(n: Names) -> list[Statement]:
    # IAM checks each item of a transaction as its own action besides TransactWriteItems ("Using
    # IAM with DynamoDB transactions"): the events and markers put, the task and META updated, and
    # the append lease checked (a queueing writer's, and every drained write's)
    actions = ["TransactWriteItems", "PutItem", "UpdateItem", "ConditionCheckItem"]
    return [_allow("EventAppends", [f"dynamodb:{a}" for a in actions], n.arn("dynamodb", f"table/{n.table}"))]


def _executions_index(n: Names) -> list[Statement]:
    # ListIndex, the list of executions (persistence/keys.py); no other index is read
    return [
        _allow("ExecutionsIndex", ["dynamodb:Query"], n.arn("dynamodb", f"table/{n.table}/index/ListIndex"))
    ]


def _stream(n: Names) -> list[Statement]:
    # the event source mapping reads the table's stream with the fan-out's role
    actions = [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    return [_allow("TableStream", actions, n.arn("dynamodb", f"table/{n.table}/stream/*"))]


def _fanout_failures(n: Names) -> list[Statement]:
    # the mapping's on-failure destination sends with the fan-out's role (template.yaml FanoutFailures)
    return [_allow("FanoutFailures", ["sqs:SendMessage"], n.arn("sqs", f"dagcast-{n.stage}-fanout-failures"))]


def _start(n: Names) -> list[Statement]:
    return [
        _allow(
            "StartExecutions", ["states:StartExecution"], n.arn("states", f"stateMachine:{n.state_machine}")
        )
    ]


def _stop(n: Names) -> list[Statement]:
    executions = n.arn("states", f"execution:{n.state_machine}:*")
    return [_allow("StopExecutions", ["states:StopExecution"], executions)]


def _release(n: Names) -> list[Statement]:
    # SendTaskSuccess has no resource-level permission: the token is the capability
    return [_allow("ReleaseTasks", ["states:SendTaskSuccess"], "*")]


def _stream_secret(n: Names) -> list[Statement]:
    if not n.stream_secret:
        return []
    secret = n.arn("secretsmanager", f"secret:{n.stream_secret}-*")  # Secrets Manager adds 6 characters
    return [_allow("StreamSecret", ["secretsmanager:GetSecretValue"], secret)]


def _webhook_key(*actions: str) -> Callable[[Names], list[Statement]]:
    def grant(n: Names) -> list[Statement]:
        if not n.kms_alias:
            return []
        statement = _allow("WebhookKey", [f"kms:{a}" for a in actions], n.arn("kms", "key/*"))
        # only the key the stage's alias names, and only for webhook secrets (secrets.py's context)
        statement["Condition"] = {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [n.kms_alias]},
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["dagcast:webhook"]},
            "Null": {"kms:EncryptionContextKeys": "false"},
        }
        return [statement]

    return grant


def _event_bus(n: Names) -> list[Statement]:
    if not n.event_bus:
        return []
    bus = n.event_bus if n.event_bus.startswith("arn:") else n.arn("events", f"event-bus/{n.event_bus}")
    return [_allow("EventBus", ["events:PutEvents"], bus)]


def _llm_keys(n: Names) -> list[Statement]:
    # the llm kind's keys, as DAGCAST_LLM_KEYS allows them by default (docs/jobs.md)
    return [
        _allow("LlmKeysFromSsm", ["ssm:GetParameter"], n.arn("ssm", "parameter/dagcast/*")),
        _allow(
            "LlmKeysFromSecretsManager",
            ["secretsmanager:GetSecretValue"],
            n.arn("secretsmanager", "secret:dagcast/*"),
        ),
    ]


def _task_lambdas(n: Names) -> list[Statement]:
    # the lambda kind: functions named dagcast-task-* (add ARNs here for others)
    return [_allow("LambdaKind", ["lambda:InvokeFunction"], n.arn("lambda", "function:dagcast-task-*"))]


def _logs(n: Names) -> list[Statement]:
    group = f"arn:aws:logs:*:*:log-group:{n.log_group}"
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    return [_allow("Logs", actions, [group, f"{group}:*"])]


def _xray(n: Names) -> list[Statement]:
    # "xray": true in config.json; X-Ray has no resource-level permission
    return [_allow("XRay", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")]


def _allow(sid: str, actions: list[str], resource: str | list[str]) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


# What each grant is for; FUNCTION_GRANTS picks from these.
GRANTS: dict[str, Callable[[Names], list[Statement]]] = {
    "table": _table(*TABLE_ITEMS),
    # an event and its marker (with a task's change) in one write: persistence/eventlog.py
    "event-appends": _event_appends,
    "table-release": _table("GetItem", "UpdateItem"),  # the token and the dependency counters
    "table-webhook-retries": _table(
        "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchWriteItem"
    ),
    "executions-index": _executions_index,
    "table-stream": _stream,
    "fanout-failures": _fanout_failures,
    "start-executions": _start,
    "stop-executions": _stop,
    "release-tasks": _release,
    "stream-secret": _stream_secret,
    "webhook-key-seal": _webhook_key("Encrypt", "Decrypt"),
    "webhook-key-open": _webhook_key("Decrypt"),
    "event-bus": _event_bus,
    "llm-keys": _llm_keys,
    "task-lambdas": _task_lambdas,
}
# Every function's role has these: its own log group, and X-Ray.
EVERY_FUNCTION = ("logs", "xray")
_PLATFORM: dict[str, Callable[[Names], list[Statement]]] = {"logs": _logs, "xray": _xray}

# Chalice function → its grants. The API lists and writes executions and webhooks, starts and stops
# executions, signs stream tokens, seals webhook secrets, and sends task tokens from one route only
# (an approval's decision: it ends the task's wait and releases its dependents); the task functions
# release tokens, and so do finalize and reconcile_execution (an execution's end hands its tenant's
# slots on, release.py); only run_task runs kinds (task Lambdas, LLM keys); only the fan-out reads
# the stream.
FUNCTION_GRANTS: dict[str, tuple[str, ...]] = {
    "api_handler": (
        "table",
        "event-appends",
        "executions-index",
        "start-executions",
        "stop-executions",
        "release-tasks",
        "stream-secret",
        "webhook-key-seal",
        "llm-keys",
    ),
    "register_task": ("table-release", "release-tasks"),
    "run_task": ("table", "event-appends", "release-tasks", "task-lambdas", "llm-keys"),
    "record_failure": ("table", "event-appends", "release-tasks"),
    # an execution's end frees its tenant's task slots and hands them to the tenant's queued tasks
    "finalize": ("table", "event-appends", "release-tasks"),
    "reconcile_execution": ("table", "event-appends", "release-tasks"),
    "fanout": ("table", "table-stream", "fanout-failures", "webhook-key-open", "event-bus"),
    "webhook_retry": ("table-webhook-retries", "webhook-key-open"),
}


def policy(stage: str, function: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The policy document of ``function`` in ``stage``, whose Chalice environment is ``env``."""
    names = Names.of(stage, function, env)
    statements: list[Statement] = []
    for grant in FUNCTION_GRANTS[function]:
        statements += GRANTS[grant](names)
    for grant in EVERY_FUNCTION:
        statements += _PLATFORM[grant](names)
    return {"Version": "2012-10-17", "Statement": statements}


def policy_file(stage: str, function: str) -> str:
    """The file's name, relative to .chalice/ (what Chalice's iam_policy_file takes)."""
    return f"policy-{stage}-{function}.json"


def function_env(config: Mapping[str, Any], stage: str, function: str) -> dict[str, str]:
    """The environment Chalice gives ``function`` in ``stage``: top level, stage, function (merged)."""
    st = config["stages"][stage]
    return {
        **config.get("environment_variables", {}),
        **st.get("environment_variables", {}),
        **st.get("lambda_functions", {}).get(function, {}).get("environment_variables", {}),
    }


def with_policy_files(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """``config`` with each function of ``stage`` pointed at its own policy file."""
    functions = config["stages"][stage].setdefault("lambda_functions", {})
    for function in FUNCTION_GRANTS:
        functions.setdefault(function, {})["iam_policy_file"] = policy_file(stage, function)
    return config


def render(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """policy file name → its text, for every function of ``stage``."""
    return {
        policy_file(stage, fn): json.dumps(policy(stage, fn, function_env(config, stage, fn)), indent=2)
        + "\n"
        for fn in FUNCTION_GRANTS
    }


def write(root: Path, stages: list[str] | None = None) -> list[Path]:
    """Write the policy files (and the config's entries) of ``stages`` (default: all); the files
    that changed."""
    config_path = root / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    changed: list[Path] = []
    for stage in stages or sorted(config["stages"]):
        with_policy_files(config, stage)
        for name, text in render(config, stage).items():
            path = root / ".chalice" / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed.append(path)
    text = json.dumps(config, indent=2) + "\n"
    if config_path.read_text() != text:
        config_path.write_text(text)
        changed.append(config_path)
    return changed


if __name__ == "__main__":  # python -m dagcast.deploy.iam [stage ...]
    for path in write(Path.cwd(), sys.argv[1:] or None):
        print(f"wrote {path}")
