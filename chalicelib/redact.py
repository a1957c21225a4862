"""Redaction of secret-looking values before anything is stored.

A value is redacted when its *key* looks like a secret: the key, lower-cased with everything but
letters and digits removed, equals or ends with one of the sensitive names (``api_key``,
``X-Api-Key``, ``githubToken``, ``db_password``…). ``total_tokens`` is not redacted: it ends with
"tokens", not "token". Values inside strings are not parsed — only keys of JSON objects count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
DEFAULT_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "accesskey",
    "privatekey",
    "credential",
    "credentials",
    "cookie",
    "sessionid",
    "signature",
)
_NORMALISE = re.compile(r"[^a-z0-9]")


def _normalise(key: str) -> str:
    return _NORMALISE.sub("", key.lower())


class Redactor:
    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._keys = tuple({_normalise(k) for k in (*DEFAULT_KEYS, *extra_keys) if _normalise(k)})

    def is_sensitive(self, key: str) -> bool:
        n = _normalise(key)
        return any(n.endswith(k) for k in self._keys)

    def apply(self, value: Any) -> Any:
        """A copy of ``value`` with every secret-looking key's value replaced by "[REDACTED]"."""
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and self.is_sensitive(k) else self.apply(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value
