"""A running dagcast (`dagcast up`, a stage) from a test, over real HTTP: submit a job, read an
execution's SSE stream to its end."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from httpx_sse import connect_sse


def submit(base: str, job: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{base}/api/v1/execute-dag", json=job, timeout=30)
    assert reply.status_code == 202, reply.text
    body: dict[str, Any] = reply.json()
    return body


def read_stream(url: str, timeout: float = 60) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """Every SSE message until the server closes the stream, with its receipt time."""
    messages: list[dict[str, Any]] = []
    with httpx.Client(timeout=httpx.Timeout(timeout)) as client, connect_sse(client, "GET", url) as source:
        response = source.response
        for sse in source.iter_sse():
            if not sse.data:
                continue
            messages.append(
                {"event": sse.event, "id": sse.id, "data": json.loads(sse.data), "received": time.monotonic()}
            )
    return response, messages
