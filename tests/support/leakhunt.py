"""The leak hunt's harness: a job that carries secrets in every position a job allows, and the
places a secret could surface once it ran — every table item, every event, the SSE bytes, every
webhook body, every EventBridge detail, every API answer, every log line.

``Secrets`` names one secret per position; ``hunt_job`` builds the job; ``collect`` gathers the
places as text; ``leaks`` says which secret is where (one line each, with what surrounds it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, fields
from typing import Any

import boto3

from chalicelib.domain.events import TERMINAL_TYPES
from chalicelib.persistence.keys import EXECUTION_PREFIX, QUEUE_PREFIX, STREAMS_PREFIX
from tests.support.receiver import EventBus, Receiver

# env variables the job's header references name (DAGCAST_LLM_KEYS' default allows *_API_KEY)
KEY_VAR, TRACE_VAR = "LEAKHUNT_API_KEY", "LEAKHUNT_TRACE_API_KEY"


@dataclass(frozen=True)
class Secrets:
    original_request: str  # in originalRequest, as URL userinfo
    original_token: str  # in originalRequest, as ?token=
    original_bearer: str  # in originalRequest, after Bearer
    description: str  # in a task's description, as api_key=
    url_userinfo: str  # in an http URL's userinfo (httpx sends it as Basic auth)
    url_query: str  # in an http URL's ?api_key=
    fail_query: str  # in a failing http URL's ?sig=
    header_key: str  # resolved from {"env"}: sent as X-Api-Key, echoed back
    header_trace: str  # resolved from {"env"}: sent as X-Trace (a harmless name), echoed back
    body_field: str  # in an http body's "password"
    body_bearer: str  # in an http body's text, after Bearer
    big_query: str  # in a large result (past the preview size), as X-Amz-Signature=
    python_ok: str  # a python task's "token" arg, returned as its result
    python_fail: str  # a python task's "password" arg, quoted in its error
    unreachable: str  # in the case: ?api_key= of a URL nothing answers
    echo_text: str  # an echo task's text, as session_token=

    @classmethod
    def count(cls) -> int:
        return len(fields(cls))

    def named(self) -> Iterator[tuple[str, str]]:
        return zip((f.name for f in fields(self)), astuple(self), strict=True)

    @property
    def resolved(self) -> tuple[str, str]:
        return self.header_key, self.header_trace


# Secrets written literally in task params: the task item keeps its params as given, since the task
# runs with them (docs/security.md, "not covered"). Everywhere else they must not be.
KEPT_IN_PARAMS = {
    "url_userinfo",
    "url_query",
    "fail_query",
    "body_field",
    "body_bearer",
    "big_query",
    "python_ok",
    "python_fail",
    "unreachable",
    "echo_text",
}


def hunt_job(s: Secrets, echo: str) -> dict[str, Any]:
    """Seven tasks, some failing, one with a large result; failurePolicy continue, so all run."""
    host = echo.removeprefix("http://")
    refs = {"X-Api-Key": {"env": KEY_VAR}, "X-Trace": {"env": TRACE_VAR}}

    def t(tid: int, action: str, params: dict[str, Any], deps: list[int] | None = None) -> dict[str, Any]:
        return {"id": tid, "action": action, "params": params, "dependencies": deps or []}

    return {
        "originalRequest": (
            f"sync https://ops:{s.original_request}@api.test/v1?token={s.original_token} "
            f"with Authorization: Bearer {s.original_bearer}"
        ),
        "failurePolicy": "continue",
        "tasks": [
            {
                **t(1, "http", {"url": f"http://u:{s.url_userinfo}@{host}/ok?api_key={s.url_query}&p=1"}),
                "description": f"fetch with api_key={s.description}",
            },
            t(
                2,
                "http",
                {
                    "method": "POST",
                    "url": f"{echo}/fail?sig={s.fail_query}",
                    "headers": refs,
                    "body": {"password": s.body_field, "note": f"Authorization: Bearer {s.body_bearer}"},
                },
            ),
            t(3, "http", {"url": f"{echo}/big?X-Amz-Signature={s.big_query}", "headers": refs}),
            t(4, "python", {"function": "tests.return_args", "args": {"token": s.python_ok, "n": 1}}),
            t(5, "python", {"function": "tests.raise_args", "args": {"password": s.python_fail}}),
            t(6, "http", {"url": f"http://127.0.0.1:9/v1?api_key={s.unreachable}", "timeoutSeconds": 5}),
            t(7, "echo", {"text": f"session_token={s.echo_text}"}, [1]),
        ],
    }


def _table_items(table_name: str, execution_id: str) -> Iterator[dict[str, Any]]:
    """Every item but those of *other* executions' partitions (the functional stack's table holds
    every earlier test's, megabytes of them: skipped by the filter, in moto, before they are
    serialised). What belongs to no execution — webhooks, deliveries, keys — is all read."""
    client = boto3.client("dynamodb")
    partitions = (EXECUTION_PREFIX, QUEUE_PREFIX, STREAMS_PREFIX)
    names = {f":p{n}": {"S": prefix} for n, prefix in enumerate(partitions)}
    others = " OR ".join(f"begins_with(PK, {name})" for name in names)
    pages = client.get_paginator("scan").paginate(
        TableName=table_name,
        FilterExpression=f"NOT ({others}) OR contains(PK, :id)",
        ExpressionAttributeValues={**names, ":id": {"S": execution_id}},
    )
    for page in pages:
        yield from page["Items"]


def table_places(table_name: str, execution_id: str) -> dict[str, str]:
    """Every attribute of every item of the table that is not another execution's, as
    ``item PK/SK .attr`` → its text."""
    out: dict[str, str] = {}
    for item in _table_items(table_name, execution_id):
        where = f"table item {item['PK'].get('S')}/{item['SK'].get('S')}"
        for name, value in item.items():
            out[f"{where} .{name}"] = json.dumps(value, default=str)
    return out


def wait_until(check: Callable[[], bool], seconds: float = 30) -> None:
    """Until ``check()`` holds, at most ``seconds`` (the caller's scan then shows what arrived)."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def fanned_out(execution_id: str, events: int, receiver: Receiver, bus: EventBus) -> dict[str, str]:
    """Every webhook body and EventBridge detail of the execution, once all ``events`` arrived."""
    published: list[dict[str, Any]] = []

    def arrived() -> bool:
        published.extend(e for e in bus.received() if e["detail"].get("executionId") == execution_id)
        return len(receiver.keys_for(execution_id)) >= events and len(published) >= events

    wait_until(arrived)
    bodies = [r.event for r in receiver.accepted if r.event.get("executionId") == execution_id]
    return {f"webhook body #{n}": json.dumps(b) for n, b in enumerate(bodies, 1)} | {
        f"EventBridge detail #{n}": json.dumps(e) for n, e in enumerate(published, 1)
    }


def ended(events: list[dict[str, Any]]) -> bool:
    return bool(events) and events[-1]["type"] in TERMINAL_TYPES


def leaks(secrets: Secrets, places: dict[str, str]) -> list[str]:
    """``secret <name> in <place>: …context…`` for every secret found where it must not be."""
    found = []
    for name, value in secrets.named():
        for where, text in places.items():
            at = text.find(value)
            if at < 0 or (name in KEPT_IN_PARAMS and where.endswith(".paramsJson")):
                continue
            found.append(f"secret {name} in {where}: …{text[max(0, at - 60) : at + len(value) + 20]}…")
    return found
