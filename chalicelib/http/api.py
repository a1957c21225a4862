"""REST handlers, independent of Chalice: (request data) → (status, JSON body).

A handler raises domain errors for what it refuses; ``respond`` turns them into answers through
the one error map (http/errors.py). Clients get a JSON body ``{"error": "...", ...}`` that says
what to fix — never a stack trace.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..domain.dag import parse_job
from ..domain.errors import (
    BadRequest,
    BodyTooLarge,
    ExecutionNotFound,
    ExecutionRunning,
    NoFinalResult,
    NoTaskResult,
    StoreError,
    StreamTokensOff,
    TaskNotFound,
)
from ..domain.model import ExecutionStatus
from ..domain.search import decode_cursor, encode_cursor, parse_query
from ..domain.tagquery import tag_query
from ..factory import Services
from ..orchestration.decisions import MAX_DECISION_DATA_BYTES, Decision
from ..orchestration.idempotent import IdempotentSubmit
from ..orchestration.release import tenant_of
from ..orchestration.rerun import parse_rerun
from ..orchestration.results import ResultText, final_text, task_text
from ..orchestration.views import TEXT_CAPS, cut_view, execution_view
from ..redact import Redactor
from ..tenants import DEFAULT_TENANT
from .answer import MAX_PAGE_CHARS, PAGE_TEXT_BYTES, encoded_size, fit, fitting_end, text_cost
from .errors import INTERNAL_ERROR, answer_for

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
MAX_JSON_DEPTH = 64  # lists/objects inside each other in a request body
MAX_LIST_LIMIT = 100
_JSON_HEADERS = {"Content-Type": "application/json"}
_READ_STEP = 1_000_000  # characters of a result read from the store at once while filling a page
_DIGITS = re.compile(r"[0-9]{1,16}")  # ASCII digits: int() would also take "٣" or " 3"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
Reply = tuple[int, dict[str, Any]]
# An error answer may quote the request (a refused URL, a job's field): shapes are redacted from it.
_SHAPES = Redactor()


def respond(handler: Callable[[], Reply]) -> Reply:
    """The handler's reply, or the answer the error map gives to what it raised."""
    status, body, _ = answer(handler)
    return status, body


def answer(handler: Callable[[], Reply]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """As ``respond``, with the headers the error's status calls for (Retry-After on a 429)."""
    try:
        status, body = handler()
    except Exception as exc:
        refusal = answer_for(exc)
        if refusal is None:
            log.exception("unhandled error")
            refusal = INTERNAL_ERROR
        return refusal.status, _SHAPES.apply(refusal.body), refusal.headers
    return status, body, {}


def json_body(raw_body: bytes | None, example: str, limit: int = MAX_BODY_BYTES) -> Any:
    if not raw_body:
        raise BadRequest(f"the body is empty; send JSON: {example}")
    if len(raw_body) > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    try:
        body = json.loads(raw_body)
    except RecursionError:
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    return body


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: no recursion limit to hit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in children)
    return deepest


