"""A REST route called the way API Gateway's Lambda proxy calls it, and its answer measured the way
Lambda measures it: the dict the Chalice handler returns, JSON-encoded (Lambda refuses a response
over 6 MB, and API Gateway then answers 502)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from chalice.app import Chalice
from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

SIX_MB = 6_000_000  # "6 MB": under AWS's 6,291,556-byte limit whichever way a megabyte is read


def proxy_call(app: Chalice, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """GET ``path`` through the app's Lambda handler: the proxy response dict it returns."""
    converter = LambdaEventConverter(RouteMatcher(list(app.routes)), app.api.binary_types)
    full = f"{path}?{urlencode(query)}" if query else path
    event = converter.create_lambda_event("GET", full, {"host": "127.0.0.1:8000"})
    answer: dict[str, Any] = app(event, LambdaContext("api_handler", 512))
    return answer


def lambda_bytes(answer: dict[str, Any]) -> int:
    """Bytes of the response Lambda would return for this proxy answer."""
    return len(json.dumps(answer).encode())
