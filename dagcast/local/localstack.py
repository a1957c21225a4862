"""Provision dagcast into a running LocalStack and serve it: ``dagcast up --backend localstack``.

The moto backend (stack.py) emulates Lambda in-process; this one deploys the real thing into
LocalStack (the endpoint in ``$LOCALSTACK_ENDPOINT``, default http://localhost:4566) through
``localstack_client`` sessions:

- the events table (``chalicelib.store.table_definition``) with TTL on ``expiresAt``;
- an IAM role, a KMS key (alias ``alias/dagcast-local-webhooks``) for webhook secrets and the
  fan-out's on-failure SQS queue;
- every Chalice Lambda of app.py (``dagcast-local-register_task`` … ``-fanout``,
  ``-webhook_retry``) from one zip: app.py, chalicelib/, Chalice's runtime module and the
  requirements.txt dependencies installed for Linux x86_64 / CPython 3.12 (cached by a hash of
  all of it, ``build_lambda_zip``);
- the state machine (``render_definition`` with the functions' ARNs);
- the stream → fan-out event source mapping, with template.yaml's filter, batch-item failures,
  bisection, retries and on-failure queue.

Every step creates or updates, so ``up`` can be run again against the same LocalStack. The REST
API and the SSE app run in this process (server.py), reaching LocalStack like any AWS client;
LocalStack's own mapping delivers stream records to the fan-out Lambda, and a thread here invokes
the webhook retry Lambda every ``retry_interval_seconds`` while ``up`` runs (an EventBridge rule
would keep firing into LocalStack after ``up`` exits).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import ASL_FUNCTIONS, render_definition
from chalicelib.persistence.keys import table_definition
from chalicelib.persistence.table import error_code

from .stack import APP, FANOUT, REGION, RETRY, STAGE, function_name, scheduled_event

DEFAULT_ENDPOINT = "http://localhost:4566"
ENDPOINT_VARIABLE = "LOCALSTACK_ENDPOINT"
STATE_MACHINE_NAME = f"{APP}-{STAGE}-dag"
ROLE_NAME = f"{APP}-{STAGE}-lambda"
KEY_ALIAS = f"alias/{APP}-{STAGE}-webhooks"
FAILURE_QUEUE = f"{APP}-{STAGE}-fanout-failures"
TTL_ATTRIBUTE = "expiresAt"

# What the Lambdas run on, in LocalStack as in AWS (template.yaml, `chalice deploy`).
RUNTIME = "python3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_PYTHON_VERSION = "3.12"
MEMORY_MB = 512
# Timeouts as in .chalice/config.json (a test compares them).
DEFAULT_TIMEOUT_SECONDS = 60
TIMEOUT_SECONDS = {
    "run_task": 900,
    "record_failure": 180,
    "finalize": 180,
    "fanout": 300,
    "webhook_retry": 90,
}
# Lambda's limits for a deployment package uploaded directly.
ZIPPED_LIMIT_BYTES = 50 * 1024 * 1024
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# Bump when the zip's layout changes: cached zips of an older layout are not reused.
ZIP_FORMAT = "1"

# template.yaml's FanoutMapping (a test compares them): only new event items reach the fan-out.
FANOUT_FILTER_PATTERN = '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"SK": {"S": [{"prefix": "EVT#"}]}}}}'
FANOUT_MAXIMUM_RETRY_ATTEMPTS = 10

# Services `up` uses; LocalStack's health endpoint must list each as usable.
REQUIRED_SERVICES = ("dynamodb", "dynamodbstreams", "iam", "kms", "lambda", "sqs", "stepfunctions", "sts")
USABLE_STATES = ("available", "running", "starting", "stopped")
START_HINT = (
    "start it with `localstack start -d` (needs Docker, and LOCALSTACK_AUTH_TOKEN for current "
    f"LocalStack images; docs/local-mode.md#localstack), or set {ENDPOINT_VARIABLE} to where it runs"
)

log = logging.getLogger("dagcast.localstack")


class LocalStackError(RuntimeError):
    """LocalStack is not there, not usable, or refused what dagcast asked of it."""


def endpoint_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT).strip().rstrip("/")


def check_health(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """LocalStack's ``/_localstack/health`` answer; ``LocalStackError`` if it is not usable for dagcast."""
    url = f"{endpoint}/_localstack/health"
    try:
        reply = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LocalStackError(
            f"no LocalStack answers at {endpoint} (GET {url}: {type(exc).__name__}: {exc}); {START_HINT}"
        ) from exc
    if reply.status_code != 200:
        raise LocalStackError(
            f"{endpoint} is not a LocalStack: GET {url} answered {reply.status_code}; {START_HINT}"
        )
    try:
        health: dict[str, Any] = reply.json()
        services: dict[str, str] = health["services"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStackError(f"{endpoint} is not a LocalStack: GET {url} gave no service list") from exc
    unusable = {s: services.get(s, "missing") for s in REQUIRED_SERVICES}
    # LocalStack starts an "available" (or "stopped") service on its first call.
    unusable = {s: state for s, state in unusable.items() if state not in USABLE_STATES}
    if unusable:
        listed = ", ".join(f"{s} ({state})" for s, state in sorted(unusable.items()))
        raise LocalStackError(
            f"LocalStack at {endpoint} cannot run dagcast: {listed}; dagcast needs "
            f"{', '.join(REQUIRED_SERVICES)} (leave SERVICES unset, or list them all)"
        )
    return health


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def localstack_session(endpoint: str, region: str = REGION) -> Any:
    """A ``localstack_client`` session whose every client talks to ``endpoint``.

    localstack-client resolves its endpoints once, preferring ``$AWS_ENDPOINT_URL`` over
    ``$LOCALSTACK_HOST``: it is set to ``endpoint`` while the session is made, whatever the
    environment says. Credentials ``test``/``test`` put everything in LocalStack's default account
    000000000000.
    """
    from localstack_client.session import Session

    with _environment(AWS_ENDPOINT_URL=endpoint):
        return Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)


