"""Creating dagcast's resources in LocalStack, each created or brought up to date.

- the events table (``chalicelib.persistence.keys.table_definition``) with its stream and TTL on
  ``expiresAt``;
- an IAM role, a KMS key (alias ``alias/dagcast-local-webhooks``) for webhook secrets and the
  fan-out's on-failure SQS queue;
- every Chalice Lambda of app.py (``dagcast-local-register_task`` … ``-fanout``,
  ``-webhook_retry``) from the one zip of package.py;
- the state machine (``render_definition`` with the functions' ARNs);
- the stream → fan-out event source mapping, with template.yaml's filter, batch-item failures,
  bisection, retries and on-failure queue.

Every function here creates or updates, so ``up`` can be run again against the same LocalStack;
``delete_resources`` removes what they made. The order of the steps, the health check and the
running backend are backend.py's.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.persistence.keys import table_definition
from chalicelib.persistence.table import error_code

from ..lambdas import APP, FANOUT, REGION, STAGE, function_name
from .errors import LocalStackError
from .package import RUNTIME

STATE_MACHINE_NAME = f"{APP}-{STAGE}-dag"
ROLE_NAME = f"{APP}-{STAGE}-lambda"
KEY_ALIAS = f"alias/{APP}-{STAGE}-webhooks"
FAILURE_QUEUE = f"{APP}-{STAGE}-fanout-failures"
TTL_ATTRIBUTE = "expiresAt"

MEMORY_MB = 512
# Timeouts as in .chalice/config.json (a test compares them).
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 60
TIMEOUT_SECONDS = {
    "run_task": 900,
    "record_failure": 180,
    "finalize": 180,
    "fanout": 300,
    "webhook_retry": 90,
    "reconcile_execution": 300,
}

# template.yaml's FanoutMapping (a test compares them): only new event items reach the fan-out.
FANOUT_FILTER_PATTERN = '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"SK": {"S": [{"prefix": "EVT#"}]}}}}'
FANOUT_MAXIMUM_RETRY_ATTEMPTS = 10

Progress = Callable[[str], None]


# --- what is sent to LocalStack ---------------------------------------------------------------


def lambda_handlers() -> dict[str, str]:
    """Chalice function name → handler (``app.<python name>``), from the Chalice app itself."""
    import app

    handlers = {f.name: f.handler_string for f in app.app.pure_lambda_functions}
    handlers.update({e.name: e.handler_string for e in app.app.event_sources})
    return {str(k): str(v) for k, v in handlers.items()}


def state_machine_arn(account: str, region: str = REGION) -> str:
    """Known before the state machine exists: the functions' environment needs it first."""
    return f"arn:aws:states:{region}:{account}:stateMachine:{STATE_MACHINE_NAME}"


