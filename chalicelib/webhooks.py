"""Webhooks: registrations, signed deliveries, retries with back-off, dead letters, replay.

Every event that matches a webhook becomes a *delivery* item, written by the stream handler
(fanout.py) before anything is sent, so nothing depends on the first POST succeeding. Deliveries of
one (webhook, execution) pair form a *lane* that is sent strictly in seq order by whoever holds the
lane's lease (the stream handler right away, or the retry function later). When a POST fails, the
lane waits (exponential back-off) and later events of that execution wait behind it; other lanes
go on. After the last attempt the delivery is marked ``dead`` and the lane moves on; ``dead``
deliveries are listed by the API and can be replayed.

Items (one table, see docs/architecture.md):
- ``WEBHOOKS`` / ``HOOK#<id>``: url, types, executionId, description, secret (KMS-encrypted)
- ``HOOK#<id>`` / ``DLV#<executionId>#<seq>``: one delivery (body, status, attempts, last error)
- ``HOOK#<id>`` / ``LANE#<executionId>``: cursor (last seq settled), lease, nextAttemptAt
- ``WEBHOOKS#DUE`` / ``<id>#<executionId>``: a lane the retry function must look at, and when
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import Settings
from .domain import events as ev
from .domain.errors import InvalidWebhook
from .domain.model import EXECUTION_ID_CHARS
from .persistence.table import Item, Table, error_code, from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient
else:
    DynamoDBClient = KMSClient = Any

logger = Logger(service="dagcast-webhooks")

HOOKS_PK = "WEBHOOKS"
DUE_PK = "WEBHOOKS#DUE"
MAX_WEBHOOKS = 100
LEASE_MS = 60_000
SIGNATURE_HEADER = "X-Dagcast-Signature"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)
_SEQ_WIDTH = 12


def hook_pk(webhook_id: str) -> str:
    return f"HOOK#{webhook_id}"


def delivery_sk(execution_id: str, seq: int) -> str:
    return f"DLV#{execution_id}#{seq:0{_SEQ_WIDTH}d}"


def lane_sk(execution_id: str) -> str:
    return f"LANE#{execution_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------ signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Dagcast-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# ---------------------------------------------------------------------------------- registrations


class WebhookSpec(BaseModel):
    """The body of ``POST /api/v1/webhooks``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(min_length=8, max_length=2048)
    secret: str = Field(min_length=16, max_length=256)
    types: list[str] | None = Field(default=None, min_length=1, max_length=20)
    executionId: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=rf"^[{EXECUTION_ID_CHARS}]+$"
    )
    description: str = Field(default="", max_length=500)

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            ev.TypeFilter.of(value)  # InvalidTypeFilter (a ValueError) names the valid types
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
    id: str
    url: str
    types: ev.TypeFilter | None
    execution_id: str | None
    sealed_secret: bytes
    created_at: int
    description: str = ""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Hook:
        types = item.get("types")
        return cls(
            id=str(item["webhookId"]),
            url=str(item["url"]),
            types=ev.TypeFilter(tuple(types)) if types else None,
            execution_id=item.get("executionId"),
            sealed_secret=bytes(item["secret"]),
            created_at=int(item["createdAt"]),
            description=str(item.get("description", "")),
        )

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.execution_id is not None and event.get("executionId") != self.execution_id:
            return False
        return self.types is None or self.types.matches(str(event.get("type")))

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


class SecretBox:
    """Webhook secrets are stored encrypted with KMS, bound to their webhook id (encryption context)."""

    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self._kms = kms
        self._key = key_id
        self._plain: dict[tuple[str, bytes], str] = {}

    def seal(self, webhook_id: str, secret: str) -> bytes:
        out = self._kms.encrypt(
            KeyId=self._key, Plaintext=secret.encode(), EncryptionContext={"dagcast:webhook": webhook_id}
        )
        return bytes(out["CiphertextBlob"])

    def open(self, hook: Hook) -> str:
        key = (hook.id, hook.sealed_secret)
        if key not in self._plain:
            out = self._kms.decrypt(
                CiphertextBlob=hook.sealed_secret, EncryptionContext={"dagcast:webhook": hook.id}
            )
            self._plain[key] = bytes(out["Plaintext"]).decode()
        return self._plain[key]


# ------------------------------------------------------------------------------------------ store


