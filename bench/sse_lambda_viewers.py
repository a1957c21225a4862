"""The viewers of bench/sse_lambda_shape.py: SSE clients over raw asyncio sockets, cheap enough that
one process holds hundreds of them beside the SSE servers on a 2-core machine.

Each viewer sends one events request (its own ``X-Forwarded-For``, as clients behind the function
URL are told apart), reads the chunked body (the endpoint writes one SSE message per chunk) and,
for every event with an ``id:`` other than the opening snapshot, keeps its write→client latency:
the receipt's wall clock against the event's ``timestamp`` (taken just before its DynamoDB put; the
same machine, so the same clock), with that timestamp, so the benchmark can pick a phase's events.
"""

from __future__ import annotations

import asyncio
import json
import time

CONNECTS_AT_ONCE = 8  # the stream caps' slots are taken with conditional writes: a burst would race
REFUSED_RETRIES = 50


class Viewer:
    def __init__(self, base: str, eid: str, n: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.eid = host, int(port), eid
        self.ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        self.receipts: list[tuple[int, float]] = []  # (the event's timestamp, its latency), ms
        self.opened = asyncio.Event()  # the first message (the snapshot) arrived

    def _request(self) -> bytes:
        return (
            f"GET /api/v1/dag-executions/{self.eid}/events HTTP/1.1\r\nHost: bench\r\n"
            f"X-Forwarded-For: {self.ip}\r\n\r\n"
        ).encode()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The connection once its answer is 200 (None: refused, 429)."""
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        writer.write(self._request())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 200:
            return reader, writer
        writer.close()
        if status != 429:
            raise RuntimeError(f"viewer {self.ip}: HTTP {status}")
        return None

    async def watch(self) -> None:
        """Read the stream until cancelled, retrying a refused connection (a slot being freed)."""
        for _ in range(REFUSED_RETRIES):
            opened = await self._open()
            if opened is not None:
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"viewer {self.ip}: refused {REFUSED_RETRIES} times")
        reader, writer = opened
        try:
            pending = b""
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return  # the stream ended (its lifetime, or the terminal event)
                chunk = await reader.readexactly(size + 2)
                received = time.time() * 1000
                pending += chunk[:-2]
                *messages, pending = pending.split(b"\n\n")
                for message in messages:
                    self._message(message, received)
        finally:
            writer.close()

    def _message(self, message: bytes, received_ms: float) -> None:
        if not self.opened.is_set():
            self.opened.set()  # the snapshot (or retry:): not an event written during the run
            return
        if not message.startswith(b"id:") and b"\nid:" not in message:
            return  # a heartbeat or retry: carries no id
        data = b"".join(line[5:] for line in message.split(b"\n") if line.startswith(b"data:"))
        event = json.loads(data)
        if not event.get("snapshot") and "timestamp" in event:
            self.receipts.append((int(event["timestamp"]), received_ms - float(event["timestamp"])))


async def connect_all(viewers: list[Viewer]) -> list[asyncio.Task[None]]:
    """Start every viewer, a few at a time, each once its snapshot has arrived: the running tasks."""
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    tasks: list[asyncio.Task[None]] = []

    async def start(viewer: Viewer) -> None:
        async with gate:
            task = asyncio.get_running_loop().create_task(viewer.watch())
            tasks.append(task)
            opened = asyncio.ensure_future(viewer.opened.wait())
            await asyncio.wait({task, opened}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                opened.cancel()
                task.result()  # raises what stopped it

    await asyncio.gather(*(start(v) for v in viewers))
    return tasks