def execute_dag(
    services: Services,
    raw_body: bytes | None,
    base_url: str,
    idempotency_key: str | None = None,
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reply:
    """Validate, store and start a job (202). With an ``Idempotency-Key``, a retry of the same
    request answers with the first one's execution instead (orchestration/idempotent.py); keys are
    per tenant."""
    body = json_body(raw_body, '{"originalRequest": ..., "tasks": [...]}')
    job = parse_job(body)
    services.tenants.check_job(job, tenant)
    if idempotency_key is None:
        execution_id = services.orchestrator.submit(job, tenant=tenant)
    else:
        key = _idempotency_key(idempotency_key)
        once = IdempotentSubmit(services.store.idempotency, services.orchestrator, services.store.get_meta)
        execution_id = once.submit(job, key, _canonical_hash(body), tenant)
    return _accepted(services, tenant, execution_id, base_url)


def _accepted(services: Services, tenant: str, execution_id: str, base_url: str, **fields: Any) -> Reply:
    api = services.settings.public_url or base_url
    return 202, {
        "executionId": execution_id,
        "status": ExecutionStatus.RUNNING,
        **fields,
        "statusUrl": f"{api}/api/v1/dag-executions/{execution_id}",
        **_stream_access(services, tenant, execution_id, base_url),
    }


def rerun_execution(
    services: Services,
    execution_id: str,
    raw_body: bytes | None,
    base_url: str,
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reply:
    """A new execution of the job, reusing what completed (orchestration/rerun.py); no body or
    ``{"from": "failed"}``: every task that did not complete runs again; ``{"tasks": [ids]}``:
    those too, and their dependents."""
    body = json_body(raw_body, '{"tasks": [1, 2]}', 100_000) if raw_body and raw_body.strip() else None
    forced = parse_rerun(body)
    _owned(services, tenant, execution_id)  # another tenant's: as unknown
    new_id = services.orchestrator.rerun(execution_id, forced)
    return _accepted(services, tenant, new_id, base_url, rerunOf=execution_id)


def delete_execution(services: Services, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> Reply:
    """Remove a finished execution now: its webhook deliveries, then every item it has, META
    last (persistence/removal.py); a retry after a failure finishes the job."""
    meta = _owned(services, tenant, execution_id)  # ExecutionNotFound if unknown, deleted, expired, another's
    if meta["status"] == ExecutionStatus.RUNNING:
        raise ExecutionRunning(execution_id, "delete it")
    services.webhooks.forget_execution(execution_id)
    if not services.store.removal.remove(execution_id):
        raise ExecutionNotFound(execution_id)  # deleted by another request meanwhile
    return 200, {"executionId": execution_id, "deleted": True}


def _owned(services: Services, tenant: str, execution_id: str) -> dict[str, Any]:
    """The execution's META if ``tenant`` owns it; another tenant's is ExecutionNotFound, the very
    answer an unknown id gets, so that no route tells whether an id exists elsewhere."""
    meta = services.store.get_meta(execution_id)
    if tenant_of(meta) != tenant:
        raise ExecutionNotFound(execution_id)
    return meta


def _idempotency_key(raw: str) -> str:
    if not _IDEMPOTENCY_KEY.fullmatch(raw):
        raise BadRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters (a UUID is a good key), "
            f"got {raw[:80]!r}"
        )
    return raw


def _canonical_hash(body: Any) -> str:
    """What "the same body" means: the same JSON value, whatever its spacing and key order."""
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stream_access(services: Services, tenant: str, execution_id: str, base_url: str) -> dict[str, Any]:
    events = (services.settings.events_url or services.settings.public_url or base_url).rstrip("/")
    url = f"{events}/api/v1/dag-executions/{execution_id}/events"
    if services.signer is None:
        return {"eventsUrl": url}
    issued = services.signer.issue(execution_id, tenant=tenant)
    return {
        "eventsUrl": f"{url}?token={issued.token}",
        "streamToken": issued.token,
        "streamTokenExpiresAt": issued.expires_at,
    }


def stream_token(
    services: Services, execution_id: str, base_url: str, *, tenant: str = DEFAULT_TENANT
) -> Reply:
    """A fresh stream token for a known execution (for reconnects after the first one expired)."""
    _owned(services, tenant, execution_id)  # ExecutionNotFound if unknown or another tenant's
    if services.signer is None:
        raise StreamTokensOff()
    return 200, _stream_access(services, tenant, execution_id, base_url)


def many_run_token(services: Services, raw_body: bytes | None, base_url: str, *, tenant: str) -> Reply:
    """A token for the tenant's many-run stream, scoped to the body's ``tag`` (a string, a list
    of them, or none: every execution), and the stream's URL with it."""
    body = json_body(raw_body, '{"tag": "nightly"}') if raw_body else {}
    if not isinstance(body, dict) or set(body) - {"tag"}:
        raise BadRequest('the body is {"tag": "<tag>" | ["<tag>", …]} or empty')
    raw = body.get("tag")
    tags = tag_query(
        [] if raw is None else [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [raw]
    )
    if services.signer is None:
        raise StreamTokensOff()
    issued = services.signer.issue_query(tags, tenant)
    events = (services.settings.events_url or services.settings.public_url or base_url).rstrip("/")
    query = "".join(f"&tag={t}" for t in tags)  # tags are URL-safe characters only
    return 200, {
        "eventsUrl": f"{events}/api/v1/dag-executions/events?token={issued.token}{query}",
        "streamToken": issued.token,
        "streamTokenExpiresAt": issued.expires_at,
        "tags": list(tags),
    }


def get_execution(services: Services, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> Reply:
    _owned(services, tenant, execution_id)
    snapshot = services.orchestrator.snapshot(execution_id)
    return 200, _fitted(lambda cap: snapshot if cap is None else cut_view(snapshot, cap))


def _fitted(shrink: Callable[[int | None], dict[str, Any]]) -> dict[str, Any]:
    """The answer ``shrink(None)``, or with its long texts cut until it fits one Lambda response."""
    return fit(shrink, lambda body: encoded_size(200, body, _JSON_HEADERS), TEXT_CAPS)


def list_limit(raw: str) -> int:
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(
            f"limit must be an integer between 1 and {MAX_LIST_LIMIT}, got {raw[:40]!r}"
        ) from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    return limit


def list_executions(
    services: Services, query: Mapping[str, str] | None, *, tenant: str = DEFAULT_TENANT
) -> Reply:
    """A page of the tenant's executions, newest first, filtered by status, tags and creation time;
    ``nextCursor`` goes on from where it ends (null at the end)."""
    search = parse_query(query, tenant)
    limit = list_limit((query or {}).get("limit", "20"))
    cursor = (query or {}).get("cursor")
    before = None if cursor is None else decode_cursor(cursor, search)
    found, position = services.store.listing.search(search, limit, before)
    views = [execution_view(m) for m in found]
    next_cursor = None if position is None else encode_cursor(position, search)
    return 200, _fitted(
        lambda cap: {
            "executions": [v if cap is None else cut_view(v, cap) for v in views],
            "nextCursor": next_cursor,
        }
    )


def cancel_execution(services: Services, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> Reply:
    _owned(services, tenant, execution_id)
    return 200, services.orchestrator.cancel(execution_id)


def _task_id(raw_task_id: str) -> int:
    try:
        return int(raw_task_id)
    except ValueError:
        raise BadRequest(f"the task id must be an integer, got {raw_task_id[:40]!r}") from None


def decide_task(
    services: Services,
    execution_id: str,
    raw_task_id: str,
    raw_body: bytes | None,
    decided_by: Mapping[str, Any],
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reply:
    """A person's decision on an approval task: the task as it ended (200)."""
    task_id = _task_id(raw_task_id)
    _owned(services, tenant, execution_id)  # another tenant's: as unknown
    body = json_body(raw_body, '{"approve": true, "comment": "...", "data": {...}}', 100_000)
    try:
        decision = Decision.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        example = '{"approve": true|false, "comment": "...", "data": ...}'
        raise BadRequest(f"{where}: {first['msg']}; send {example}") from None
    size = len(json.dumps(decision.data).encode())
    if size > MAX_DECISION_DATA_BYTES:
        raise BadRequest(f"data is {size} bytes as JSON; at most {MAX_DECISION_DATA_BYTES}")
    return 200, services.orchestrator.decide(execution_id, task_id, decision, decided_by)


def task_result(
    services: Services,
    execution_id: str,
    raw_task_id: str,
    query: Mapping[str, str] | None = None,
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reply:
    """A task's full result (events and snapshots cut results over 16 KB), or one page of it."""
    task_id = _task_id(raw_task_id)
    _owned(services, tenant, execution_id)  # ExecutionNotFound for an unknown execution
    try:
        task = services.store.get_task(execution_id, task_id)
    except StoreError:
        raise TaskNotFound(execution_id, task_id) from None
    text = task_text(services.store, execution_id, task)
    if text is None:
        raise NoTaskResult(task_id, task["status"])
    return _result_reply({"executionId": execution_id, "taskId": task_id}, "result", text, query)


def final_result(
    services: Services,
    execution_id: str,
    query: Mapping[str, str] | None = None,
    *,
    tenant: str = DEFAULT_TENANT,
) -> Reply:
    """The execution's full final result (the result task's, or one per sink task), or one page of it."""
    meta = _owned(services, tenant, execution_id)
    if meta["status"] != ExecutionStatus.COMPLETED:
        raise NoFinalResult(meta["status"])
    text = final_text(services.store, execution_id, [int(s) for s in meta["sinks"]])
    return _result_reply({"executionId": execution_id}, "finalResult", text, query)


def _result_reply(ids: dict[str, Any], name: str, text: ResultText, query: Mapping[str, str] | None) -> Reply:
    """Without ?offset= or ?limit=: the whole result as ``name`` (as before pages existed) when it fits
    one answer. Otherwise a page: ``<name>Text``, a piece of the result's JSON text, with ``offset``,
    ``nextOffset`` (null on the last page) and the whole text's ``totalChars`` and ``<name>Bytes``."""
    asked = _page_query(query or {})
    offset, limit = asked or (0, MAX_PAGE_CHARS)
    if offset > text.chars:
        raise BadRequest(f"offset {offset} is past the end of the result ({text.chars} characters)")
    page, next_offset = _page(text, offset, limit)
    if asked is None and next_offset is None:
        return 200, {**ids, name: json.loads(page)}
    return 200, {
        **ids,
        f"{name}Text": page,
        "offset": offset,
        "nextOffset": next_offset,
        "totalChars": text.chars,
        f"{name}Bytes": text.bytes,
    }


def _page_query(query: Mapping[str, str]) -> tuple[int, int] | None:
    """(offset, limit) of a page request; None when it names neither."""
    if "offset" not in query and "limit" not in query:
        return None
    return (
        _whole_number(query.get("offset", "0"), "offset", 0, 2**53),
        _whole_number(query.get("limit", str(MAX_PAGE_CHARS)), "limit", 1, MAX_PAGE_CHARS),
    )


def _whole_number(raw: str, name: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number between {low} and {high}, got {raw[:40]!r}")
    return int(raw)


def _page(text: ResultText, offset: int, limit: int) -> tuple[str, int | None]:
    """The page from ``offset``: at most ``limit`` characters, and no more than fits PAGE_TEXT_BYTES
    once encoded; and where the next page starts (None after the last)."""
    stop = min(text.chars, offset + limit)
    parts: list[str] = []
    budget, at = PAGE_TEXT_BYTES, offset
    while at < stop:  # read a step at a time: a page of CJK text is a fraction of ``limit``
        piece = text.read(at, min(stop, at + _READ_STEP))
        end = fitting_end(piece, 0, len(piece), budget)
        parts.append(piece[:end])
        budget, at = budget - text_cost(piece[:end]), at + end
        if end < len(piece):
            break
    return "".join(parts), (at if at < text.chars else None)