class WebhookStore(Table):
    def __init__(self, client: DynamoDBClient, table_name: str, retention_days: int = 14) -> None:
        super().__init__(client, table_name)
        self._retention_s = retention_days * 86_400

    def _expires(self) -> int:
        return int(time.time()) + self._retention_s

    # registrations
    def put_hook(self, hook: Hook) -> None:
        item = {
            "PK": HOOKS_PK,
            "SK": hook_pk(hook.id),
            "webhookId": hook.id,
            "url": hook.url,
            "types": list(hook.types.patterns) if hook.types else None,
            "executionId": hook.execution_id,
            "description": hook.description,
            "secret": hook.sealed_secret,
            "createdAt": hook.created_at,
        }
        self._db.put_item(TableName=self._table, Item=to_item(item))

    def hooks(self) -> list[Hook]:
        return [Hook.from_item(i) for i in self._query_partition(HOOKS_PK, "HOOK#")]

    def get_hook(self, webhook_id: str) -> Hook | None:
        out = self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": HOOKS_PK, "SK": hook_pk(webhook_id)}),
            ConsistentRead=True,
        )
        return Hook.from_item(from_item(out["Item"])) if "Item" in out else None

    def delete_hook(self, webhook_id: str) -> bool:
        out = self._db.delete_item(
            TableName=self._table,
            Key=to_item({"PK": HOOKS_PK, "SK": hook_pk(webhook_id)}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in out

    # deliveries
    def enqueue(self, deliveries: list[Item]) -> None:
        """Write new delivery items; ones already there (a redelivered stream batch) are kept as they are."""
        keys = [to_item({"PK": d["PK"], "SK": d["SK"]}) for d in deliveries]
        existing = {(from_item(i)["PK"], from_item(i)["SK"]) for i in self._batch_get(keys)}
        fresh = [d for d in deliveries if (d["PK"], d["SK"]) not in existing]
        expires = self._expires()
        self._batch_write([{"PutRequest": {"Item": to_item({**d, "expiresAt": expires})}} for d in fresh])

    def save(self, deliveries: list[Item]) -> None:
        self._batch_write([{"PutRequest": {"Item": to_item(d)}} for d in deliveries])  # None: removed

    def pending(self, webhook_id: str, execution_id: str, after_seq: int, limit: int) -> list[Item]:
        out = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :p AND SK BETWEEN :a AND :b",
            ExpressionAttributeValues=to_item(
                {
                    ":p": hook_pk(webhook_id),
                    ":a": delivery_sk(execution_id, after_seq + 1),
                    ":b": delivery_sk(execution_id, 10**_SEQ_WIDTH - 1),
                }
            ),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(i) for i in out.get("Items", [])]

    def get_delivery(self, webhook_id: str, execution_id: str, seq: int) -> Item | None:
        out = self._db.get_item(
            TableName=self._table,
            Key=to_item({"PK": hook_pk(webhook_id), "SK": delivery_sk(execution_id, seq)}),
            ConsistentRead=True,
        )
        return from_item(out["Item"]) if "Item" in out else None

    def deliveries(
        self, webhook_id: str, execution_id: str | None, status: str | None, limit: int, start: str | None
    ) -> tuple[list[Item], str | None]:
        """Deliveries by execution then seq; ``start`` is the last SK of the previous page."""
        prefix = f"DLV#{execution_id}#" if execution_id else "DLV#"
        values: dict[str, Any] = {":p": hook_pk(webhook_id), ":s": prefix}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :s)",
            "ConsistentRead": True,
        }
        if status:
            kwargs["FilterExpression"] = "#st = :st"
            kwargs["ExpressionAttributeNames"] = {"#st": "status"}
            values[":st"] = status
        kwargs["ExpressionAttributeValues"] = to_item(values)
        if start:
            kwargs["ExclusiveStartKey"] = to_item({"PK": hook_pk(webhook_id), "SK": start})
        found: list[Item] = []
        while True:
            kwargs["Limit"] = 100 if status else limit - len(found)
            out = self._db.query(**kwargs)
            for raw in out.get("Items", []):
                if len(found) == limit:
                    return found, str(found[-1]["SK"])
                found.append(from_item(raw))
            if "LastEvaluatedKey" not in out:
                return found, None
            if len(found) == limit:
                return found, str(found[-1]["SK"])
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    # lanes
    def acquire(self, webhook_id: str, execution_id: str, owner: str, now: int) -> tuple[bool, Item]:
        """Take the lane's lease unless it is held or backing off; (taken, the lane as it is now)."""
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)}),
                UpdateExpression="SET holder = :o, leaseUntil = :l, expiresAt = :x",
                ConditionExpression=(
                    "(attribute_not_exists(leaseUntil) OR leaseUntil < :now) AND "
                    "(attribute_not_exists(nextAttemptAt) OR nextAttemptAt <= :now)"
                ),
                ExpressionAttributeValues=to_item(
                    {":o": owner, ":l": now + LEASE_MS, ":now": now, ":x": self._expires()}
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True, from_item(out["Attributes"])
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False, from_item(exc.response.get("Item") or {})  # type: ignore[arg-type]

    def release(
        self, webhook_id: str, execution_id: str, owner: str, cursor: int, retry_at: int | None
    ) -> None:
        values: dict[str, Any] = {":c": cursor, ":o": owner}
        if retry_at is None:
            update = "SET #c = :c REMOVE holder, leaseUntil, nextAttemptAt"
        else:
            update = "SET #c = :c, nextAttemptAt = :n REMOVE holder, leaseUntil"
            values[":n"] = retry_at
        self._update_if(
            Key=to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)}),
            UpdateExpression=update,
            ConditionExpression="holder = :o",
            ExpressionAttributeNames={"#c": "cursor"},
            ExpressionAttributeValues=to_item(values),
        )

    def retry_now(self, webhook_id: str, execution_id: str) -> None:
        self._update_if(
            Key=to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)}),
            UpdateExpression="REMOVE nextAttemptAt",
            ConditionExpression="attribute_exists(PK)",
        )
        self.set_due(webhook_id, execution_id, now_ms())

    def set_due(self, webhook_id: str, execution_id: str, at: int) -> None:
        """Tell the retry function to look at the lane at ``at``; the lane remembers it has an entry."""
        self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)}),
            UpdateExpression="SET dueSet = :t, expiresAt = :x",
            ExpressionAttributeValues=to_item({":t": True, ":x": self._expires()}),
        )
        self._db.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "PK": DUE_PK,
                    "SK": f"{webhook_id}#{execution_id}",
                    "webhookId": webhook_id,
                    "executionId": execution_id,
                    "dueAt": at,
                    "expiresAt": self._expires(),
                }
            ),
        )

    def clear_due(self, webhook_id: str, execution_id: str) -> None:
        self._db.delete_item(
            TableName=self._table, Key=to_item({"PK": DUE_PK, "SK": f"{webhook_id}#{execution_id}"})
        )
        self._db.update_item(
            TableName=self._table,
            Key=to_item({"PK": hook_pk(webhook_id), "SK": lane_sk(execution_id)}),
            UpdateExpression="REMOVE dueSet",
        )

    def due_items(self) -> list[Item]:
        return list(self._query_partition(DUE_PK))

    def due(self, now: int) -> list[tuple[str, str]]:
        return [
            (str(i["webhookId"]), str(i["executionId"])) for i in self.due_items() if int(i["dueAt"]) <= now
        ]


