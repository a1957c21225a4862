"""An OpenAI-compatible chat-completions server for tests: a Starlette app served by uvicorn on
127.0.0.1 in a thread. ``"stream": true`` answers Server-Sent Events, one chunk per word of the
reply with ``delay`` seconds between them, then ``data: [DONE]``; a user message containing
``FAIL_AFTER:<n>`` breaks the stream after n chunks (an ``error`` chunk, or with ``DROP_AFTER:<n>``
the connection closes without [DONE]). Each chunk's send time is recorded (latency benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Provider:
    key: str
    delay: float = 0.02
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)  # chunk text → time.time() it was sent
    url: str = ""

    def reply_to(self, body: dict[str, Any]) -> list[str]:
        """The reply, in the pieces it is streamed in: the words of "echo: <last message>"."""
        last = str(body["messages"][-1]["content"])
        return re.findall(r"\S+\s*", f"echo: {last} ")

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        pieces = self.reply_to(body)
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            return JSONResponse({"choices": [{"index": 0, "message": message}]})
        return StreamingResponse(self._chunks(body, pieces), media_type="text/event-stream")

    async def _chunks(self, body: dict[str, Any], pieces: list[str]) -> AsyncIterator[bytes]:
        last = str(body["messages"][-1]["content"])
        fail = re.search(r"FAIL_AFTER:(\d+)", last)
        drop = re.search(r"DROP_AFTER:(\d+)", last)
        yield b": keep-alive\n\n"
        yield _data({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for n, piece in enumerate(pieces):
            if fail and n == int(fail.group(1)):
                yield _data({"error": {"message": "the model is overloaded", "type": "server_error"}})
                return
            if drop and n == int(drop.group(1)):
                raise ConnectionResetError("dropped mid-stream")  # uvicorn closes the connection
            await asyncio.sleep(self.delay)
            self.sent_at.setdefault(piece, time.time())
            yield _data({"choices": [{"index": 0, "delta": {"content": piece}}]})
        yield _data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


@contextmanager
def serve(provider: Provider) -> Iterator[Provider]:
    """``provider`` served on a free port of 127.0.0.1 (``provider.url`` is its base URL, …/v1)."""
    app = Starlette(routes=[Route("/v1/chat/completions", provider.completions, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    provider.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=5)
