"""A client that stops reading: its blocked write is abandoned after send_timeout_seconds, so
the stream closes (the client will reconnect and replay) instead of holding on forever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from chalicelib.config import Settings
from chalicelib.stream.endpoint import EventsEndpoint, _Stream


def test_a_write_blocked_longer_than_the_send_timeout_is_abandoned():
    settings = Settings(table_name="tbl", auth=False, send_timeout_seconds=0.2, heartbeat_seconds=0.4)
    endpoint = EventsEndpoint(settings, store_factory=lambda: None)  # type: ignore[arg-type,return-value]

    async def scenario() -> tuple[bool, bool, float]:
        async def never_drains(message: MutableMapping[str, Any]) -> None:
            await asyncio.Event().wait()  # like uvicorn's send waiting for a client that never reads

        async def drains(message: MutableMapping[str, Any]) -> None:
            return None

        task = asyncio.current_task()
        assert task is not None
        st = _Stream(task, None)
        endpoint._track(st)
        try:
            ok = await endpoint._write(drains, b"data: x\n\n", st)
            started = time.monotonic()
            blocked = await endpoint._write(never_drains, b"data: y\n\n", st)
            return ok, blocked, time.monotonic() - started
        finally:
            endpoint._streams.discard(st)

    ok, blocked, waited = asyncio.run(scenario())
    assert ok is True
    assert blocked is False
    assert 0.15 <= waited < 1.0
