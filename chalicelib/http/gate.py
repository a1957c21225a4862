"""The REST API's front gate (docs/security.md): API keys, a per-client request rate, the CORS
allow-list. app.py runs it as Chalice middleware, so it guards every route the same way in AWS
(behind API Gateway) and in the local stack (Chalice's LocalGateway).

API keys: callers send ``Authorization: Bearer <key>`` (or ``X-Api-Key: <key>``). The deployment
holds only SHA-256 digests of the keys, so a leaked configuration grants nothing; ``dagcast api-key``
makes a key and its digest. A key belongs to a tenant (chalicelib/tenants.py), and ``check`` answers
which: a plain digest in ``DAGCAST_API_KEYS`` is tenant ``default``, ``<tenant>:<digest>`` names one
(what ``dagcast up --api-key acme=KEY`` sets), and with ``DAGCAST_API_KEY_STORE`` on a key found in
neither is looked up in the table (persistence/apikeys.py) — the answer, found or not, kept
``DAGCAST_API_KEY_CACHE_SECONDS`` (60) in this process, so a revoked key stops within that time. No
digests and no key store: the API is open, and every caller is tenant ``default`` (the local stack's
default; a deployed stage should always set them).

Rate: a token bucket per client IP in this process (``DAGCAST_API_RATE`` requests/s sustained,
``DAGCAST_API_BURST`` at once); over it → ``RateLimited`` (429 with Retry-After). In AWS each Lambda
instance keeps its own buckets, so this bounds one client's share of an instance: a second line.
The limit that holds across instances is API Gateway's stage throttling, all clients together,
which `dagcast deploy` sets (dagcast/deploy/throttle.py, docs/security.md).

A refused request raises a domain error; http/errors.py decides its status and headers.

CORS: with ``DAGCAST_CORS_ORIGINS`` set, an answer carries ``Access-Control-Allow-Origin`` only for
an origin on the list (echoed, with ``Vary: Origin``); without it, any origin may read (``*``) —
API keys are not cookies, so a page on another origin cannot use a caller's key by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..domain.errors import ApiKeyInvalid, ApiKeyMissing, RateLimited
from ..tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from ..persistence.apikeys import ApiKeyRegistry

KEY_PREFIX = "dk_"
MAX_TRACKED_CLIENTS = 10_000  # token buckets kept (least recently seen dropped first)
MAX_CACHED_KEYS = 10_000  # key-store answers kept (oldest dropped first)


def key_digest(key: str) -> str:
    """What ``DAGCAST_API_KEYS`` holds for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A fresh key and its digest."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key_digest(key)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (header names are case-insensitive in ``headers``)."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = (headers.get("x-api-key") or "").strip()
    return key or None


# Who decided an approval (docs/api.md#decisions): the key's tenant, and the key named by the start
# of its digest (DAGCAST_API_KEYS or the key store holds the whole digest).
# The field is ``principal``, not "keyId": a name with "key" in it is redacted as a secret.
PRINCIPAL_CHARS = 12


def caller(headers: Mapping[str, str], tenant: str = DEFAULT_TENANT) -> dict[str, str | None]:
    """The caller as a decision records it: ``tenant`` (the key's, as the gate found it) and
    ``principal`` (the key's digest's first 12 hex digits; None on an open API)."""
    key = presented_key(headers)
    return {"tenant": tenant, "principal": None if key is None else key_digest(key)[:PRINCIPAL_CHARS]}


class RateLimiter:
    """Token buckets per client: ``rate`` tokens/s, at most ``burst`` held. Thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if the request may go, else the seconds until it could."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
            return wait


def configured_keys(entries: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``DAGCAST_API_KEYS`` entries → (digest, tenant) pairs."""
    pairs = []
    for entry in entries:
        tenant, _, digest = entry.rpartition(":")
        pairs.append((digest, tenant or DEFAULT_TENANT))
    return tuple(pairs)


class Gate:
    def __init__(
        self, settings: Settings, registry: ApiKeyRegistry | None = None, clock: Any = time.monotonic
    ) -> None:
        self.keys = configured_keys(settings.api_keys)
        self.registry = registry
        self.cache_seconds = settings.api_key_cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()  # digest → (tenant, until)
        self._lock = threading.Lock()
        self.origins = frozenset(settings.cors_origins)
        self.limiter = RateLimiter(settings.api_rate, settings.api_burst) if settings.api_rate > 0 else None

    @property
    def keys_required(self) -> bool:
        return bool(self.keys) or self.registry is not None

    def check(self, headers: Mapping[str, str], client_ip: str) -> str:
        """The caller's tenant; or RateLimited, ApiKeyMissing or ApiKeyInvalid when the request may
        not go on (http/errors.py says how each is answered)."""
        if self.limiter is not None:
            wait = self.limiter.take(client_ip)
            if wait > 0:
                raise RateLimited(client_ip, self.limiter.rate, self.limiter.burst, max(1, math.ceil(wait)))
        if not self.keys_required:
            return DEFAULT_TENANT
        key = presented_key(headers)
        if key is None:
            raise ApiKeyMissing()
        digest = key_digest(key)
        tenant = None
        for known, owner in self.keys:  # every entry compared: the time says nothing of which matched
            if hmac.compare_digest(digest, known):
                tenant = owner
        if tenant is None and self.registry is not None:
            tenant = self._registered(digest)
        if tenant is None:
            raise ApiKeyInvalid()
        return tenant

    def _registered(self, digest: str) -> str | None:
        """The key store's answer for ``digest``, cached ``cache_seconds``."""
        assert self.registry is not None
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        tenant = self.registry.tenant_of(digest)
        with self._lock:
            self._cache.pop(digest, None)
            self._cache[digest] = (tenant, now + self.cache_seconds)
            while len(self._cache) > MAX_CACHED_KEYS:
                self._cache.popitem(last=False)
        return tenant

    def cors(self, origin: str | None, response_headers: dict[str, Any]) -> None:
        """Apply the allow-list to an answer's CORS headers (in place)."""
        if not self.origins or "*" in self.origins:
            return
        for name in [n for n in response_headers if n.lower() == "access-control-allow-origin"]:
            del response_headers[name]
        vary = [n for n in response_headers if n.lower() == "vary"]
        if vary:
            if "origin" not in str(response_headers[vary[0]]).lower():
                response_headers[vary[0]] = f"{response_headers[vary[0]]}, Origin"
        else:
            response_headers["Vary"] = "Origin"
        if origin and origin in self.origins:
            response_headers["Access-Control-Allow-Origin"] = origin