def function_environment(
    table_name: str,
    machine_arn: str,
    stream_secret: str,
    kms_key: str,
    inherited: Mapping[str, str] | None = None,
    endpoint_url: str = "",
) -> dict[str, str]:
    """The Lambdas' environment.

    ``AWS_ENDPOINT_URL`` is left to LocalStack, which injects its address as seen from the Lambda
    containers (unless ``LAMBDA_DISABLE_AWS_ENDPOINT_URL`` is set); a value here would override
    it, so one is only set when asked (``endpoint_url``). ``DAGCAST_*`` settings of ``dagcast up``'s
    own environment (task allow-lists, webhook policy, ...) are passed on; dagcast's own values win.
    """
    env = {k: v for k, v in (inherited or {}).items() if k.startswith("DAGCAST_")}
    env.setdefault("DAGCAST_WEBHOOK_ALLOW_HTTP", "1")
    env.setdefault("DAGCAST_WEBHOOK_SWEEP_SECONDS", "0")  # one pass per invocation (see RetryTicker)
    env.update(
        {
            "DAGCAST_TABLE": table_name,
            "DAGCAST_STATE_MACHINE_ARN": machine_arn,
            "DAGCAST_STREAM_SECRET": stream_secret,
            "DAGCAST_WEBHOOK_KMS_KEY": kms_key,
            "POWERTOOLS_SERVICE_NAME": APP,
            # LocalStack has no X-Ray daemon next to the functions; Tracer would log errors.
            "POWERTOOLS_TRACE_DISABLED": "true",
            # boto3 ≥ 1.40 could send DynamoDB calls to an account-based endpoint.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
    )
    env.pop("DAGCAST_STREAM_SECRET_NAME", None)  # the secret is given itself
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


def function_configuration(
    name: str, handler: str, role_arn: str, environment: dict[str, str]
) -> dict[str, Any]:
    """CreateFunction / UpdateFunctionConfiguration arguments (without the code)."""
    return {
        "FunctionName": function_name(name),
        "Runtime": RUNTIME,
        "Role": role_arn,
        "Handler": handler,
        "Timeout": TIMEOUT_SECONDS.get(name, DEFAULT_FUNCTION_TIMEOUT_SECONDS),
        "MemorySize": MEMORY_MB,
        "Environment": {"Variables": environment},
    }


def event_source_mapping_arguments(
    stream_arn: str,
    function: str,
    on_failure_arn: str,
    batch_size: int = 100,
    batch_window_seconds: float = 0,
) -> dict[str, Any]:
    """CreateEventSourceMapping arguments: template.yaml's FanoutMapping (a test compares them).

    ``MaximumBatchingWindowInSeconds`` is whole seconds in the API: a fractional window is rounded up.
    """
    return {
        "EventSourceArn": stream_arn,
        "FunctionName": function,
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": batch_size,
        "MaximumBatchingWindowInSeconds": math.ceil(batch_window_seconds),
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": FANOUT_MAXIMUM_RETRY_ATTEMPTS,
        "DestinationConfig": {"OnFailure": {"Destination": on_failure_arn}},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "FilterCriteria": {"Filters": [{"Pattern": FANOUT_FILTER_PATTERN}]},
        "Enabled": True,
    }


_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


# --- the resources ----------------------------------------------------------------------------


def ensure_role(session: Any) -> str:
    """The functions' and the state machine's IAM role; its ARN."""
    iam = session.client("iam")
    try:
        return str(iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_TRUST_POLICY)["Role"]["Arn"])
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
        return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])


def ensure_kms_key(session: Any) -> str:
    """The webhook secrets' KMS key, found by its alias; its ARN."""
    kms = session.client("kms")
    try:
        return str(kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        if error_code(exc) != "NotFoundException":
            raise
    meta = kms.create_key(Description=f"{APP}-{STAGE} webhook secrets (DAGCAST_WEBHOOK_KMS_KEY)")[
        "KeyMetadata"
    ]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=meta["KeyId"])
    return str(meta["Arn"])


def ensure_table(session: Any, table_name: str, progress: Progress) -> str:
    """The events table with its stream and TTL; the stream's ARN."""
    ddb = session.client("dynamodb")
    definition = table_definition(table_name)
    try:
        ddb.create_table(**definition)
        progress(f"created table {table_name}")
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=table_name)
    table = add_missing_indexes(ddb, definition, progress)
    if not table.get("StreamSpecification", {}).get("StreamEnabled"):
        table = ddb.update_table(TableName=table_name, StreamSpecification=definition["StreamSpecification"])[
            "TableDescription"
        ]
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        )
    return str(table["LatestStreamArn"])


