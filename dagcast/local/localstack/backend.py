"""The LocalStack backend of ``dagcast up --backend localstack``: provision, then serve.

``LocalStackBackend`` checks that LocalStack can run dagcast (connection.py), builds the Lambda zip
(package.py), creates or updates every resource (provision.py) in that order, and while ``up``
runs invokes the webhook retry Lambda every ``retry_interval_seconds`` (an EventBridge rule would
keep firing into LocalStack after ``up`` exits). ``cmd_up`` then serves the REST API and the SSE
app in this process (dagcast/local/server.py), reaching LocalStack like any AWS client.

It runs no Lambda and polls no stream itself: LocalStack runs the functions in its containers,
and its own event source mapping delivers stream records to the fan-out Lambda.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import ASL_FUNCTIONS, render_definition

from ..lambdas import REGION, RETRY, function_name, scheduled_event
from .connection import check_health, endpoint_from_env, localstack_session
from .errors import LocalStackError
from .package import build_lambda_zip
from .provision import (
    TIMEOUT_SECONDS,
    delete_resources,
    ensure_failure_queue,
    ensure_functions,
    ensure_kms_key,
    ensure_mapping,
    ensure_role,
    ensure_state_machine,
    ensure_table,
    function_environment,
    state_machine_arn,
)

log = logging.getLogger("dagcast.localstack")


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
        role_arn = ensure_role(session)
        self.kms_key_arn = ensure_kms_key(session)
        self.stream_arn = ensure_table(session, self.table_name, self.progress)
        failures_arn = ensure_failure_queue(session)
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
        self.function_arns = ensure_functions(
            session, package.read_bytes(), role_arn, environment, self.progress
        )
        arns = {key: self.function_arns[name] for key, name in ASL_FUNCTIONS.items()}
        ensure_state_machine(session, self.state_machine_arn, render_definition(arns), role_arn)
        self.mapping_uuid = ensure_mapping(
            session, self.stream_arn, failures_arn, self.fanout_batch_size, self.fanout_batch_window_seconds
        )
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
        delete_resources(session, self.table_name, state_machine_arn(account, self.region))

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


def cmd_up(host: str, port: int, verbose: bool, stack_options: dict[str, Any] | None = None) -> int:
    """Provision into LocalStack, then serve the REST API and SSE on host:port until Ctrl-C."""
    from ..server import http_server, print_banner

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
