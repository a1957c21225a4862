"""bench/progress_latency — live text (``substep.progress``, docs/events.md): how long a provider's
chunk takes to reach a viewer, and what streaming costs in DynamoDB writes.

One ``llm`` task streams ``--tokens`` chunks (one word each, ``--delay`` s apart) from the fake
OpenAI-compatible provider (tests/support/fake_openai.py, uvicorn on 127.0.0.1), through the
embedded local stack (the real state machine on moto, the handlers in-process, the default
coalescing) and the local front (REST + SSE, the same app as `dagcast up`, served by uvicorn), to a
real SSE client (httpx) reading the execution's stream. Each chunk's latency is the time it was sent
by the provider (``Provider.sent_at``) to the receipt of the first ``substep.progress`` event whose
``delta`` holds its last character (placed by ``offset``). One clock: everything runs on this
machine. It prints p50 / p99 / max of that latency, the events, and the DynamoDB write requests the
handlers made per 1,000 streamed tokens: the streamed job's writes minus the same job's with
``"stream": false`` (counted by a botocore hook on every write call, not metered: metering would
slow the writes it measures).

    python -m bench.progress_latency [--tokens 1000] [--delay 0.02]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.sse_lambda_shape import percentile
from tests.support.fake_openai import Provider, serve

KEY = "sk-bench-not-a-real-key-123"
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@dataclass
class WriteCount:
    """Write requests of one boto3 client (each call once; a batch counts once)."""

    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, **_: Any) -> None:
        with self.lock:
            self.calls += 1

    def attach(self, client: Any) -> None:
        for op in WRITES:
            client.meta.events.register(f"before-call.dynamodb.{op}", self)


def job(provider: Provider, words: list[str], stream: bool) -> dict[str, Any]:
    params = {
        "baseUrl": provider.url,
        "model": "bench",
        "messages": [{"role": "user", "content": " ".join(words)}],
        "apiKey": {"env": "BENCH_STREAM_API_KEY"},
        "stream": stream,
    }
    return {"originalRequest": "progress latency", "tasks": [{"id": 1, "action": "llm", "params": params}]}


def watch(base: str, body: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """Submit ``body`` and read its stream to the end: (receipt time, event) for every event."""
    accepted = httpx.post(f"{base}/api/v1/execute-dag", json=body, timeout=30).json()
    received: list[tuple[float, dict[str, Any]]] = []
    with httpx.stream("GET", accepted["eventsUrl"] + "&since=0", timeout=None) as reply:
        data: list[str] = []
        for line in reply.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                data = []
                received.append((time.time(), event))
                if event.get("type") in ("execution.completed", "execution.failed"):
                    break
    return received


def latencies(
    provider: Provider, words: list[str], received: list[tuple[float, dict[str, Any]]]
) -> list[float]:
    """Per chunk: its send time → the receipt of the event that delivered its last character."""
    arrivals: list[tuple[int, float]] = []  # (end of the text delivered, received at), in order
    for at, e in received:
        if e.get("type") == "substep.progress" and isinstance(e.get("delta"), str):
            arrivals.append((e["offset"] + len(e["delta"]), at))
    out: list[float] = []
    end = 0
    pieces = Provider("").reply_to({"messages": [{"content": " ".join(words)}]})
    for piece in pieces:
        end += len(piece.rstrip())  # the chunk's last character (its trailing space may be held back)
        sent = provider.sent_at.get(piece)
        got = next((at for upto, at in arrivals if upto >= end), None)
        if sent is not None and got is not None:
            out.append(got - sent)
        end += len(piece) - len(piece.rstrip())
    return out


def serve_front(stack: Any) -> tuple[str, Any]:
    import uvicorn

    from dagcast.local.launch import free_port
    from dagcast.local.server import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["DAGCAST_PUBLIC_URL"] = base
    server = uvicorn.Server(
        uvicorn.Config(create_app(stack), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return base, server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between the provider's chunks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["BENCH_STREAM_API_KEY"] = KEY
    os.environ.setdefault("DAGCAST_STREAM_SECRET", "bench-progress-latency-secret-0123456789")

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-bench-progress").start()
    try:
        import app

        app.services.cache_clear()
        writes = WriteCount()
        writes.attach(app.services().store._db)
        base, server = serve_front(stack)
        with serve(Provider(KEY, delay=args.delay)) as provider:
            words = [f"t{n:04d}" for n in range(args.tokens - 1)]  # + "echo:" = --tokens chunks
            before = writes.calls
            plain = watch(base, job(provider, words, stream=False))
            plain_writes = writes.calls - before
            before = writes.calls
            received = watch(base, job(provider, words, stream=True))
            streamed_writes = writes.calls - before
            report(args, provider, words, received, plain, streamed_writes - plain_writes)
        server.should_exit = True
    finally:
        stack.stop()


def report(
    args: Any,
    provider: Provider,
    words: list[str],
    received: list[tuple[float, dict[str, Any]]],
    plain: list[tuple[float, dict[str, Any]]],
    extra_writes: int,
) -> None:
    events = [e for _, e in received if e.get("type") == "substep.progress"]
    lat = sorted(latencies(provider, words, received))
    ended = received[-1][1]
    assert ended["type"] == "execution.completed", ended
    assert plain[-1][1].get("finalResult") == ended.get("finalResult"), "streamed and plain results differ"
    per_k = 1000 / args.tokens
    print(
        f"progress: {args.tokens} tokens at {1 / args.delay:.0f}/s → {len(events)} substep.progress events "
        f"({len(events) * per_k:.0f} per 1,000 tokens), chunk → SSE client latency p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(lat, 0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms ({len(lat)} chunks); "
        f"DynamoDB writes per 1,000 streamed tokens: {extra_writes * per_k:.0f} "
        f"({extra_writes} more write requests than the same job with stream: false)"
    )


if __name__ == "__main__":
    main()
