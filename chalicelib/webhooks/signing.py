"""The webhook signature, as the Standard Webhooks spec (standardwebhooks.com) has it, so a receiver
verifies with that spec's libraries (``standardwebhooks`` on PyPI and npm) instead of code of ours:
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``, keyed with the secret a ``whsec_`` value carries (its base64 after the prefix).

The key is bytes. A secret registered before the standard was a string whose UTF-8 bytes were
already the HMAC key of ``X-Dagcast-Signature``, so its ``whsec_`` form is ``whsec_`` + base64 of
those bytes: nothing stored changes. ``X-Dagcast-Signature`` is still sent, with the same key, for
the receivers written against it (deprecated: docs/webhooks.md, docs/compatibility.md).

Pure: no clock and no I/O; the sender passes the time it signs at (each attempt signs anew: the
libraries refuse a timestamp more than five minutes from their clock, and retries back off for up
to 30 minutes). ``new_key`` draws from the OS's randomness. Verification is the receiver's; nothing
here keeps or looks up secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"
KEY_BYTES: Final = 32  # a new webhook's key; the spec asks for 24 to 64 bytes
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
LEGACY_SIGNATURE_HEADER: Final = "X-Dagcast-Signature"  # deprecated: one more release
LEGACY_TIMESTAMP_HEADER: Final = "X-Dagcast-Timestamp"  # its timestamp, deprecated with it


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def whsec(key: bytes) -> str:
    """The ``whsec_`` form of a key: what a receiver gives its Standard Webhooks library."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key of a registered secret: a ``whsec_`` value's base64 (24–64 bytes), or the UTF-8
    bytes of any other string (a secret of the kind registered before the standard). ValueError
    says what is wrong with a ``whsec_`` value."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Each message starts with the quoted prefix: the API's answers redact a word after "secret: ".
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('"whsec_" must be followed by standard base64 (A-Z a-z 0-9 + / =)') from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f'"whsec_" must be followed by {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes of key in base64'
            f" (this one {len(key)})"
        )
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of one attempt: the standard three and the deprecated pair."""
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(key, message_id, timestamp, body),
        LEGACY_TIMESTAMP_HEADER: str(timestamp),
        LEGACY_SIGNATURE_HEADER: legacy_sign(key, timestamp, body),
    }


def legacy_sign(key: bytes, timestamp: int, body: bytes) -> str:
    """The deprecated ``X-Dagcast-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
