"""What a webhook is: the registration body and its URL policy, a registered ``Hook``, the limits,
and the shape of one delivery (its attributes and the view the API shows of it).

Pure: no AWS client, no HTTP, no clock but ``now_ms`` for a new delivery's timestamps. It does not
know the table's keys (store.py adds them) nor how a delivery is sent (sender.py, dispatcher.py).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import Settings
from ..domain import typefilter
from ..domain.errors import InvalidWebhook
from ..domain.model import EXECUTION_ID_CHARS, DeliveryStatus, now_ms
from ..tenants import DEFAULT_TENANT
from .signing import key_of, new_key

MAX_WEBHOOKS: Final = 100  # registrations per tenant: every event is matched against its tenant's
STATUSES: Final = tuple(DeliveryStatus)  # the ``status`` filter of the deliveries list accepts these


class WebhookSpec(BaseModel):
    """The body of ``POST /api/v1/webhooks``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(min_length=8, max_length=2048)
    # A ``whsec_`` value, or any other string of the kind registered before the standard (its UTF-8
    # bytes are the key); omitted: dagcast makes one, shown once in the registration's answer.
    secret: str | None = Field(default=None, min_length=16, max_length=256)
    types: list[str] | None = Field(default=None, min_length=1, max_length=20)
    executionId: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=rf"^[{EXECUTION_ID_CHARS}]+$"
    )
    description: str = Field(default="", max_length=500)

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, value: str | None) -> str | None:
        if value is not None:
            key_of(value)  # a ValueError says what a whsec_ value must be
        return value

    def key(self) -> bytes:
        """The HMAC key: the secret given, or a new one."""
        return key_of(self.secret) if self.secret is not None else new_key()

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            typefilter.TypeFilter.of(value)  # InvalidTypeFilter (a ValueError) names the valid types
        return value


def parse_spec(body: Any, settings: Settings) -> WebhookSpec:
    if not isinstance(body, dict):
        raise InvalidWebhook(['the body must be a JSON object: {"url": ..., "secret": ..., "types": [...]}'])
    try:
        spec = WebhookSpec.model_validate(body)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            where = ".".join(str(x) for x in e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        raise InvalidWebhook(problems) from None
    problem = url_problem(spec.url, settings)
    if problem:
        raise InvalidWebhook([f"url: {problem}"])
    return spec


def url_problem(url: str, settings: Settings) -> str | None:
    parts = urlsplit(url)
    schemes = ("https", "http") if settings.webhook_allow_http else ("https",)
    if parts.scheme not in schemes:
        allowed = " or ".join(f"{s}://" for s in schemes)
        return f"must start with {allowed} (got {url[:60]!r})"
    if not parts.hostname:
        return f"has no host: {url[:60]!r}"
    if parts.username or parts.password:
        return "must not carry credentials (user:password@); sign with the secret instead"
    hosts = settings.webhook_allowed_hosts
    if hosts and not any(fnmatch.fnmatchcase(parts.hostname, h) for h in hosts):
        return f"host {parts.hostname!r} is not allowed (DAGCAST_WEBHOOK_ALLOWED_HOSTS: {', '.join(hosts)})"
    return None


@dataclass(frozen=True)
class Hook:
    """A registered webhook; its secret stays sealed (secrets.py opens it only to sign)."""

    id: str
    url: str
    types: typefilter.TypeFilter | None
    execution_id: str | None
    sealed_secret: bytes
    created_at: int
    description: str = ""
    tenant: str = DEFAULT_TENANT  # whose it is: it only ever receives that tenant's events

    def matches(self, event: Mapping[str, Any], tenant: str = DEFAULT_TENANT) -> bool:
        """Whether ``event``, of an execution of ``tenant``, goes to this webhook: its tenant's, its
        filter takes it, and it was stored after the webhook was registered (the stream handlers
        and the lanes, which read the log from seq 1 for a new lane, then agree on which events a
        webhook gets, whatever order the stream brings them in)."""
        if tenant != self.tenant:
            return False
        if self.execution_id is not None and event.get("executionId") != self.execution_id:
            return False
        if int(event.get("timestamp") or self.created_at) < self.created_at:
            return False
        kind = str(event.get("type"))
        if self.types is None:  # every type but those asked for by name only (substep.progress)
            return kind not in typefilter.EXPLICIT_ONLY
        return self.types.matches(kind)

    def view(self) -> dict[str, Any]:
        """What the API shows: never the secret."""
        return {
            "webhookId": self.id,
            "url": self.url,
            "types": list(self.types.patterns) if self.types else None,
            "executionId": self.execution_id,
            "description": self.description,
            "createdAt": self.created_at,
        }


def delivery_item(hook: Hook, event: Mapping[str, Any], body: str) -> dict[str, Any]:
    """A new delivery of ``event`` (its JSON ``body``) to ``hook``: pending, never attempted."""
    execution_id, seq = str(event["executionId"]), int(event["seq"])
    return {
        "webhookId": hook.id,
        "executionId": execution_id,
        "seq": seq,
        "eventType": str(event.get("type")),
        "eventTimestamp": int(event.get("timestamp") or now_ms()),
        "body": body,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "createdAt": now_ms(),
    }


_VIEW_KEYS = (
    "webhookId",
    "executionId",
    "seq",
    "eventType",
    "status",
    "attempts",
    "createdAt",
    "lastAttemptAt",
    "lastStatusCode",
    "lastError",
    "deliveredAt",
    "nextAttemptAt",
)


def delivery_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a delivery: its id and state, not its body."""
    return {
        "deliveryId": f"{item['executionId']}:{item['seq']}",
        **{k: item[k] for k in _VIEW_KEYS if k in item},
    }
