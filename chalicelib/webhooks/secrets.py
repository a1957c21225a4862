"""Webhook secrets at rest: sealed with KMS, bound to their webhook id by the encryption context,
so a sealed secret copied onto another webhook does not open.

What is sealed is the HMAC key's bytes (signing.py): a ``whsec_`` secret's base64-decoded key, or
the UTF-8 bytes of a secret registered before the standard — which is how those were sealed all
along, so their items need no migration. It does not store the sealed secret (store.py keeps it on
the hook's item) and does not sign (signing.py); it only turns a key into ciphertext and back,
caching what it opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import Hook

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
else:
    KMSClient = Any


class SecretBox:
    """Webhook secrets are stored encrypted with KMS, bound to their webhook id (encryption context)."""

    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self._kms = kms
        self._key = key_id
        # Opened once per (webhook, ciphertext): every attempt signs, and a KMS call each would add
        # its latency and cost to every POST. A new secret is a new ciphertext, so it is opened anew.
        self._plain: dict[tuple[str, bytes], bytes] = {}

    def seal(self, webhook_id: str, key: bytes) -> bytes:
        out = self._kms.encrypt(
            KeyId=self._key, Plaintext=key, EncryptionContext={"dagcast:webhook": webhook_id}
        )
        return bytes(out["CiphertextBlob"])

    def open(self, hook: Hook) -> bytes:
        """The hook's HMAC key."""
        key = (hook.id, hook.sealed_secret)
        if key not in self._plain:
            out = self._kms.decrypt(
                CiphertextBlob=hook.sealed_secret, EncryptionContext={"dagcast:webhook": hook.id}
            )
            self._plain[key] = bytes(out["Plaintext"])
        return self._plain[key]
