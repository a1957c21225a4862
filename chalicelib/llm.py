"""The ``llm`` kind: a chat completion from an OpenAI-compatible provider, streamed by default.

With ``"stream": true`` (the default) the provider is asked for Server-Sent Events; each chunk's
``choices[0].delta.content`` goes to ``ctx.emit_text`` as it arrives (the attempt's live text,
``substep.progress``) and the result is the whole text; ``data: [DONE]`` ends it. A stream that
breaks — the connection drops, an ``error`` chunk, no ``[DONE]`` — fails the attempt with what was
received so far named; a retry asks again and its text starts over under its own attempt number.
A provider that answers a streamed request with plain JSON is read as ``"stream": false`` is:
one request, one answer, no live text (today's behaviour, exactly the same request body).

Not here: coalescing and redaction of the live text (chalicelib/progress.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from .domain.errors import TaskFailed
from .kinds import (
    MAX_TIMEOUT_SECONDS,
    KeyRef,
    Kind,
    RunContext,
    _lookup_check,
    _Params,
    register_kind,
    resolve_key,
)


class Message(_Params):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


class LlmParams(_Params):
    baseUrl: str = Field(pattern=r"^https?://", max_length=2_000)
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=200)
    apiKey: KeyRef
    temperature: float | None = Field(default=None, ge=0, le=2)
    maxTokens: int | None = Field(default=None, ge=1, le=1_000_000)
    timeoutSeconds: float = Field(default=120, gt=0, le=MAX_TIMEOUT_SECONDS)
    stream: bool = True


def _request_body(p: LlmParams) -> dict[str, Any]:
    body: dict[str, Any] = {"model": p.model, "messages": [m.model_dump() for m in p.messages]}
    if p.temperature is not None:
        body["temperature"] = p.temperature
    if p.maxTokens is not None:
        body["max_tokens"] = p.maxTokens
    if p.stream:
        body["stream"] = True
    return body


def _llm(p: LlmParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    import httpx

    key = ctx.resolve(p.apiKey)
    url = p.baseUrl.rstrip("/") + "/chat/completions"
    timeout = min(p.timeoutSeconds, ctx.remaining())
    try:
        with httpx.stream(
            "POST", url, json=_request_body(p), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        ) as r:
            if r.status_code != 200:
                r.read()
                raise TaskFailed(f"{url} answered {r.status_code}: {r.text[:500]}")
            if p.stream and r.headers.get("content-type", "").startswith("text/event-stream"):
                return _read_stream(url, r.iter_lines(), ctx)
            r.read()
    except httpx.HTTPError as exc:
        raise TaskFailed(f"{url}: {type(exc).__name__}: {exc}") from None
    try:
        return r.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TaskFailed(f"{url} answered without choices[0].message.content: {r.text[:300]}") from None


def _read_stream(url: str, lines: Iterable[str], ctx: RunContext) -> str:
    """The text of an SSE completion, each piece emitted as it comes; TaskFailed if it breaks."""
    import httpx

    parts: list[str] = []
    try:
        for line in lines:
            if not line.startswith("data:"):
                continue  # comments (": keep-alive"), event names, blank lines between events
            data = line[5:].strip()
            if data == "[DONE]":
                return "".join(parts)
            piece = _delta_of(url, data, sum(map(len, parts)))
            if piece:
                parts.append(piece)
                ctx.emit_text(piece)
    except httpx.HTTPError as exc:
        raise TaskFailed(
            f"{url}: the stream broke after {sum(map(len, parts))} characters: {type(exc).__name__}: {exc}"
        ) from None
    raise TaskFailed(f"{url}: the stream ended without [DONE] after {sum(map(len, parts))} characters")


def _delta_of(url: str, data: str, received: int) -> str | None:
    """One chunk's ``choices[0].delta.content`` (None when it carries none); TaskFailed for an error."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise TaskFailed(
            f"{url}: a stream chunk is not JSON after {received} characters: {data[:200]}"
        ) from None
    if not isinstance(chunk, dict):
        raise TaskFailed(f"{url}: a stream chunk is not an object: {data[:200]}")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise TaskFailed(
            f"{url}: the provider failed mid-stream after {received} characters: {str(message)[:500]}"
        )
    try:
        content = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None  # a chunk without a delta (usage, role only)
    return content if isinstance(content, str) else None


register_kind(Kind("llm", LlmParams, _llm, _lookup_check(lambda p: resolve_key(p.apiKey))))
