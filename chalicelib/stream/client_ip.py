"""Which client a stream counts against for the per-client cap (limits.py): its IP address.

Direct (the local server, ``DAGCAST_TRUST_PROXY`` off): the socket's peer. Nothing a client sends
is read, so it cannot pick its own bucket.

Behind the function URL (``DAGCAST_TRUST_PROXY`` on, template.yaml): the peer is the Lambda Web
Adapter on localhost, so the address comes from the request:

1. ``x-amzn-request-context``: the adapter writes the invocation's request context into this header
   as JSON, and for a function URL ``http.sourceIp`` is the address Lambda saw the request come
   from. The adapter sets it with ``HeaderMap::insert`` (aws-lambda-web-adapter src/lib.rs,
   ``fetch_response``; fix #286, v0.7.2 on), which replaces any header of that name the client sent,
   and its test ``test_http_context_multi_headers`` pins that exactly one reaches the app. So in AWS
   a client cannot choose this value.
2. Without that header, or when it does not parse or holds no valid address: the first
   ``X-Forwarded-For`` address, as before. A client can write that header itself, so this is a
   fallback for a proxy that is not the adapter, not a guarantee (docs/security.md).

The context header is read only with ``trust_proxy`` on: a server that clients reach directly
would otherwise let them forge it as easily as ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping

REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
MAX_CONTEXT_CHARS = 16_384  # a function URL's context is well under 2 KB; more is not the adapter's


def context_source_ip(header: str | None) -> str | None:
    """``requestContext.http.sourceIp`` from the adapter's header (normalised), or None when the
    header is absent, is not JSON, has no such field, or the field is not an IP address."""
    if not header or len(header) > MAX_CONTEXT_CHARS:
        return None
    try:
        context = json.loads(header)
    except ValueError:
        return None
    http = context.get("http") if isinstance(context, dict) else None
    ip = http.get("sourceIp") if isinstance(http, dict) else None
    if not isinstance(ip, str):
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None


def client_ip(headers: Mapping[str, str], peer: str | None, trust_proxy: bool) -> str:
    """The address the per-client cap counts by (``headers`` case-insensitive, as Starlette's)."""
    if trust_proxy:
        from_context = context_source_ip(headers.get(REQUEST_CONTEXT_HEADER))
        if from_context is not None:
            return from_context
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return peer or "unknown"
