"""The one place that builds AWS clients and wires them into the domain objects."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config

from .config import Settings
from .fanout import FanOut
from .gate import Gate
from .kinds import load_plugins
from .orchestration import Orchestrator
from .redact import Redactor
from .store import DynamoStore
from .streamauth import TokenSigner
from .webhooks import Dispatcher, RetryPolicy, SecretBox, Sender, WebhookStore

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


def build_services(settings: Settings | None = None, session: boto3.Session | None = None) -> Services:
    settings = settings or Settings.from_env()
    load_plugins(settings.plugins)
    session = session or boto3.Session()
    dynamodb = session.client("dynamodb", config=_CLIENT_CONFIG)
    store = DynamoStore(dynamodb, settings.table_name, Redactor(settings.redact_keys))
    sfn = session.client("stepfunctions", config=_CLIENT_CONFIG)
    signer = TokenSigner(settings.stream_secret, settings.token_ttl_seconds) if settings.auth else None
    webhooks = WebhookStore(dynamodb, settings.table_name, settings.webhook_retention_days)
    dispatcher = None
    if settings.webhook_kms_key:
        box = SecretBox(session.client("kms", config=_CLIENT_CONFIG), settings.webhook_kms_key)
        sender = Sender(settings.webhook_timeout_seconds)
        dispatcher = Dispatcher(webhooks, box, sender, RetryPolicy.from_settings(settings))
    eventbridge = session.client("events", config=_CLIENT_CONFIG) if settings.event_bus else None
    fanout = FanOut(
        webhooks if dispatcher else None,
        dispatcher,
        eventbridge,
        settings.event_bus,
        settings.webhook_inline_seconds,
    )
    orchestrator = Orchestrator(store, sfn, settings.state_machine_arn)
    return Services(settings, store, orchestrator, signer, webhooks, dispatcher, fanout, Gate(settings))
