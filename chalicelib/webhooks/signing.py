"""The webhook signature: what a receiver checks to know a delivery came from dagcast, unchanged.

Pure: no clock and no I/O; the sender passes the timestamp it also sends. Verification is the
receiver's (docs/webhooks.md shows the check); nothing here keeps or looks up secrets.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Dagcast-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Dagcast-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