# --- the deployment package -------------------------------------------------------------------


def project_root() -> Path:
    """The checkout holding app.py, chalicelib/ and requirements.txt (what Chalice would package)."""
    import app

    root = Path(app.__file__).resolve().parent
    if not (root / "requirements.txt").is_file() or not (root / "chalicelib").is_dir():
        raise LocalStackError(
            f"the LocalStack backend builds its Lambda zip from a source checkout; {root} has no "
            "requirements.txt and chalicelib/ beside app.py"
        )
    return root


def default_build_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dagcast" / "lambda-zips"


def lambda_sources(root: Path) -> list[tuple[str, bytes]]:
    """(path in the zip, content) of dagcast's own code, as `chalice package` lays it out."""
    import chalice
    import chalice.app

    files = [
        ("app.py", (root / "app.py").read_bytes()),
        # Chalice ships its runtime module with every function (chalice/deploy/packager.py).
        ("chalice/__init__.py", Path(chalice.__file__).read_bytes()),
        ("chalice/app.py", Path(chalice.app.__file__).read_bytes()),
    ]
    lib = root / "chalicelib"
    for path in sorted(lib.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((f"chalicelib/{path.relative_to(lib).as_posix()}", path.read_bytes()))
    return files


def zip_cache_key(sources: list[tuple[str, bytes]], requirements: bytes) -> str:
    digest = hashlib.sha256()
    for part in (ZIP_FORMAT, LAMBDA_PLATFORM, LAMBDA_PYTHON_VERSION):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(requirements).digest())
    for name, content in sources:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes → same CodeSha256
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _skip_dependency(rel: Path) -> bool:
    return rel.parts[0] == "bin" or "__pycache__" in rel.parts or rel.suffix == ".pyc"


def build_lambda_zip(root: Path | None = None, build_dir: Path | None = None) -> Path:
    """The deployment package of every dagcast Lambda; reused while sources and requirements match.

    Dependencies come from ``pip install --target --platform manylinux2014_x86_64 --only-binary=:all:
    --python-version 3.12 -r requirements.txt`` (wheels for Lambda's Linux, whatever this machine is).
    """
    root = root or project_root()
    build_dir = build_dir or default_build_dir()
    requirements = (root / "requirements.txt").read_bytes()
    sources = lambda_sources(root)
    out = build_dir / f"dagcast-lambda-{zip_cache_key(sources, requirements)[:20]}.zip"
    if out.is_file():
        return out
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=build_dir) as tmp:
        deps = Path(tmp) / "deps"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(deps), "--platform", LAMBDA_PLATFORM, "--implementation",
            "cp", "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:",
            "-r", str(root / "requirements.txt"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"pip could not install requirements.txt for Lambda ({RUNTIME}, {LAMBDA_PLATFORM}):\n"
                + (done.stderr or done.stdout)[-3000:]
            )
        unzipped = 0
        partial = Path(tmp) / "lambda.zip"
        with zipfile.ZipFile(partial, "w", compresslevel=9) as zf:
            for path in sorted(deps.rglob("*")):
                rel = path.relative_to(deps)
                if path.is_file() and not _skip_dependency(rel):
                    content = path.read_bytes()
                    unzipped += len(content)
                    zf.writestr(_zip_entry(rel.as_posix()), content)
            for name, content in sources:
                unzipped += len(content)
                zf.writestr(_zip_entry(name), content)
        zipped = partial.stat().st_size
        if zipped > ZIPPED_LIMIT_BYTES or unzipped > UNZIPPED_LIMIT_BYTES:
            raise LocalStackError(
                f"the Lambda zip is {zipped / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped: "
                "over Lambda's 50 MB / 250 MB limits"
            )
        os.replace(partial, out)
    return out


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
        "Timeout": TIMEOUT_SECONDS.get(name, DEFAULT_TIMEOUT_SECONDS),
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


