"""The REST routes of webhooks (docs/webhooks.md): register, list, read, delete a tenant's
webhooks, and list or replay their deliveries. The routes of executions are in api.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..domain.errors import (
    BadRequest,
    DeliveryNotFound,
    TooManyWebhooks,
    WebhookNotFound,
    WebhooksOff,
)
from ..domain.model import EXECUTION_ID_CHARS, DeliveryStatus, now_ms
from ..domain.typefilter import TypeFilter
from ..factory import Services
from ..tenants import DEFAULT_TENANT
from ..webhooks.models import MAX_WEBHOOKS, Hook, delivery_view, parse_spec
from ..webhooks.signing import whsec
from ..webhooks.store import deliveries_prefix
from .api import Reply, json_body, list_limit

if TYPE_CHECKING:
    from ..webhooks.dispatcher import Dispatcher

_EXECUTION_ID = re.compile(rf"[{EXECUTION_ID_CHARS}]{{1,128}}")  # as a webhook's executionId filter
_DELIVERY_SEQ = re.compile(r"[0-9]{1,12}")  # a delivery's SK holds 12 digits
_WEBHOOK_EXAMPLE = '{"url": "https://...", "secret": "whsec_... (optional)", "types": ["execution.*"]}'
_DELIVERY_STATUSES = tuple(DeliveryStatus)  # a tuple: `"x" in DeliveryStatus` raises on Python 3.11


def _dispatcher(services: Services) -> Dispatcher:
    if services.dispatcher is None:
        raise WebhooksOff()
    return services.dispatcher


def _hook(services: Services, tenant: str, webhook_id: str) -> Hook:
    """The webhook if ``tenant`` owns it; another tenant's is WebhookNotFound, as an unknown id."""
    hook = services.webhooks.get_hook(webhook_id)
    if hook is None or hook.tenant != tenant:
        raise WebhookNotFound(webhook_id)
    return hook


def _tenant_hooks(services: Services, tenant: str) -> list[Hook]:
    return [h for h in services.webhooks.hooks() if h.tenant == tenant]


def create_webhook(services: Services, raw_body: bytes | None, *, tenant: str = DEFAULT_TENANT) -> Reply:
    dispatcher = _dispatcher(services)
    spec = parse_spec(json_body(raw_body, _WEBHOOK_EXAMPLE, 10_000), services.settings)
    if len(_tenant_hooks(services, tenant)) >= MAX_WEBHOOKS:  # per tenant: none can fill another's
        raise TooManyWebhooks(MAX_WEBHOOKS)
    webhook_id = f"wh_{uuid.uuid4().hex}"
    key = spec.key()
    hook = Hook(
        id=webhook_id,
        url=spec.url,
        types=TypeFilter.of(spec.types) if spec.types else None,
        execution_id=spec.executionId,
        sealed_secret=dispatcher.box.seal(webhook_id, key),
        created_at=now_ms(),
        description=spec.description,
        tenant=tenant,
    )
    services.webhooks.put_hook(hook)
    # The one answer that shows the secret, in the form receivers' libraries take: it is sealed
    # from here on, and no other answer carries it.
    return 201, {**hook.view(), "secret": whsec(key)}


def list_webhooks(services: Services, *, tenant: str = DEFAULT_TENANT) -> Reply:
    hooks = sorted(_tenant_hooks(services, tenant), key=lambda h: h.created_at)
    return 200, {"webhooks": [h.view() for h in hooks]}


def get_webhook(services: Services, webhook_id: str, *, tenant: str = DEFAULT_TENANT) -> Reply:
    return 200, _hook(services, tenant, webhook_id).view()


def delete_webhook(services: Services, webhook_id: str, *, tenant: str = DEFAULT_TENANT) -> Reply:
    _hook(services, tenant, webhook_id)
    if not services.webhooks.delete_hook(webhook_id):
        raise WebhookNotFound(webhook_id)
    return 200, {"webhookId": webhook_id, "deleted": True}


def list_deliveries(
    services: Services, webhook_id: str, query: Mapping[str, str] | None, *, tenant: str = DEFAULT_TENANT
) -> Reply:
    _hook(services, tenant, webhook_id)
    query = query or {}
    limit = list_limit(query.get("limit", "50"))
    status = query.get("status")
    if status is not None and status not in _DELIVERY_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(_DELIVERY_STATUSES)}, got {status[:40]!r}")
    start = query.get("after")
    if start is not None and not start.startswith(deliveries_prefix(None)):
        raise BadRequest("after must be the nextAfter value of the previous page")
    items, after = services.webhooks.deliveries(webhook_id, query.get("executionId"), status, limit, start)
    return 200, {"deliveries": [delivery_view(i) for i in items], "nextAfter": after}


def replay_delivery(
    services: Services, webhook_id: str, delivery_id: str, *, tenant: str = DEFAULT_TENANT
) -> Reply:
    dispatcher = _dispatcher(services)
    hook = _hook(services, tenant, webhook_id)
    execution_id, _, raw_seq = delivery_id.rpartition(":")
    # ASCII digits only: str.isdigit() also takes "²" or "٣", which int() refuses (or reads as 3)
    if not _EXECUTION_ID.fullmatch(execution_id) or not _DELIVERY_SEQ.fullmatch(raw_seq):
        raise BadRequest(
            "a delivery id is <executionId>:<seq> (seq: 1 to 12 digits 0-9, as listed in deliveryId), "
            f"got {delivery_id[:80]!r}"
        )
    item = services.webhooks.get_delivery(webhook_id, execution_id, int(raw_seq))
    if item is None:
        raise DeliveryNotFound(webhook_id, delivery_id)
    view = dispatcher.replay(hook, item)
    return (202 if view["replay"].get("queued") else 200), view
