"""The one place that builds AWS clients and wires them into the domain objects.

Every Lambda function builds its services on first use (app.py's ``services``), but uses only a
part of them: the stream-token signer (a Secrets Manager read), the webhook dispatcher (a KMS
client, httpx) and the fan-out (powertools' batch utility, EventBridge) are built, and their modules
imported, when a function first asks for them, so a task function's cold start pays for none of it
(docs/operations.md § Cold starts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import boto3
from botocore.config import Config

from .config import Settings
from .http.gate import Gate
from .kinds import load_plugins
from .orchestration.engine import Orchestrator
from .persistence.activity import ActivityLog
from .persistence.apikeys import ApiKeyRegistry
from .persistence.executions import DynamoStore
from .persistence.quotas import TenantQuotas
from .persistence.sfn import StepFunctions
from .redact import Redactor, redact_log_records
from .stream.auth import TokenSigner
from .tenants import Tenants
from .webhooks.store import WebhookStore

if TYPE_CHECKING:
    from .fanout import FanOut
    from .webhooks.dispatcher import Dispatcher

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=64)


class Services:
    """What the functions use. The first five are built with it; ``signer``, ``dispatcher`` and
    ``fanout`` on first use, once."""

    def __init__(
        self, settings: Settings, store: DynamoStore, orchestrator: Orchestrator, webhooks: WebhookStore,
        gate: Gate, client: Callable[[str], Any],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.orchestrator = orchestrator
        self.webhooks = webhooks
        self.gate = gate  # the REST API's keys, rate and CORS allow-list
        self._signer = BuiltOnce(lambda: _signer(settings))
        self._dispatcher = BuiltOnce(lambda: _dispatcher(settings, webhooks, client))
        self._fanout = BuiltOnce(
            lambda: _fanout(
                settings, webhooks, self.dispatcher, client, store.execution_tenant, store.activity
            )
        )

    @property
    def tenants(self) -> Tenants:
        """Per-tenant quotas and capabilities: the orchestrator's, which enforces most of them."""
        return self.orchestrator.tenants

    @property
    def signer(self) -> TokenSigner | None:
        return self._signer()

    @property
    def dispatcher(self) -> Dispatcher | None:
        """None while webhooks are off (no DAGCAST_WEBHOOK_KMS_KEY)."""
        return self._dispatcher()

    @property
    def fanout(self) -> FanOut:
        return self._fanout()

    def close(self) -> None:
        """Stop what these services run in the background: the dispatcher's lane threads (after
        the lanes in hand) and the sender's connections. For the owner that stops; a Lambda never does."""
        dispatcher = self._dispatcher.built()
        if dispatcher is not None:
            dispatcher.close()
            dispatcher.sender.close()


def _signer(settings: Settings) -> TokenSigner | None:
    return TokenSigner(settings.stream_key(), settings.token_ttl_seconds) if settings.auth else None


def _dispatcher(
    settings: Settings, webhooks: WebhookStore, client: Callable[[str], Any]
) -> Dispatcher | None:
    if not settings.webhook_kms_key:
        return None
    from .webhooks.dispatcher import DeliveryBackoff, Dispatcher
    from .webhooks.secrets import SecretBox
    from .webhooks.sender import Sender

    box = SecretBox(client("kms"), settings.webhook_kms_key)
    sender = Sender(settings.webhook_timeout_seconds)
    return Dispatcher(webhooks, box, sender, DeliveryBackoff.from_settings(settings))


def _fanout(
    settings: Settings,
    webhooks: WebhookStore,
    dispatcher: Dispatcher | None,
    client: Callable[[str], Any],
    tenant_of: Callable[[str], str | None],
    activity: ActivityLog | None = None,
) -> FanOut:
    from .fanout import FanOut

    eventbridge = client("events") if settings.event_bus else None
    return FanOut(
        webhooks if dispatcher else None,
        dispatcher,
        eventbridge,
        settings.event_bus,
        settings.webhook_inline_seconds,
        tenant_of=tenant_of,
        publish_progress=settings.event_bus_progress,
        activity=activity,
    )


def build_store(settings: Settings, session: boto3.Session | None = None) -> DynamoStore:
    """The store alone: what the SSE function reads with."""
    dynamodb = (session or boto3.Session()).client("dynamodb", config=_CLIENT_CONFIG)
    return DynamoStore(dynamodb, settings.table_name, Redactor(settings.redact_keys))


def build_services(settings: Settings | None = None, session: boto3.Session | None = None) -> Services:
    settings = settings or Settings.from_env()
    load_plugins(settings.plugins)
    session = session or boto3.Session()
    lock = threading.Lock()  # a boto3 session makes clients one thread at a time

    def client(service: str) -> Any:
        with lock:
            return session.client(service, config=_CLIENT_CONFIG)  # type: ignore[call-overload]

    dynamodb = client("dynamodb")
    store = DynamoStore(dynamodb, settings.table_name, Redactor(settings.redact_keys))
    # every log line of the process (ours and the libraries': httpx logs each URL it calls)
    redact_log_records(store.redactor)
    webhooks = WebhookStore(dynamodb, settings.table_name, settings.webhook_retention_days)
    orchestrator = Orchestrator(
        store,
        StepFunctions(client("stepfunctions")),
        settings.state_machine_arn,
        event_preview_chars=settings.event_preview_chars,
        ceiling_seconds=settings.execution_ceiling_seconds,
        retention_days=settings.retention_days,
        quotas=TenantQuotas(dynamodb, settings.table_name),
        tenants=settings.tenant_policies(),
    )
    registry = ApiKeyRegistry(dynamodb, settings.table_name) if settings.api_key_store else None
    return Services(settings, store, orchestrator, webhooks, Gate(settings, registry), client)


T = TypeVar("T")


class BuiltOnce(Generic[T]):
    """``build()`` called once, its result kept: ``functools.cache`` for a no-argument builder, but
    callers that arrive while it runs wait for that result instead of each building their own. In a
    Lambda one invocation runs at a time; the local stack serves requests and runs the stream poller
    and retry function on many threads, and each Services is a boto3 session with its clients
    (~15 MB): a burst of first calls must not build one apiece and keep them all."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def built(self) -> T | None:
        """The value if it has been built, without building it (for an owner that closes it)."""
        return self._value

    def cache_clear(self) -> None:
        """Build anew on the next call (tests and the local stack, after the environment changed)."""
        with self._lock:
            self._value = None