# --- the backend ------------------------------------------------------------------------------


@dataclass
class LocalStackBackend:
    """dagcast's resources in a LocalStack; what ``create_app`` needs of a stack (server.py)."""

    endpoint: str = field(default_factory=endpoint_from_env)
    table_name: str = "dagcast-local"
    region: str = REGION
    fanout_batch_size: int = 100
    fanout_batch_window_seconds: float = 0.0
    retry_interval_seconds: float = 2.0  # how often the webhook retry Lambda is invoked while up runs
    stream_secret: str = ""  # $DAGCAST_STREAM_SECRET, or a fresh random one
    build_dir: Path | None = None  # where Lambda zips are cached (default ~/.cache/dagcast/lambda-zips)
    lambda_endpoint_url: str = ""  # AWS_ENDPOINT_URL inside the Lambdas; empty: LocalStack's own
    progress: Callable[[str], None] = field(default=lambda message: log.info("%s", message))
    # filled in by provision()
    state_machine_arn: str = ""
    kms_key_arn: str = ""
    stream_arn: str = ""
    mapping_uuid: str = ""
    version: str = ""
    account: str = ""
    function_arns: dict[str, str] = field(default_factory=dict)
    _session: Any = None
    _lambda: Any = None
    _retry_stop: threading.Event = field(default_factory=threading.Event)
    _retry_thread: threading.Thread | None = None
    _retry_passes: int = 0
    _retry_failures: int = 0

    def start(self) -> LocalStackBackend:
        """Provision (create or update everything), then run the webhook retry schedule."""
        self.provision()
        self._retry_thread = threading.Thread(target=self._run_retries, name="dagcast-retry", daemon=True)
        self._retry_thread.start()
        return self

    def provision(self) -> LocalStackBackend:
        health = check_health(self.endpoint)
        self.version = str(health.get("version", ""))
        self.stream_secret = (
            self.stream_secret or os.environ.get("DAGCAST_STREAM_SECRET") or secrets.token_urlsafe(32)
        )
        session = self.session()
        self.account = str(session.client("sts").get_caller_identity()["Account"])
        self.state_machine_arn = state_machine_arn(self.account, self.region)
        self.progress(f"LocalStack {self.version or '(version unknown)'} at {self.endpoint}")
        role_arn = self._role(session)
        self.kms_key_arn = self._kms_key(session)
        self.stream_arn = self._table(session)
        failures_arn = self._queue(session)
        self.progress("building the Lambda zip (app.py, chalicelib/, requirements.txt for Linux x86_64)…")
        package = build_lambda_zip(build_dir=self.build_dir)
        environment = function_environment(
            self.table_name,
            self.state_machine_arn,
            self.stream_secret,
            self.kms_key_arn,
            os.environ,
            self.lambda_endpoint_url,
        )
        self.function_arns = self._functions(session, package.read_bytes(), role_arn, environment)
        arns = {key: self.function_arns[name] for key, name in ASL_FUNCTIONS.items()}
        self._state_machine(session, render_definition(arns), role_arn)
        self.mapping_uuid = self._mapping(session, failures_arn)
        self.progress(f"ready: table {self.table_name}, state machine {self.state_machine_arn}")
        return self

    def session(self) -> Any:
        if self._session is None:
            self._session = localstack_session(self.endpoint, self.region)
        return self._session

    def shared_environment(self) -> dict[str, str]:
        """What the process serving the REST API and SSE needs to reach these resources."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "DAGCAST_TABLE": self.table_name,
            "DAGCAST_STATE_MACHINE_ARN": self.state_machine_arn,
            "DAGCAST_STREAM_SECRET": self.stream_secret,
            "DAGCAST_WEBHOOK_KMS_KEY": self.kms_key_arn,
            "DAGCAST_WEBHOOK_ALLOW_HTTP": os.environ.get("DAGCAST_WEBHOOK_ALLOW_HTTP", "1"),
        }

    def fanout_stats(self) -> dict[str, Any] | None:
        """For ``GET /local/stats``: the mapping's state as LocalStack reports it, and the retry passes."""
        stats: dict[str, Any] = {
            "backend": "localstack",
            "retryPasses": self._retry_passes,
            "retryFailures": self._retry_failures,
        }
        if self.mapping_uuid:
            try:
                m = self._stats_client().get_event_source_mapping(UUID=self.mapping_uuid)
                stats["eventSourceMapping"] = {
                    "uuid": self.mapping_uuid,
                    "state": m.get("State"),
                    "lastProcessingResult": m.get("LastProcessingResult"),
                }
            except (ClientError, BotoCoreError) as exc:
                stats["eventSourceMapping"] = {"uuid": self.mapping_uuid, "error": str(exc)}
        return stats

    def _stats_client(self) -> Any:
        if self._lambda is None:
            self._lambda = self.session().client("lambda", config=Config(connect_timeout=2, read_timeout=5))
        return self._lambda

    def stop(self) -> None:
        """Stops the retry schedule; the resources stay in LocalStack (``destroy()`` removes them)."""
        self._retry_stop.set()
        if self._retry_thread is not None:
            self._retry_thread.join(timeout=TIMEOUT_SECONDS[RETRY] + 10)

    def destroy(self) -> None:
        """Delete everything ``provision()`` made (the mapping, functions, state machine, table, ...)."""
        check_health(self.endpoint)
        session = self.session()
        account = str(session.client("sts").get_caller_identity()["Account"])
        awslambda = session.client("lambda")
        gone = ("ResourceNotFoundException", "NoSuchEntity", "NotFoundException", "StateMachineDoesNotExist")

        def attempt(call: Callable[..., Any], **kwargs: Any) -> None:
            try:
                call(**kwargs)
            except ClientError as exc:
                if error_code(exc) not in gone:
                    raise

        for m in awslambda.list_event_source_mappings(FunctionName=function_name(FANOUT))[
            "EventSourceMappings"
        ]:
            attempt(awslambda.delete_event_source_mapping, UUID=m["UUID"])
        for name in lambda_handlers():
            attempt(awslambda.delete_function, FunctionName=function_name(name))
        sfn = session.client("stepfunctions")
        attempt(sfn.delete_state_machine, stateMachineArn=state_machine_arn(account, self.region))
        attempt(session.client("dynamodb").delete_table, TableName=self.table_name)
        sqs = session.client("sqs")
        with contextlib.suppress(ClientError):  # no such queue
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=FAILURE_QUEUE)["QueueUrl"])
        kms = session.client("kms")
        with contextlib.suppress(ClientError):  # no such alias
            key = kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["KeyId"]
            kms.delete_alias(AliasName=KEY_ALIAS)
            kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
        attempt(session.client("iam").delete_role, RoleName=ROLE_NAME)

    # --- the resources, each created or brought up to date ------------------------------------

    def _role(self, session: Any) -> str:
        iam = session.client("iam")
        try:
            return str(
                iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_TRUST_POLICY)["Role"]["Arn"]
            )
        except ClientError as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise
            return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])

    def _kms_key(self, session: Any) -> str:
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

    def _table(self, session: Any) -> str:
        ddb = session.client("dynamodb")
        definition = table_definition(self.table_name)
        try:
            ddb.create_table(**definition)
            self.progress(f"created table {self.table_name}")
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
        ddb.get_waiter("table_exists").wait(TableName=self.table_name)
        table = ddb.describe_table(TableName=self.table_name)["Table"]
        if not table.get("StreamSpecification", {}).get("StreamEnabled"):
            table = ddb.update_table(
                TableName=self.table_name, StreamSpecification=definition["StreamSpecification"]
            )["TableDescription"]
        ttl = ddb.describe_time_to_live(TableName=self.table_name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            )
        return str(table["LatestStreamArn"])

    def _queue(self, session: Any) -> str:
        sqs = session.client("sqs")
        url = sqs.create_queue(QueueName=FAILURE_QUEUE, Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        return str(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        )

    def _functions(
        self, session: Any, code: bytes, role_arn: str, environment: dict[str, str]
    ) -> dict[str, str]:
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
                self.progress(f"creating function {fn}")
                arns[name] = str(awslambda.create_function(**config, Code={"ZipFile": code})["FunctionArn"])
                awslambda.get_waiter("function_active_v2").wait(FunctionName=fn)
                continue
            awslambda.get_waiter("function_active_v2").wait(FunctionName=fn)
            if current.get("CodeSha256") != sha:
                self.progress(f"updating the code of {fn}")
                awslambda.update_function_code(FunctionName=fn, ZipFile=code)
                awslambda.get_waiter("function_updated_v2").wait(FunctionName=fn)
            arns[name] = str(awslambda.update_function_configuration(**config)["FunctionArn"])
            awslambda.get_waiter("function_updated_v2").wait(FunctionName=fn)
        return arns

    def _state_machine(self, session: Any, definition: str, role_arn: str) -> None:
        sfn = session.client("stepfunctions")
        try:
            sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)
        except ClientError as exc:
            if error_code(exc) != "StateMachineDoesNotExist":
                raise
            made = sfn.create_state_machine(
                name=STATE_MACHINE_NAME, definition=definition, roleArn=role_arn, type="STANDARD"
            )["stateMachineArn"]
            if made != self.state_machine_arn:  # the functions were told this ARN
                raise LocalStackError(
                    f"LocalStack named the state machine {made}, not {self.state_machine_arn}"
                ) from None
            return
        sfn.update_state_machine(
            stateMachineArn=self.state_machine_arn, definition=definition, roleArn=role_arn
        )

    def _mapping(self, session: Any, failures_arn: str) -> str:
        awslambda = session.client("lambda")
        fn = function_name(FANOUT)
        wanted = event_source_mapping_arguments(
            self.stream_arn, fn, failures_arn, self.fanout_batch_size, self.fanout_batch_window_seconds
        )
        found = ""
        for m in awslambda.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]:
            if m.get("EventSourceArn") == self.stream_arn and not found:
                found = str(m["UUID"])
            else:  # a mapping of an older table's stream (the table was deleted and made again)
                awslambda.delete_event_source_mapping(UUID=m["UUID"])
        if not found:
            return str(awslambda.create_event_source_mapping(**wanted)["UUID"])
        update = {k: v for k, v in wanted.items() if k not in ("EventSourceArn", "StartingPosition")}
        awslambda.update_event_source_mapping(UUID=found, **update)
        return found

    # --- the webhook retry schedule -----------------------------------------------------------

    def _run_retries(self) -> None:
        awslambda = self.session().client(
            "lambda",
            config=Config(
                read_timeout=TIMEOUT_SECONDS[RETRY] + 30, retries={"mode": "standard", "max_attempts": 1}
            ),
        )
        while not self._retry_stop.wait(self.retry_interval_seconds):
            try:
                reply = awslambda.invoke(
                    FunctionName=function_name(RETRY),
                    Payload=json.dumps(scheduled_event(self.region, self.account)).encode(),
                )
                self._retry_passes += 1
                if reply.get("FunctionError"):
                    self._retry_failures += 1
                    log.warning("webhook retry function failed: %s", reply["Payload"].read()[:2000])
            except Exception:
                self._retry_failures += 1
                log.exception("could not invoke the webhook retry function")


