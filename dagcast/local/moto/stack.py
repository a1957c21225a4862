"""Provision and run the embedded local stack: moto's server as AWS, in this process.

``MotoStack.start()`` starts moto's server on 127.0.0.1 (a free port), turns on its Step
Functions interpreter, runs the task Lambdas in-process (invoker.py), applies dagcast's patches
to moto (patches/), creates the table, the functions and the real state machine definition
(invoking published versions of the functions, as `dagcast deploy` makes it: ``deploy_code``),
serves this process's boto3 calls from moto's backends directly (other processes use the server:
``local_environment``), and starts the stream poller (reading the shard from moto's backend, as
AWS's mapping reads it inside AWS: shard_reader.py), the webhook retry schedule and the
reconciler (executions Step Functions ended without Finalize; reconciler.py). Nothing here
needs an AWS account, Docker or a network beyond loopback; nothing here serves dagcast's own HTTP
API (dagcast/local/server.py does).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

from chalicelib.config import ASL_FUNCTIONS, render_definition
from chalicelib.persistence.keys import table_definition

from ...deploy.versions import qualified
from ..lambdas import APP, FANOUT, RECONCILE, REGION, RETRY, STAGE, function_name, scheduled_event
from .invoker import Handler, InProcessInvoker
from .patches import apply_all
from .patches.in_process_dispatch import dispatch_in_process
from .patches.stream_wakeups import on_stream_write
from .poller import FileCheckpoints, OnFailure, StreamPoller, is_event_insert
from .reconciler import Reconciler
from .shard_reader import MotoShardReader


def local_environment(endpoint: str, port: int) -> dict[str, str]:
    """The environment that points a process's boto3 (and moto's interpreter) at the stack."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # boto3 ≥ 1.40 would send DynamoDB calls to an account-based endpoint moto does not serve.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        # moto's Step Functions interpreter calls Lambda and DynamoDB at localhost:$MOTO_PORT.
        "MOTO_PORT": str(port),
    }


