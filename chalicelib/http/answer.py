"""How big a REST answer is once Lambda returns it, and how much text fits in one.

API Gateway's Lambda proxy gets the handler's answer as JSON: Chalice serialises the body with
``json.dumps`` (``ensure_ascii``: a CJK character becomes a six-byte ``\\uXXXX``, a character outside
the BMP a twelve-byte surrogate pair), and the proxy envelope JSON-encodes that body string once
more (every quote and backslash doubles). Lambda refuses a response over 6 MB (its errors quote
6,291,556 bytes) and API Gateway answers 502. So a result of 4,000,000 UTF-8 bytes is up to
14 MB here: what is sent is measured in these bytes, never in the stored text's length.

Pure: no Chalice import (``proxy_answer`` models ``chalice.app.Response.to_dict``; a unit test pins
the model to Chalice's own), no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

LAMBDA_RESPONSE_BYTES: Final = 6_291_456  # 6 MiB, a little under the 6,291,556 AWS's errors quote
ANSWER_BYTES: Final = 6_000_000  # every REST answer, encoded as Lambda returns it, stays under this
PAGE_TEXT_BYTES: Final = 5_000_000  # a result page's text, encoded: the rest of its answer is small
MAX_PAGE_CHARS: Final = 5_000_000  # ?limit= at most (the page may hold fewer: PAGE_TEXT_BYTES)
_STRING_OVERHEAD: Final = 6  # "…" by Chalice, then "\"…\"" in the envelope
_BLOCK: Final = 65_536  # characters measured at once while looking for where a page ends

T = TypeVar("T")


def _extra_types(value: Any) -> Any:
    """What Chalice's ``handle_extra_types`` does: DynamoDB numbers as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def proxy_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The dict a Chalice route returns to the API Gateway proxy (``Response.to_dict``)."""
    return {
        "headers": dict(headers or {}),
        "multiValueHeaders": {},
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":"), default=_extra_types),
    }


def encoded_size(status: int, body: Any, headers: Mapping[str, str] | None = None) -> int:
    """Bytes of the Lambda response carrying this answer (the envelope, JSON-encoded)."""
    return len(json.dumps(proxy_answer(status, body, headers)).encode())


def text_cost(text: str) -> int:
    """Bytes ``text`` adds to a Lambda response as a JSON string in the body: ASCII 1 (quotes and
    backslashes 4), other BMP characters 7, characters beyond the BMP 14. Additive: a character's
    escape does not depend on its neighbours."""
    return len(json.dumps(json.dumps(text))) - _STRING_OVERHEAD


def fitting_end(text: str, start: int, end: int, budget: int) -> int:
    """The largest ``stop`` in [start, end] with ``text_cost(text[start:stop]) <= budget``."""
    used, at = 0, start
    while at < end:
        block = text[at : min(at + _BLOCK, end)]
        cost = text_cost(block)
        if used + cost <= budget:
            used, at = used + cost, at + len(block)
            continue
        low, high = 0, len(block)  # block[:low] fits, block[:high] does not
        while high - low > 1:
            middle = (low + high) // 2
            if used + text_cost(block[:middle]) <= budget:
                low = middle
            else:
                high = middle
        return at + low
    return end


def fit(shrink: Callable[[int | None], T], size: Callable[[T], int], caps: Iterable[int]) -> T:
    """``shrink(None)`` (the answer untouched) if it fits ANSWER_BYTES, else ``shrink(cap)`` for the
    first cap, largest first, whose answer fits (the last cap's answer if none does)."""
    answer = shrink(None)
    for cap in caps:
        if size(answer) <= ANSWER_BYTES:
            break
        answer = shrink(cap)
    return answer