# --- `dagcast up --backend localstack` --------------------------------------------------------


def cmd_up(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> int:
    """Provision into LocalStack, then serve the REST API and SSE on host:port until Ctrl-C."""
    from .server import http_server, print_banner

    def say(message: str) -> None:
        print(f"dagcast: {message}", file=sys.stderr, flush=True)

    backend = LocalStackBackend(progress=say, **(stack_options or {}))
    try:
        backend.start()
    except LocalStackError as exc:
        say(str(exc))
        return 2
    except (ClientError, BotoCoreError) as exc:  # LocalStack refused a call, or a waiter gave up
        say(f"provisioning into LocalStack at {backend.endpoint} failed: {type(exc).__name__}: {exc}")
        return 2
    os.environ.setdefault("DAGCAST_PUBLIC_URL", f"http://{host}:{port}")
    os.environ.update(backend.shared_environment())
    server = http_server(backend, host, port, verbose)
    print_banner(host, port, f"dagcast on LocalStack (at {backend.endpoint})")
    try:
        server.run()
    finally:
        backend.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dagcast.local.localstack destroy``: delete what ``up --backend localstack`` made."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["destroy"]:
        print("usage: python -m dagcast.local.localstack destroy", file=sys.stderr)
        return 2
    backend = LocalStackBackend()
    try:
        backend.destroy()
    except LocalStackError as exc:
        print(f"dagcast: {exc}", file=sys.stderr)
        return 2
    print(f"deleted dagcast's resources from LocalStack at {backend.endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
