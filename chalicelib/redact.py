"""Redaction: what a secret looks like, and the text with it replaced by "[REDACTED]".

One ``Redactor`` removes, from JSON values (``apply``) and from plain text (``text``):

- the value of every JSON field whose *name* looks secret (``is_sensitive``): one of its words —
  ``api_key`` is "api", "key"; ``X-Amz-Signature`` is "x", "amz", "signature"; ``githubToken`` is
  "github", "token" — is a secret word (key, token, secret, password, passwd, signature, sig, auth,
  credential, session, cookie…), or the name ends with one of ``DEFAULT_KEYS`` or
  ``DAGCAST_REDACT_KEYS`` (letters and digits only, lower-cased). ``total_tokens`` keeps its value:
  "tokens" is not "token";
- in any string: URL userinfo (``https://user:pw@host``), ``name=value`` query and form fields and
  ``"name": "value"`` JSON fields written inside text, whose names look secret; ``Bearer …`` and
  ``Basic …`` credentials; AWS access key ids (``AKIA…``, ``ASIA…``);
- every *value* it was given (the secrets a task resolved from ``{"env"}``, ``{"ssm"}``,
  ``{"secret"}`` references), wherever it occurs, also URL-encoded. A value shorter than
  ``MIN_VALUE_CHARS`` is not redacted by value: "admin" or "1234" would cut every word they occur in.

Redacting twice changes nothing. ``stream()`` redacts text that arrives in chunks (a secret split
across two chunks is still found). Not here: where text is redacted (the task runner, the store, the
API, log lines — docs/security.md).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
MIN_VALUE_CHARS = 8
# A name ending with one of these is secret (letters and digits only: "X-Api-Key" → "xapikey").
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
# A name with one of these as a word is secret ("session_state", "X-Auth-User", "sig").
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "cookie",
    }
)
_NORMALISE = re.compile(r"[^a-z0-9]")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#\"'<>]+@")
_CREDENTIAL = re.compile(r"\b(Bearer|Basic|bearer|basic|BEARER|BASIC)(\s+)[A-Za-z0-9\-._~+/=:%]{8,}")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
# name=value (a query parameter, a form field, "token=… " in a message)
_PAIR = re.compile(r"(?<![A-Za-z0-9_.\-\[\]])([A-Za-z0-9_.\-\[\]]{1,100})(=)([^&\s#\"'<>;,]+)")
# "name": "value" / 'name': 'value' written inside a string (a JSON body or a dict in a message)
_QUOTED = re.compile(r"([\"'])([A-Za-z0-9_.\- ]{1,100})\1(\s*:\s*)([\"'])((?:\\.|(?!\4).)*)\4")
# name: value as in a header line ("X-Api-Key: abc123…"), the value up to the next space
_HEADER = re.compile(r"(?<!\S)([A-Za-z0-9\-]{1,100})(:[ \t]*)([^\s\"',;]+)")
# the last word before a stream's cut, if the shape it starts goes on after it
_LEAD = re.compile(r"(?i)(?:bearer|basic|\S*:)\s*\Z")


def _normalise(key: str) -> str:
    return _NORMALISE.sub("", key.lower())


class Redactor:
    def __init__(self, extra_keys: Iterable[str] = (), values: Iterable[str] = ()) -> None:
        self._extra = tuple(extra_keys)
        self._keys = tuple({_normalise(k) for k in (*DEFAULT_KEYS, *self._extra) if _normalise(k)})
        self._values = _value_forms(values)

    def with_values(self, values: Iterable[str]) -> Redactor:
        """This redactor, also removing ``values`` (those of at least MIN_VALUE_CHARS)."""
        return Redactor(self._extra, (*self._values, *values))

    @property
    def values(self) -> tuple[str, ...]:
        return self._values

    @property
    def longest_value(self) -> int:
        return max((len(v) for v in self._values), default=0)

    def is_sensitive(self, key: str) -> bool:
        n = _normalise(key)
        if any(n.endswith(k) for k in self._keys):
            return True
        return any(w.lower() in SECRET_WORDS for w in _WORDS.findall(key))

    def text(self, text: str) -> str:
        """``text`` with every secret value and every secret shape replaced by "[REDACTED]"."""
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
        text = _CREDENTIAL.sub(rf"\1\2{REDACTED}", text)
        text = _AWS_KEY_ID.sub(REDACTED, text)
        text = _PAIR.sub(lambda m: self._pair(m, 1, 3), text)
        text = _QUOTED.sub(self._quoted, text)
        return _HEADER.sub(lambda m: self._pair(m, 1, 3), text)

    def _pair(self, m: re.Match[str], name: int, value: int) -> str:
        if not self.is_sensitive(m.group(name)) or m.group(value) == REDACTED:
            return m.group(0)
        return m.group(0)[: m.start(value) - m.start(0)] + REDACTED

    def _quoted(self, m: re.Match[str]) -> str:
        q = m.group(4)
        # a harmless name's value may quote fields itself: 'body': '{"password": …}'
        value = REDACTED if self.is_sensitive(m.group(2)) else _QUOTED.sub(self._quoted, m.group(5))
        return f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{q}{value}{q}"

    def apply(self, value: Any) -> Any:
        """A copy of ``value`` with every secret-looking key's value replaced by "[REDACTED]" and
        every string (keys too) redacted as ``text`` does."""
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): (
                    REDACTED if isinstance(k, str) and self.is_sensitive(k) else self.apply(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


def _value_forms(values: Iterable[str]) -> tuple[str, ...]:
    """The values long enough to redact, with their URL-encoded forms; longest first, so a value
    that contains another is replaced whole."""
    forms: set[str] = set()
    for v in values:
        if len(v) >= MIN_VALUE_CHARS:
            forms |= {v, quote(v, safe=""), quote_plus(v)}
    return tuple(sorted(forms, key=lambda v: (-len(v), v)))


class StreamRedactor:
    """Redacts text that arrives in chunks: ``feed`` returns what can be shown so far, ``close``
    the rest. It holds back the tail a secret could still be continuing in — the longest value, or
    the last word and the one before it (a ``Bearer`` and its token) — and never cuts inside a
    value, so one split across chunks is found whole. A shape longer than ``HOLD`` characters
    without a space is shown in pieces and may escape the shape rules (values are always found)."""

    HOLD = 512

    def __init__(self, redactor: Redactor) -> None:
        self._r = redactor
        self._pending = ""

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        cut = self._safe_cut(self._pending)
        shown, self._pending = self._pending[:cut], self._pending[cut:]
        return self._r.text(shown) if shown else ""

    def close(self) -> str:
        shown, self._pending = self._pending, ""
        return self._r.text(shown) if shown else ""

    def _safe_cut(self, text: str) -> int:
        """Where the text may be cut: before its last two words and the longest value's length from
        the end (a run of HOLD characters without a space is cut anyway), never inside a value."""
        longest = self._r.longest_value
        spaces = [m.start() for m in re.finditer(r"\s+", text)][:-1]  # each before the last two words
        fits = [s for s in spaces if s <= len(text) - longest]
        cut = max(fits[-1] if fits else 0, len(text) - max(self.HOLD, longest))
        moved = True
        while moved and cut > 0:
            moved = False
            lead = _LEAD.search(text, 0, cut)  # "Bearer", "X-Api-Key:": the shape goes on after it
            if lead is not None and lead.start() < cut:
                cut, moved = lead.start(), True
            for value in self._r.values:
                start = text.find(value, max(0, cut - len(value) + 1))
                if 0 <= start < cut < start + len(value):
                    cut, moved = start, True
        return cut


class _RedactingRecords:
    """A log record factory: every record's message (and traceback) redacted by shape before any
    handler formats it — dagcast's own lines and every library's (httpx logs each request's URL)."""

    def __init__(self, redactor: Redactor, inner: Any) -> None:
        self.redactor = redactor
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: left as it is, logging reports it itself
            return record
        record.msg, record.args = self.redactor.text(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            tb = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.redactor.text(tb)
        return record


def redact_log_records(redactor: Redactor) -> None:
    """Redact every log record of this process from now on (once: a second call changes the
    redactor, not the chain)."""
    current = logging.getLogRecordFactory()
    if isinstance(current, _RedactingRecords):
        current.redactor = redactor
    else:
        logging.setLogRecordFactory(_RedactingRecords(redactor, current))
