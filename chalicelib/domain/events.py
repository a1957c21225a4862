"""Event names, payload builders and the Server-Sent Events wire format.

Payload fields follow the system dagcast replaces (camelCase, ``subStepId`` as a string and
``taskId`` as a number). ``seq`` and ``timestamp`` are added by the store when the event is
appended, because only the store knows the next sequence number.

Pure: no I/O here. The SSE encoder is tested byte for byte.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .errors import InvalidTypeFilter

EXECUTION_CREATED: Final = "execution.created"
EXECUTION_UPDATED: Final = "execution.updated"
EXECUTION_COMPLETED: Final = "execution.completed"
EXECUTION_FAILED: Final = "execution.failed"
SUBSTEP_STARTED: Final = "substep.started"
SUBSTEP_COMPLETED: Final = "substep.completed"
SUBSTEP_FAILED: Final = "substep.failed"
HEARTBEAT: Final = "heartbeat"

TERMINAL_TYPES: Final = frozenset({EXECUTION_COMPLETED, EXECUTION_FAILED})
ALL_TYPES: Final = (
    EXECUTION_CREATED,
    EXECUTION_UPDATED,
    EXECUTION_COMPLETED,
    EXECUTION_FAILED,
    SUBSTEP_STARTED,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    HEARTBEAT,
)

Event = dict[str, Any]
# Types a client can filter on (SSE ?types=, webhooks' "types"): every stored type.
FILTERABLE: Final = tuple(t for t in ALL_TYPES if t != HEARTBEAT)


@dataclass(frozen=True)
class TypeFilter:
    """``substep.completed,execution.*``: exact names and ``prefix.*`` patterns."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str | None) -> TypeFilter | None:
        """From a comma-separated query string value; None when absent."""
        if raw is None:
            return None
        return cls.of(p.strip() for p in raw.split(",") if p.strip())

    @classmethod
    def of(cls, patterns: Iterable[str]) -> TypeFilter:
        found = tuple(dict.fromkeys(patterns))
        if not found:
            raise InvalidTypeFilter("types must list event types, e.g. types=substep.completed,execution.*")
        for p in found:
            if not any(fnmatch.fnmatchcase(t, p) for t in FILTERABLE) or ("*" in p and not p.endswith(".*")):
                raise InvalidTypeFilter(
                    f"types: {p[:60]!r} matches no event type; use exact names or prefix.* "
                    f"from: {', '.join(FILTERABLE)}"
                )
        return cls(found)

    def matches(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


def now_ms() -> int:
    return int(time.time() * 1000)


def execution_created(total_tasks: int, original_request: str) -> Event:
    return {"type": EXECUTION_CREATED, "totalTasks": total_tasks, "originalRequest": original_request}


def substep_started(task_id: int, description: str, attempt: int = 1) -> Event:
    return {
        "type": SUBSTEP_STARTED,
        "subStepId": str(task_id),
        "taskId": task_id,
        "description": description,
        "attempt": attempt,
    }


EVENT_RESULT_BYTES: Final = 16_384  # results longer than this (as JSON) are cut in events


def preview(result_json: str, url: str) -> dict[str, Any]:
    """The ``result`` fields of an event or a task view: the result, or its first bytes and a link."""
    if len(result_json) <= EVENT_RESULT_BYTES:
        return {"result": json.loads(result_json)}
    return {
        "result": result_json[:EVENT_RESULT_BYTES],
        "resultTruncated": True,
        "resultBytes": len(result_json.encode()),
        "resultUrl": url,
    }


def substep_completed(task_id: int, duration_ms: int, result: Mapping[str, Any], attempt: int = 1) -> Event:
    """``result``: the fields from ``preview`` (the result itself, or its truncated form)."""
    return {
        "type": SUBSTEP_COMPLETED,
        "subStepId": str(task_id),
        "taskId": task_id,
        "durationMs": duration_ms,
        "attempt": attempt,
        **result,
    }


def substep_failed(
    task_id: int,
    error: str,
    duration_ms: int | None = None,
    upstream: list[int] | None = None,
    *,
    attempt: int | None = None,
    reason: str | None = None,
    retry_in_seconds: int | None = None,
) -> Event:
    """``reason``: error | timeout | upstream | skipped | cancelled. A failed attempt that will be
    retried carries ``willRetry: true`` and ``retryInSeconds``; the task is not failed yet."""
    event: Event = {
        "type": SUBSTEP_FAILED,
        "subStepId": str(task_id),
        "taskId": task_id,
        "error": error,
        "reason": reason or ("upstream" if upstream else "error"),
        "willRetry": retry_in_seconds is not None,
    }
    if attempt is not None:
        event["attempt"] = attempt
    if retry_in_seconds is not None:
        event["retryInSeconds"] = retry_in_seconds
    if duration_ms is not None:
        event["durationMs"] = duration_ms
    if upstream:
        event["upstreamTaskIds"] = upstream
    return event


def counters(meta: Mapping[str, Any]) -> dict[str, int]:
    """The execution's counters from its META item (number sets of task ids)."""
    total = int(meta["totalTasks"])
    completed = len(meta.get("completed", ()))
    failed = len(meta.get("failed", ()))
    skipped = len(meta.get("skipped", ()))
    running = len(meta.get("running", ()))
    return {
        "totalTasks": total,
        "completedTasks": completed,
        "failedTasks": failed,
        "skippedTasks": skipped,
        "runningTasks": running,
        "waitingTasks": max(0, total - completed - failed - skipped - running),
    }


def execution_updated(meta: Mapping[str, Any]) -> Event:
    return {"type": EXECUTION_UPDATED, "status": meta["status"], **counters(meta)}


def execution_completed(meta: Mapping[str, Any], duration_ms: int, final_result: Mapping[str, Any]) -> Event:
    """``final_result``: ``preview`` fields, renamed finalResult…"""
    c = counters(meta)
    return {
        "type": EXECUTION_COMPLETED,
        "status": "completed",
        "completedTasks": c["completedTasks"],
        "failedTasks": c["failedTasks"],
        "totalTasks": c["totalTasks"],
        "durationMs": duration_ms,
        **{"final" + k[0].upper() + k[1:]: v for k, v in final_result.items()},
    }


def execution_failed(
    meta: Mapping[str, Any], duration_ms: int, error: str, status: str = "failed", reason: str = "taskFailed"
) -> Event:
    """``status``: failed | cancelled; ``reason``: taskFailed | timeout | cancelled | startFailed."""
    c = counters(meta)
    return {
        "type": EXECUTION_FAILED,
        "status": status,
        "reason": reason,
        "completedTasks": c["completedTasks"],
        "failedTasks": c["failedTasks"],
        "skippedTasks": c["skippedTasks"],
        "totalTasks": c["totalTasks"],
        "durationMs": duration_ms,
        "error": error,
    }


class Encoded(NamedTuple):
    """A stored event ready for the wire: encoded once, written to any number of streams."""

    seq: int
    type: str
    frame: bytes


def encode_event(event: Mapping[str, Any]) -> Encoded:
    seq, kind = int(event["seq"]), str(event["type"])
    return Encoded(seq, kind, encode_sse(dumps(event), event=kind, id=seq))


def dumps(payload: Mapping[str, Any]) -> str:
    """Compact JSON, UTF-8 kept as is; the one serialisation used for storage and the wire."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def encode_sse(
    data: str, *, event: str | None = None, id: int | str | None = None, retry_ms: int | None = None
) -> bytes:
    """One SSE message, as the WHATWG HTML spec parses it.

    ``data`` may contain newlines; each line becomes its own ``data:`` field so the client joins
    them back with ``\\n``. CR and CRLF are normalised first because a bare CR would end a line
    on the client and corrupt the payload. ``event`` and ``id`` must be single-line.
    """
    lines: list[str] = []
    if event is not None:
        _single_line("event", event)
        lines.append(f"event: {event}")
    if id is not None:
        _single_line("id", str(id))
        lines.append(f"id: {id}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.append(f"data: {line}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_retry(retry_ms: int) -> bytes:
    """A message with only ``retry:``: sets the client's reconnection delay, dispatches nothing."""
    return f"retry: {int(retry_ms)}\n\n".encode()


def _single_line(field: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SSE {field} must be a single line without NUL: {value!r}")
