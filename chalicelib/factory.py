"""The one place that builds AWS clients and wires them into the domain objects."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config

from .config import Settings
from .kinds import load_plugins
from .orchestration import Orchestrator
from .redact import Redactor
from .store import DynamoStore
from .streamauth import TokenSigner

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=64)


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: DynamoStore
    orchestrator: Orchestrator
    signer: TokenSigner | None


def build_services(settings: Settings | None = None, session: boto3.Session | None = None) -> Services:
    settings = settings or Settings.from_env()
    load_plugins(settings.plugins)
    session = session or boto3.Session()
    store = DynamoStore(
        session.client("dynamodb", config=_CLIENT_CONFIG), settings.table_name, Redactor(settings.redact_keys)
    )
    sfn = session.client("stepfunctions", config=_CLIENT_CONFIG)
    signer = TokenSigner(settings.stream_secret, settings.token_ttl_seconds) if settings.auth else None
    return Services(settings, store, Orchestrator(store, sfn, settings.state_machine_arn), signer)