def add_missing_indexes(ddb: Any, definition: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Create the indexes a table made by an older dagcast lacks (the list index), one per
    UpdateTable as DynamoDB requires; the table's description. Its items get onto a new index
    with ``dagcast migrate --table … --endpoint-url …``."""
    table_name = definition["TableName"]
    table: dict[str, Any] = ddb.describe_table(TableName=table_name)["Table"]
    have = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
    for index in definition["GlobalSecondaryIndexes"]:
        if index["IndexName"] not in have:
            table = ddb.update_table(
                TableName=table_name,
                AttributeDefinitions=definition["AttributeDefinitions"],
                GlobalSecondaryIndexUpdates=[{"Create": index}],
            )["TableDescription"]
            progress(f"added index {index['IndexName']} to {table_name}")
    return table


def ensure_failure_queue(session: Any) -> str:
    """The fan-out mapping's on-failure SQS queue; its ARN."""
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName=FAILURE_QUEUE, Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def ensure_functions(
    session: Any, code: bytes, role_arn: str, environment: dict[str, str], progress: Progress
) -> dict[str, str]:
    """Every Lambda of app.py with ``code``; Chalice function name → ARN."""
    awslambda = session.client("lambda")
    sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
    arns: dict[str, str] = {}
    for name, handler in lambda_handlers().items():
        config = function_configuration(name, handler, role_arn, environment)
        fn = config["FunctionName"]
        try:
            current = awslambda.get_function(FunctionName=fn)["Configuration"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            progress(f"creating function {fn}")
            arns[name] = str(awslambda.create_function(**config, Code={"ZipFile": code})["FunctionArn"])
            awslambda.get_waiter("function_active_v2").wait(FunctionName=fn)
            continue
        awslambda.get_waiter("function_active_v2").wait(FunctionName=fn)
        if current.get("CodeSha256") != sha:
            progress(f"updating the code of {fn}")
            awslambda.update_function_code(FunctionName=fn, ZipFile=code)
            awslambda.get_waiter("function_updated_v2").wait(FunctionName=fn)
        arns[name] = str(awslambda.update_function_configuration(**config)["FunctionArn"])
        awslambda.get_waiter("function_updated_v2").wait(FunctionName=fn)
    return arns


def ensure_state_machine(session: Any, machine_arn: str, definition: str, role_arn: str) -> None:
    """The state machine at ``machine_arn`` (the ARN the functions were given) with ``definition``."""
    sfn = session.client("stepfunctions")
    try:
        sfn.describe_state_machine(stateMachineArn=machine_arn)
    except ClientError as exc:
        if error_code(exc) != "StateMachineDoesNotExist":
            raise
        made = sfn.create_state_machine(
            name=STATE_MACHINE_NAME, definition=definition, roleArn=role_arn, type="STANDARD"
        )["stateMachineArn"]
        if made != machine_arn:  # the functions were told this ARN
            raise LocalStackError(f"LocalStack named the state machine {made}, not {machine_arn}") from None
        return
    sfn.update_state_machine(stateMachineArn=machine_arn, definition=definition, roleArn=role_arn)


def ensure_mapping(
    session: Any, stream_arn: str, failures_arn: str, batch_size: int, batch_window_seconds: float
) -> str:
    """The one stream → fan-out mapping of ``stream_arn`` (others are removed); its UUID."""
    awslambda = session.client("lambda")
    fn = function_name(FANOUT)
    wanted = event_source_mapping_arguments(stream_arn, fn, failures_arn, batch_size, batch_window_seconds)
    found = ""
    for m in awslambda.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]:
        if m.get("EventSourceArn") == stream_arn and not found:
            found = str(m["UUID"])
        else:  # a mapping of an older table's stream (the table was deleted and made again)
            awslambda.delete_event_source_mapping(UUID=m["UUID"])
    if not found:
        return str(awslambda.create_event_source_mapping(**wanted)["UUID"])
    update = {k: v for k, v in wanted.items() if k not in ("EventSourceArn", "StartingPosition")}
    awslambda.update_event_source_mapping(UUID=found, **update)
    return found


def delete_resources(session: Any, table_name: str, machine_arn: str) -> None:
    """Delete everything the functions above make (what is already gone is skipped)."""
    awslambda = session.client("lambda")
    gone = ("ResourceNotFoundException", "NoSuchEntity", "NotFoundException", "StateMachineDoesNotExist")

    def attempt(call: Callable[..., Any], **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except ClientError as exc:
            if error_code(exc) not in gone:
                raise

    for m in awslambda.list_event_source_mappings(FunctionName=function_name(FANOUT))["EventSourceMappings"]:
        attempt(awslambda.delete_event_source_mapping, UUID=m["UUID"])
    for name in lambda_handlers():
        attempt(awslambda.delete_function, FunctionName=function_name(name))
    attempt(session.client("stepfunctions").delete_state_machine, stateMachineArn=machine_arn)
    attempt(session.client("dynamodb").delete_table, TableName=table_name)
    sqs = session.client("sqs")
    with contextlib.suppress(ClientError):  # no such queue
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=FAILURE_QUEUE)["QueueUrl"])
    kms = session.client("kms")
    with contextlib.suppress(ClientError):  # no such alias
        key = kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["KeyId"]
        kms.delete_alias(AliasName=KEY_ALIAS)
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    attempt(session.client("iam").delete_role, RoleName=ROLE_NAME)
