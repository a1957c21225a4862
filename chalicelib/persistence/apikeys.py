"""API keys registered in the table: ``APIKEY#<sha256 digest>`` → its tenant.

Environment variables hold 4 KB (about 55 digests), so a stage's keys live here, written by
``dagcast api-key --tenant T --stage S`` (dagcast/cli/keys.py, with the operator's credentials: no
function of the stage can write them) and read by the API's gate (http/gate.py, which caches each
answer). Only digests are stored: a table dump grants nothing.
"""

from __future__ import annotations

from typing import Any, Final

from .table import Table, from_item, to_item

APIKEY_PREFIX: Final = "APIKEY#"
APIKEY_SK: Final = "APIKEY"


def apikey_key(digest: str) -> dict[str, Any]:
    """The registered key's item key, marshalled."""
    return to_item({"PK": APIKEY_PREFIX + digest, "SK": APIKEY_SK})


def apikey_item(digest: str, tenant: str, created_at: int) -> dict[str, Any]:
    """The registered key's item, marshalled."""
    return to_item({"PK": APIKEY_PREFIX + digest, "SK": APIKEY_SK, "tenant": tenant, "createdAt": created_at})


class ApiKeyRegistry(Table):
    def tenant_of(self, digest: str) -> str | None:
        """The key's tenant, or None for a key nobody registered (or one revoked)."""
        out = self._db.get_item(TableName=self._table, Key=apikey_key(digest), ConsistentRead=True)
        return str(from_item(out["Item"])["tenant"]) if "Item" in out else None
