"""Stream tokens: short-lived, HMAC-SHA256-signed, scoped to one execution and its tenant.

``v1.<payload>.<signature>`` with base64url parts; payload ``{"x": executionId, "exp": unix s,
"t": tenant}``; a many-run stream's token (``POST /api/v1/stream-tokens``) has ``"q"``, the tags
it filters on (sorted; empty: all of the tenant's executions), instead of ``"x"``, so neither kind
opens the other's stream. Only the execution's own tenant is given one (the REST API answers 404
to any other), and ``t`` is what the stream counts against that tenant's ``maxStreams``; a token
from before tenants has no ``t`` and is ``default``'s.
EventSource cannot set headers, so the token travels as ``?token=`` (or ``Authorization:
Bearer``); tokens are therefore kept out of every log line (see ``redact_query``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

from ..domain.errors import TokenForAnotherExecution, TokenForAnotherQuery, TokenInvalid
from ..tenants import DEFAULT_TENANT

_PREFIX = "v1"
_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&\s\"]*")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, f"{_PREFIX}.{payload}".encode(), hashlib.sha256).digest())


class TokenSigner:
    def __init__(self, secret: str, ttl_seconds: int = 3600) -> None:
        if len(secret) < 16:
            raise ValueError("the stream-token secret must be at least 16 characters")
        self._secret = secret.encode()
        self.ttl_seconds = ttl_seconds

    def issue(self, execution_id: str, now: float | None = None, tenant: str = DEFAULT_TENANT) -> IssuedToken:
        return self._issue({"x": execution_id, "t": tenant}, now)

    def issue_query(self, tags: tuple[str, ...], tenant: str, now: float | None = None) -> IssuedToken:
        """A token for the tenant's many-run stream filtered on ``tags`` (all of them)."""
        return self._issue({"q": sorted(set(tags)), "t": tenant}, now)

    def _issue(self, claims: dict[str, object], now: float | None) -> IssuedToken:
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        payload = _b64(json.dumps({**claims, "exp": expires}, separators=(",", ":")).encode())
        return IssuedToken(f"{_PREFIX}.{payload}.{_sign(self._secret, payload)}", expires)

    def verify(self, token: str | None, execution_id: str, now: float | None = None) -> str:
        """The tenant the token was issued to; TokenInvalid (no valid token) or
        TokenForAnotherExecution unless ``token`` grants streaming ``execution_id`` now."""
        claims = self._claims(
            token, now, f"POST /api/v1/dag-executions/{execution_id}/stream-token", "POST /api/v1/execute-dag"
        )
        if claims.get("x") != execution_id:
            raise TokenForAnotherExecution()
        return str(claims.get("t") or DEFAULT_TENANT)

    def verify_query(self, token: str | None, tags: tuple[str, ...], now: float | None = None) -> str:
        """The tenant a many-run stream's token was issued to, if it was issued for ``tags``."""
        claims = self._claims(token, now, "POST /api/v1/stream-tokens", "POST /api/v1/stream-tokens")
        if claims.get("q") != sorted(set(tags)):
            raise TokenForAnotherQuery()
        return str(claims.get("t") or DEFAULT_TENANT)

    def _claims(self, token: str | None, now: float | None, renew: str, first: str) -> dict[str, object]:
        if not token:
            raise TokenInvalid(
                f"a stream token is required: pass ?token=<streamToken> (or Authorization: Bearer) "
                f"as returned by {first}",
            )
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise TokenInvalid("the stream token is malformed")
        payload, signature = parts[1], parts[2]
        if not hmac.compare_digest(_sign(self._secret, payload), signature):
            raise TokenInvalid("the stream token's signature is invalid")
        try:
            claims = json.loads(_unb64(payload))
            expires = int(claims["exp"])
            if not isinstance(claims, dict) or ("x" in claims) == ("q" in claims):
                raise ValueError("one of x or q")
        except (ValueError, KeyError, TypeError):
            raise TokenInvalid("the stream token is malformed") from None
        if (time.time() if now is None else now) >= expires:
            raise TokenInvalid(
                f"the stream token expired at {expires} (unix time); get a new one from {renew}"
            )
        return claims


def redact_query(text: str) -> str:
    """``...?token=abc&x=1`` → ``...?token=[REDACTED]&x=1`` (for log lines)."""
    return _TOKEN_IN_QUERY.sub(r"\1[REDACTED]", text)
