"""The one place that builds AWS clients and wires them into the domain objects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import boto3
from botocore.config import Config

from .config import Settings
from .fanout import FanOut
from .http.gate import Gate
from .kinds import load_plugins
from .orchestration.engine import Orchestrator
from .persistence.executions import DynamoStore
from .persistence.sfn import StepFunctions
from .redact import Redactor, redact_log_records
from .stream.auth import TokenSigner
from .webhooks.dispatcher import DeliveryBackoff, Dispatcher
from .webhooks.secrets import SecretBox
from .webhooks.sender import Sender
from .webhooks.store import WebhookStore

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=64)


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: DynamoStore
    orchestrator: Orchestrator
    signer: TokenSigner | None
    webhooks: WebhookStore
    dispatcher: Dispatcher | None  # None while webhooks are off (no DAGCAST_WEBHOOK_KMS_KEY)
    fanout: FanOut
    gate: Gate  # the REST API's keys, rate and CORS allow-list

    def close(self) -> None:
        """Stop what these services run in the background: the dispatcher's lane threads (after
        the lanes in hand) and the sender's connections. For the owner that stops; a Lambda never does."""
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher.sender.close()


def build_services(settings: Settings | None = None, session: boto3.Session | None = None) -> Services:
    settings = settings or Settings.from_env()
    load_plugins(settings.plugins)
    session = session or boto3.Session()
    dynamodb = session.client("dynamodb", config=_CLIENT_CONFIG)
    store = DynamoStore(dynamodb, settings.table_name, Redactor(settings.redact_keys))
    # every log line of the process (ours and the libraries': httpx logs each URL it calls)
    redact_log_records(store.redactor)
    sfn = session.client("stepfunctions", config=_CLIENT_CONFIG)
    signer = TokenSigner(settings.stream_secret, settings.token_ttl_seconds) if settings.auth else None
    webhooks = WebhookStore(dynamodb, settings.table_name, settings.webhook_retention_days)
    dispatcher = None
    if settings.webhook_kms_key:
        box = SecretBox(session.client("kms", config=_CLIENT_CONFIG), settings.webhook_kms_key)
        sender = Sender(settings.webhook_timeout_seconds)
        dispatcher = Dispatcher(webhooks, box, sender, DeliveryBackoff.from_settings(settings))
    eventbridge = session.client("events", config=_CLIENT_CONFIG) if settings.event_bus else None
    fanout = FanOut(
        webhooks if dispatcher else None,
        dispatcher,
        eventbridge,
        settings.event_bus,
        settings.webhook_inline_seconds,
    )
    orchestrator = Orchestrator(
        store,
        StepFunctions(sfn),
        settings.state_machine_arn,
        event_preview_chars=settings.event_preview_chars,
        ceiling_seconds=settings.execution_ceiling_seconds,
    )
    return Services(settings, store, orchestrator, signer, webhooks, dispatcher, fanout, Gate(settings))


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
