"""A search of the list of executions: its filters (status, tags, creation time) read from a query
string, and its opaque, tamper-evident cursor.

The cursor is ``v1.<payload>.<check>`` in base64url: the payload holds the position (the last
``listSK`` the page examined) and a fingerprint of the search (scope and filters); ``check`` is the
first 16 bytes of SHA-256 over the payload. A checksum, not an HMAC with a stage secret, because a
cursor grants nothing: the scope comes from the caller's credentials and the filters from the query,
never from the cursor, and the position is checked to be a ``listSK`` — a forged one lists the
caller's own executions from another point, as ``until`` does. What the check catches is a cursor
changed by hand or cut by a copy and paste, and one used with other filters: each is a 400 that says
so, not a silently wrong page. No secret means no Secrets Manager read for the list route, and
cursors that survive a secret's rotation.

Pure: no I/O. The list index is read by ``persistence/listing.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .dag import MAX_TAGS, TAG_PATTERN
from .errors import BadRequest, InvalidCursor
from .model import EXECUTION_ID_CHARS, ExecutionStatus

_VERSION: Final = "v1"
_STATUSES: Final = tuple(ExecutionStatus)  # a tuple: `"x" in ExecutionStatus` raises on Python 3.11
_TAG = re.compile(TAG_PATTERN)
_MILLIS = re.compile(r"[0-9]{1,15}")  # ASCII digits; listSK holds createdAt in 15
# A position is a listSK: createdAt in 15 digits, "#", an execution id.
_POSITION = re.compile(rf"[0-9]{{15}}#[{EXECUTION_ID_CHARS}]{{1,128}}")


@dataclass(frozen=True)
class ListQuery:
    """What a list asks for. ``tags``: all of them (an AND); ``since`` / ``until``: creation time
    in epoch milliseconds, both included."""

    status: str | None = None
    tags: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    scope: str = ""  # the tenant's list (persistence/keys.py DEFAULT_SCOPE until tenants exist)

    def fingerprint(self) -> str:
        """What a cursor is bound to: the same search in the same scope."""
        canonical = json.dumps(
            [self.scope, self.status, sorted(self.tags), self.since, self.until], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_query(query: Mapping[str, str] | None, scope: str) -> ListQuery:
    """The filters of ``GET /api/v1/dag-executions``; BadRequest names the one that is wrong."""
    query = query or {}
    status = query.get("status")
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"status must be one of {', '.join(_STATUSES)}, got {status[:40]!r}")
    tags = tuple(dict.fromkeys(_all(query, "tag")))
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tag filters, got {len(tags)}")
    for tag in tags:
        if not _TAG.fullmatch(tag):
            raise BadRequest(f"tag must be 1-64 characters of A-Z a-z 0-9 _ . : -, got {tag[:80]!r}")
    since, until = _millis(query, "since"), _millis(query, "until")
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})")
    return ListQuery(status=status, tags=tags, since=since, until=until, scope=scope)


def _all(query: Mapping[str, str], name: str) -> Sequence[str]:
    getlist = getattr(query, "getlist", None)  # Chalice's MultiDict: every value of a repeated name
    if getlist is not None:
        try:
            return list(getlist(name))
        except KeyError:  # MultiDict.getlist raises for a name that is not there
            return []
    value = query.get(name)
    return [] if value is None else [value]


def _millis(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _MILLIS.fullmatch(raw):
        raise BadRequest(f"{name} must be a creation time in epoch milliseconds, got {raw[:40]!r}")
    return int(raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check(payload: str) -> str:
    return _b64(hashlib.sha256(f"{_VERSION}.{payload}".encode()).digest()[:16])


def encode_cursor(position: str, query: ListQuery) -> str:
    payload = _b64(json.dumps({"p": position, "q": query.fingerprint()}, separators=(",", ":")).encode())
    return f"{_VERSION}.{payload}.{_check(payload)}"


def decode_cursor(cursor: str, query: ListQuery) -> str:
    """The position a ``nextCursor`` of this same search stands for; InvalidCursor otherwise."""
    version, _, rest = cursor.partition(".")
    payload, _, check = rest.partition(".")
    if version != _VERSION or not payload or check != _check(payload):
        raise InvalidCursor("cursor is not a nextCursor this API returned (it was changed or cut)")
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidCursor("cursor is not a nextCursor this API returned") from None
    if not isinstance(data, dict) or data.get("q") != query.fingerprint():
        raise InvalidCursor(
            "cursor belongs to another search: send it with the same status, tag, since and until"
        )
    position = data.get("p")
    if not isinstance(position, str) or not _POSITION.fullmatch(position):
        raise InvalidCursor("cursor is not a nextCursor this API returned")
    return position