def delivery_item(hook: Hook, event: Mapping[str, Any], body: str) -> Item:
    execution_id, seq = str(event["executionId"]), int(event["seq"])
    return {
        "PK": hook_pk(hook.id),
        "SK": delivery_sk(execution_id, seq),
        "webhookId": hook.id,
        "executionId": execution_id,
        "seq": seq,
        "eventType": str(event.get("type")),
        "eventTimestamp": int(event.get("timestamp") or now_ms()),
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "createdAt": now_ms(),
    }


def delivery_view(item: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
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
    return {
        "deliveryId": f"{item['executionId']}:{item['seq']}",
        **{k: item[k] for k in keys if k in item},
    }


# -------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str
    at: int


class Sender:
    """POSTs one delivery: the event JSON, signed; 2xx is success, anything else a failure."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds
        self._client = httpx.Client(
            timeout=timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            headers={"User-Agent": "dagcast-webhooks/1", "Content-Type": "application/json"},
        )

    def post(self, hook: Hook, secret: str, delivery: Mapping[str, Any], attempt: int) -> Attempt:
        body = str(delivery["body"]).encode()
        ts = int(time.time())
        key = f"{delivery['executionId']}:{delivery['seq']}"
        headers = {
            "X-Dagcast-Event": str(delivery["eventType"]),
            "X-Dagcast-Webhook-Id": hook.id,
            "X-Dagcast-Idempotency-Key": key,
            "X-Dagcast-Attempt": str(attempt),
            "X-Dagcast-Timestamp": str(ts),
            SIGNATURE_HEADER: sign(secret, ts, body),
        }
        try:
            r = self._client.post(hook.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Attempt(False, None, f"no response within {self.timeout:g}s", now_ms())
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {str(exc)[:300]}", now_ms())
        if 200 <= r.status_code < 300:
            return Attempt(True, r.status_code, "", now_ms())
        return Attempt(False, r.status_code, f"HTTP {r.status_code}: {r.text[:300]}", now_ms())


@dataclass
class LaneReport:
    """What one lane's processing did, for metrics (collected in the calling thread)."""

    lags_ms: list[int] = field(default_factory=list)
    failures: int = 0
    dead: int = 0
    errors: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    base_seconds: float = 2.0
    max_seconds: float = 1800.0

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(s.webhook_max_attempts, s.webhook_backoff_seconds, s.webhook_backoff_max_seconds)

    def delay_ms(self, attempts: int) -> int:
        """After ``attempts`` failures: base × 2^(attempts-1), capped, with up to 20% jitter off."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1))
        return int(delay * 1000 * (1 - 0.2 * random.random()))


_LANES = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dagcast-webhook")


class Dispatcher:
    def __init__(self, store: WebhookStore, box: SecretBox, sender: Sender, policy: RetryPolicy) -> None:
        self.store = store
        self.box = box
        self.sender = sender
        self.policy = policy

    def process(
        self, lanes: Iterable[tuple[Hook, str]], deadline: float, *, sole_enqueuer: bool = False
    ) -> list[LaneReport]:
        """Send what is pending in each lane (lanes in parallel, each in order) until ``deadline``.

        ``sole_enqueuer``: the caller is the stream handler that just wrote these lanes' deliveries.
        Nothing else writes deliveries, and one execution's records reach one handler invocation at
        a time (one partition key, one shard, in order), so nothing can be added to these lanes while
        it holds them: the re-check after releasing is skipped.
        """
        recheck = not sole_enqueuer
        return list(_LANES.map(lambda lane: self.process_lane(lane[0], lane[1], deadline, recheck), lanes))

    def process_lane(
        self, hook: Hook, execution_id: str, deadline: float, recheck: bool = True
    ) -> LaneReport:
        report = LaneReport()
        # Every line about the lane carries these (this thread only); ``seq``: the delivery in hand.
        logger.thread_safe_append_keys(webhookId=hook.id, executionId=execution_id)
        try:
            self._process_lane(hook, execution_id, deadline, report, recheck)
        except Exception:
            report.errors += 1
            logger.exception("webhook lane failed")
            # the lane's lease runs out; the retry function looks again then
            self.store.set_due(hook.id, execution_id, now_ms() + LEASE_MS)
        finally:
            logger.thread_safe_remove_keys(["webhookId", "executionId", "seq"])
        return report

    def _process_lane(
        self, hook: Hook, execution_id: str, deadline: float, report: LaneReport, recheck: bool
    ) -> None:
        owner = uuid.uuid4().hex
        while True:
            taken, lane = self.store.acquire(hook.id, execution_id, owner, now_ms())
            if not taken:
                # Held: its holder looks for new deliveries after releasing, and the due entry
                # covers a holder that dies. Backing off: the due entry says when.
                at = max(int(lane.get("leaseUntil", 0)), int(lane.get("nextAttemptAt", 0)), now_ms())
                self.store.set_due(hook.id, execution_id, at)
                return
            lease_end = int(lane["leaseUntil"])
            cursor, retry_at, done = self._drain(
                hook, execution_id, int(lane.get("cursor", 0)), lease_end, deadline, report
            )
            self.store.release(hook.id, execution_id, owner, cursor, retry_at)
            if retry_at is not None:
                self.store.set_due(hook.id, execution_id, retry_at)
                return
            if not done:  # out of time: the retry function continues
                self.store.set_due(hook.id, execution_id, now_ms())
                return
            if not recheck or not self.store.pending(hook.id, execution_id, cursor, 1):
                if lane.get("dueSet"):
                    self.store.clear_due(hook.id, execution_id)
                return
            # something was enqueued while we held the lease: go again

    def _drain(
        self, hook: Hook, execution_id: str, cursor: int, lease_end: int, deadline: float, report: LaneReport
    ) -> tuple[int, int | None, bool]:
        """(cursor, retry_at when backing off, whether the lane ran dry)."""
        secret = ""  # opened for the first delivery to send (a failure then names its seq)
        margin_ms = int((self.sender.timeout + 5) * 1000)
        while True:
            items = self.store.pending(hook.id, execution_id, cursor, 25)
            if not items:
                return cursor, None, True
            changed: list[Item] = []
            try:
                for item in items:
                    if item["status"] != PENDING:
                        cursor = int(item["seq"])
                        continue
                    if time.time() >= deadline or now_ms() > lease_end - margin_ms:
                        return cursor, None, False
                    logger.thread_safe_append_keys(seq=int(item["seq"]))
                    secret = secret or self.box.open(hook)
                    result = self._attempt(hook, secret, item)
                    changed.append(item)
                    if result.ok:
                        report.lags_ms.append(result.at - int(item["eventTimestamp"]))
                        cursor = int(item["seq"])
                        continue
                    report.failures += 1
                    log_extra = {"attempt": item["attempts"], "error": result.error}
                    attempts = int(item["attempts"])
                    if attempts >= self.policy.max_attempts:
                        item["status"] = DEAD
                        report.dead += 1
                        cursor = int(item["seq"])
                        logger.warning("webhook delivery dead after its last attempt", extra=log_extra)
                        continue
                    retry_at = result.at + self.policy.delay_ms(attempts)
                    item["nextAttemptAt"] = retry_at
                    logger.info(
                        "webhook delivery failed; will retry", extra={**log_extra, "retryAt": retry_at}
                    )
                    return cursor, retry_at, False
                if len(items) < 25:  # the lane ran dry; the re-check after release sees late arrivals
                    return cursor, None, True
            finally:
                self.store.save(changed)

    def _attempt(self, hook: Hook, secret: str, item: Item) -> Attempt:
        """POST the delivery once and record the outcome on the item (saved by the caller)."""
        attempts = int(item.get("attempts", 0)) + 1
        result = self.sender.post(hook, secret, item, attempts)
        item.update(attempts=attempts, lastAttemptAt=result.at, lastError=result.error or None)
        item.pop("nextAttemptAt", None)
        if result.status_code is not None:
            item["lastStatusCode"] = result.status_code
        if result.ok:
            item.update(status=DELIVERED, deliveredAt=result.at)
        return result

    def sweep(self, deadline: float) -> list[LaneReport]:
        """The retry function: every lane whose due time has come, until ``deadline``."""
        hooks = {h.id: h for h in self.store.hooks()}
        lanes: list[tuple[Hook, str]] = []
        for webhook_id, execution_id in self.store.due(now_ms()):
            hook = hooks.get(webhook_id)
            if hook is None:  # deleted: its deliveries stay (and expire); nothing more is sent
                self.store.clear_due(webhook_id, execution_id)
            else:
                lanes.append((hook, execution_id))
        return self.process(lanes, deadline)

    def run_retries(self, budget_seconds: float) -> list[LaneReport]:
        """The scheduled retry function: sweep, then sleep until the next due lane, within the budget."""
        end = time.time() + budget_seconds
        reports = self.sweep(max(end, time.time() + self.sender.timeout + 1))
        while True:
            due = [int(i["dueAt"]) for i in self.store.due_items()]
            if not due or min(due) / 1000 > end - 1:
                return reports
            time.sleep(max(0.0, min(due) / 1000 - time.time()))
            reports += self.sweep(end)

    def replay(self, hook: Hook, item: Item) -> dict[str, Any]:
        """Send a settled delivery again now (once); a pending one is retried now by its lane."""
        if item["status"] == PENDING:
            self.store.retry_now(hook.id, str(item["executionId"]))
            return {**delivery_view(item), "replay": {"queued": True}}
        result = self._attempt(hook, self.box.open(hook), item)
        self.store.save([item])
        replay = {"delivered": result.ok, "statusCode": result.status_code, "error": result.error or None}
        return {**delivery_view(item), "replay": replay}
