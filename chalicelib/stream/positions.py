"""The many-run stream's event ids: an opaque, signed position in the tenant's activity log.

``<base64url of {"p": position, "t": tenant}>.<HMAC-SHA256, 16 bytes, base64url>``. The position is
a sort key of the activity log (persistence/activity.py): clients must not build or compare them,
only send the last one back as ``Last-Event-ID``. Signing (with the stream-token key) makes a
tampered id, or one issued to another tenant, a 400 instead of a read of another partition or at
a made-up point.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

from ..domain.errors import BadRequest

_POSITION = re.compile(r"\d{15}#[A-Za-z0-9_.:~-]{1,200}(#\d{12})?")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PositionCodec:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, f"pos.{payload}".encode(), hashlib.sha256).digest()[:16])

    def encode(self, position: str, tenant: str) -> str:
        payload = _b64(json.dumps({"p": position, "t": tenant}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, event_id: str, tenant: str) -> str:
        """The position in ``event_id``; BadRequest unless this stream gave it to ``tenant``."""
        payload, _, mac = event_id.strip().partition(".")
        if not payload or not hmac.compare_digest(self._mac(payload), mac):
            raise BadRequest("Last-Event-ID is not an id this stream sent (send back the last id as it came)")
        try:
            claims = json.loads(_unb64(payload))
            position, owner = str(claims["p"]), str(claims["t"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest("Last-Event-ID is malformed") from None
        if owner != tenant or not _POSITION.fullmatch(position):
            raise BadRequest("Last-Event-ID belongs to another tenant's stream")
        return position
