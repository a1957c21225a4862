"""The SSE app as Lambda runs it, without a socket: no disconnect signal, and a virtual clock.

- ``open_stream`` drives the ASGI app the way the Lambda Web Adapter does for a streamed response:
  the request, then *nothing* — ``receive`` never returns ``http.disconnect``, because Lambda tells
  a streaming function nothing when its client goes away (aws-lambda-nodejs-runtime-interface-client
  #145). Every write succeeds, read or not. So a stream whose client has gone ends only by itself:
  at the terminal event or at ``max_stream_seconds``.
- ``VirtualClock`` is the hub's clock in tests that count polls over a window: ``sleep`` moves
  virtual time on at once, calls ``on_advance`` (to write what is due by then), and parks for good
  once the window is over, so the count covers exactly the window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass
class LambdaStream:
    """One request to the app: its status, what it wrote, and whether the app has returned."""

    task: asyncio.Task[None]
    status: int | None = None
    chunks: list[bytes] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def body(self) -> str:
        return b"".join(self.chunks).decode()

    def ids(self) -> list[int]:
        """The ``id:`` of every message written so far, in order."""
        return [int(line[3:].strip()) for line in self.body.splitlines() if line.startswith("id:")]


async def open_stream(
    app: ASGIApp, path: str, query: str = "", headers: dict[str, str] | None = None
) -> LambdaStream:
    """Start a GET of ``path`` and return once the response has started (or the app returned)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("203.0.113.7", 40000),
        "server": ("lambda-url", 443),
    }
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect ever comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            stream.status = int(message["status"])
            stream.started.set()
        elif message.get("body"):
            stream.chunks.append(bytes(message["body"]))

    async def run() -> None:
        await app(scope, receive, send)

    stream = LambdaStream(asyncio.get_running_loop().create_task(run()))
    stream.task.add_done_callback(lambda _: stream.started.set())
    await stream.started.wait()
    return stream


class VirtualClock:
    """Virtual time for a hub: ``now()`` and ``sleep()``, for ``until`` virtual seconds."""

    def __init__(self, until: float, on_advance: Callable[[float], None] | None = None) -> None:
        self.t = 0.0
        self.until = until
        self.on_advance = on_advance
        self.parked = asyncio.Event()  # set once a sleep would pass ``until``

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if self.t + seconds > self.until:
            self.parked.set()
            await asyncio.Event().wait()  # the window is over: this feed polls no more
        self.t += seconds
        if self.on_advance is not None:
            await asyncio.to_thread(self.on_advance, self.t)
        else:
            await asyncio.sleep(0)