@dataclass
class MotoStack:
    """moto's server, the resources in it and the threads around it (poller, retry schedule)."""

    table_name: str = "dagcast-local"
    handlers: dict[str, Handler] = field(default_factory=dict)
    fanout_batch_size: int = 100
    fanout_batch_window_seconds: float = 0.0
    fanout_max_retry_attempts: int = 10  # template.yaml's MaximumRetryAttempts; -1: without limit
    retry_interval_seconds: float = 0.5  # how often the webhook retry function runs here
    reconcile_interval_seconds: float = 1.0  # how often ended executions are looked for (reconciler.py)
    state_dir: str = ""  # the poller's checkpoints; a fresh temporary directory when empty
    endpoint: str = ""
    state_machine_arn: str = ""
    _server: Any = None
    _invoker: InProcessInvoker | None = None
    poller: StreamPoller | None = None
    reconciler: Reconciler | None = None
    _retry_stop: threading.Event = field(default_factory=threading.Event)
    _retry_thread: threading.Thread | None = None
    _role_arn: str = ""
    # the state machine's functions: template parameter → unqualified ARN, and the version invoked
    _asl_arns: dict[str, str] = field(default_factory=dict)
    pinned: dict[str, str] = field(default_factory=dict)
    _unwake: Callable[[], None] = lambda: None  # unregisters the poller's wake-up on writes

    def start(self) -> MotoStack:
        if not self.handlers:
            self.handlers = default_handlers()
        self._start_server()
        self._invoker = InProcessInvoker({function_name(n): h for n, h in self.handlers.items()})
        self._invoker.install()
        apply_all()
        session = boto3.Session(region_name=REGION)
        stream_arn = self._provision(session)
        self._export_settings(session)
        self.state_dir = self.state_dir or tempfile.mkdtemp(prefix="dagcast-state-")
        if self.handlers.get(FANOUT) is not None:
            self.start_poller(stream_arn)
        reconcile = self.handlers.get(RECONCILE)
        if reconcile is not None:
            self.reconciler = Reconciler(
                session.client("stepfunctions"),
                self.state_machine_arn,
                reconcile,
                self.reconcile_interval_seconds,
            )
            self.reconciler.start()
        retry = self.handlers.get(RETRY)
        if retry is not None:
            self._retry_thread = threading.Thread(target=self._run_retries, args=(retry,), daemon=True)
            self._retry_thread.start()
        return self

    def _start_server(self) -> None:
        """moto's server on a free loopback port, its Step Functions interpreter on."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        os.environ.update(local_environment(self.endpoint, port))
        # This process reaches moto in-process; other processes use self.endpoint (HTTP).
        os.environ.pop("AWS_ENDPOINT_URL")
        dispatch_in_process()
        httpx.post(
            f"{self.endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}
        ).raise_for_status()

    def _provision(self, session: boto3.Session) -> str:
        """The functions, the table and the state machine; the table's stream ARN."""
        self._asl_arns = self._create_functions(session)
        stream_arn = self._create_table(session)
        sfn = session.client("stepfunctions")
        self.state_machine_arn = sfn.create_state_machine(
            name=f"{APP}-{STAGE}-dag",
            definition=self._publish_versions(session),
            roleArn=self._role_arn,
            type="STANDARD",
        )["stateMachineArn"]
        return stream_arn

    def _publish_versions(self, session: boto3.Session) -> str:
        """A version of each function the state machine invokes; the definition invoking them."""
        awslambda = session.client("lambda")
        for param, arn in self._asl_arns.items():
            self.pinned[param] = awslambda.publish_version(FunctionName=arn)["Version"]
        return render_definition({p: qualified(a, self.pinned[p]) for p, a in self._asl_arns.items()})

    def deploy_code(self, handlers: Mapping[str, Handler]) -> None:
        """What `dagcast deploy` does to a live stage, here: the versions invoked so far keep their
        code; ``$LATEST`` gets ``handlers`` (new code, by function name); a new version of each is
        published and the state machine's definition moved to them. Executions already running
        keep their definition, and so their versions (moto copies the state machine at
        StartExecution, as Step Functions keeps an execution's definition)."""
        assert self._invoker is not None, "start() the stack first"
        session = boto3.Session(region_name=REGION)
        awslambda = session.client("lambda")
        for param, arn in self._asl_arns.items():
            name = ASL_FUNCTIONS[param]
            current = self._invoker.handler(function_name(name))
            if name in handlers and current is not None:
                self._invoker.freeze(function_name(name), self.pinned[param], current)
                self._invoker.set_handler(function_name(name), handlers[name])
                self.handlers[name] = handlers[name]
            # a code update, as chalice deploy makes it (moto publishes only after a change)
            awslambda.update_function_configuration(FunctionName=arn, Description=secrets.token_hex(4))
        definition = self._publish_versions(session)
        session.client("stepfunctions").update_state_machine(
            stateMachineArn=self.state_machine_arn, definition=definition
        )

    def _export_settings(self, session: boto3.Session) -> None:
        """dagcast's settings for the handlers in this process (and, shared, for the front)."""
        os.environ["DAGCAST_TABLE"] = self.table_name
        # Stream tokens are signed with a fresh random secret unless one is given.
        os.environ.setdefault("DAGCAST_STREAM_SECRET", secrets.token_urlsafe(32))
        os.environ["DAGCAST_STATE_MACHINE_ARN"] = self.state_machine_arn
        # Webhook secrets are encrypted with a key of the embedded KMS; endpoints may be http://.
        kms = session.client("kms")
        os.environ["DAGCAST_WEBHOOK_KMS_KEY"] = kms.create_key(Description="dagcast webhook secrets")[
            "KeyMetadata"
        ]["KeyId"]
        os.environ.setdefault("DAGCAST_WEBHOOK_ALLOW_HTTP", "1")
        os.environ.setdefault("DAGCAST_WEBHOOK_SWEEP_SECONDS", "0")  # one pass per tick (below)
        # EMF metric lines would flood the console; set it to false to see them.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

    def shared_environment(self) -> dict[str, str]:
        """What another process (``dagcast up``'s HTTP front) needs to reach this stack's resources."""
        names = (
            "DAGCAST_TABLE",
            "DAGCAST_STATE_MACHINE_ARN",
            "DAGCAST_WEBHOOK_KMS_KEY",
            "DAGCAST_WEBHOOK_ALLOW_HTTP",
        )
        return {n: os.environ[n] for n in names if n in os.environ}

    def start_poller(self, stream_arn: str | None = None) -> StreamPoller:
        """(Re)start the stream poller; it resumes after its last checkpoint."""
        if stream_arn is None:
            assert self.poller is not None
            stream_arn = self.poller.stream_arn
        # One filter for both: the reader copies whole only the records the poller delivers
        # (the others come with their place alone, which must never reach the handler).
        accept = is_event_insert
        self.poller = StreamPoller(
            MotoShardReader(keep=accept),
            stream_arn,
            self.handlers[FANOUT],
            batch_size=self.fanout_batch_size,
            batch_window_seconds=self.fanout_batch_window_seconds,
            checkpoints=FileCheckpoints(os.path.join(self.state_dir, "stream-checkpoints.json")),
            accept=accept,
            max_retries=self.fanout_max_retry_attempts,
            on_failure=OnFailure(os.path.join(self.state_dir, "stream-failures.jsonl")),
        )
        self._unwake()
        self._unwake = on_stream_write(self.poller.wake)
        self.poller.start()
        return self.poller

    def _run_retries(self, handler: Handler) -> None:
        while not self._retry_stop.wait(self.retry_interval_seconds):
            try:
                handler(scheduled_event(), None)
            except Exception:
                logging.getLogger(__name__).exception("webhook retry function failed")

    @property
    def invoker(self) -> InProcessInvoker | None:
        return self._invoker

    @contextlib.contextmanager
    def handler_override(self, name: str, handler: Handler) -> Iterator[Handler]:
        """Temporarily run ``handler`` for function ``name``; yields the real one (for fault tests)."""
        assert self._invoker is not None, "start() the stack first"
        real = self.handlers[name]
        self._invoker.set_handler(function_name(name), handler)
        try:
            yield real
        finally:
            self._invoker.set_handler(function_name(name), real)

    def add_function(self, name: str, handler: Handler) -> str:
        """Create a user Lambda ``name`` (run in-process by ``handler``); its ARN (lambda kind)."""
        assert self._invoker is not None, "start() the stack first"
        self._invoker.set_handler(name, handler)
        awslambda = boto3.Session(region_name=REGION).client("lambda")
        return str(
            awslambda.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=self._role_arn,
                Handler="app.handler",
                Code={"ZipFile": _placeholder_zip()},
                Timeout=60,
            )["FunctionArn"]
        )

    def fanout_stats(self) -> dict[str, Any] | None:
        p = self.poller.stats if self.poller else None
        if p is None:
            return None
        return {
            "batches": p.batches,
            "recordsDelivered": p.records_delivered,
            "eventsDelivered": p.events_delivered,
            "failuresReported": p.failures_reported,
            "recordsGivenUp": p.records_given_up,
        }

    def stop(self) -> None:
        self._retry_stop.set()
        if self._retry_thread is not None:
            self._retry_thread.join(timeout=30)
        if self.reconciler is not None:
            self.reconciler.stop()
        self._unwake()
        if self.poller is not None:
            self.poller.stop()
        if self._invoker is not None:
            self._invoker.uninstall()
        if self._server is not None:
            self._server.stop()
        dispatch_in_process(False)
        _close_app_services()
        # moto's backends are this process's globals and outlive the server: the stack's resources
        # go with it, so a stack started later in the process (a test worker that moves on to
        # another package's tests, then back) creates its role, functions and table afresh.
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def _create_functions(self, session: boto3.Session) -> dict[str, str]:
        iam = session.client("iam")
        self._role_arn = iam.create_role(
            RoleName=f"{APP}-{STAGE}",
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
        )["Role"]["Arn"]
        awslambda = session.client("lambda")
        arns: dict[str, str] = {}
        for name in self.handlers:
            arn = awslambda.create_function(
                FunctionName=function_name(name),
                Runtime="python3.12",
                Role=self._role_arn,
                Handler=f"app.{name}",
                Code={"ZipFile": _placeholder_zip()},
                Timeout=900,
            )["FunctionArn"]
            for key, fn in ASL_FUNCTIONS.items():
                if fn == name:
                    arns[key] = arn
        return arns

    def _create_table(self, session: boto3.Session) -> str:
        ddb = session.client("dynamodb")
        out = ddb.create_table(**table_definition(self.table_name))
        return str(out["TableDescription"]["LatestStreamArn"])


def _placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "# handlers run in-process; see dagcast/local/moto/invoker.py\n")
    return buf.getvalue()


def _close_app_services() -> None:
    """Stop the Chalice app's services with the stack: the webhook dispatcher's lane threads and
    the sender's connections belong to the stack's lifetime, not the process's. The next call of
    ``app.services()`` builds fresh ones."""
    app = sys.modules.get("app")  # only when the stack ran the app's handlers
    if app is None or (services := app.services.built()) is None:
        return
    services.close()
    app.services.cache_clear()


def default_handlers() -> dict[str, Handler]:
    import app  # the Chalice app: imported late, after the environment points at the local stack

    app.services.cache_clear()
    return {
        "register_task": app.register_task,
        "run_task": app.run_task,
        "record_failure": app.record_failure,
        "finalize": app.finalize,
        FANOUT: app.fanout_handler,
        RETRY: app.webhook_retry,
        RECONCILE: app.reconcile_execution,
    }
