"""ASGI scopes for tests that parse a stream request without serving it (pure)."""

from __future__ import annotations

from starlette.types import Scope


def events_scope(*headers: tuple[str, str], client: tuple[str, int] = ("127.0.0.1", 40000)) -> Scope:
    """A GET of execution ``e``'s event stream, as the router hands it to the endpoint."""
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/dag-executions/e/events",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "path_params": {"execution_id": "e"},
        "client": client,
    }
