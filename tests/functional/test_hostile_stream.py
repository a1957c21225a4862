"""Hostile input against the SSE endpoint (the real ASGI app on the real store): any query value,
Last-Event-ID header, token, Authorization header, Origin or execution id is answered with a clean
status — 200 (a stream that replays and ends), 204, 400, 401, 403, 404 — never a 500 or a trace."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from chalicelib.config import Settings
from chalicelib.stream.app import create_sse_app
from tests.functional.conftest import echo, run_job
from tests.support.strategies import HEADER, HOSTILE, TEXT


@pytest.fixture(scope="module")
def finished(services) -> str:
    """An execution that has ended, so a valid request replays its log and the stream ends."""
    eid, _ = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    return eid


@pytest.fixture(scope="module")
def sse(services) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings.from_env()
    with TestClient(
        create_sse_app(settings, lambda: services.store), raise_server_exceptions=False
    ) as client:
        yield client, settings


def check(reply, *allowed: int) -> None:
    assert reply.status_code in allowed, (reply.status_code, reply.text[:300])
    assert "Traceback" not in reply.text and 'File "' not in reply.text
    if reply.status_code >= 400:
        assert reply.json()["error"]


@HOSTILE
@given(last=HEADER, query=TEXT, types=TEXT)
def test_any_resume_point_or_filter_is_answered_cleanly(sse, services, finished, last, query, types):
    client, _ = sse
    token = services.signer.issue(finished).token
    path = f"/api/v1/dag-executions/{finished}/events?token={token}"
    check(client.get(f"{path}&lastEventId={quote(query, safe='')}"), 200, 204, 400)
    check(client.get(f"{path}&types={quote(types, safe='')}&since={quote(query, safe='')}"), 200, 204, 400)
    check(client.get(path, headers={"Last-Event-ID": last}), 200, 204, 400)


@HOSTILE
@given(token=TEXT, auth=HEADER, origin=HEADER, execution=TEXT)
def test_any_token_header_or_execution_id_is_answered_cleanly(sse, finished, token, auth, origin, execution):
    client, _ = sse
    target = quote(execution, safe="") or finished
    check(
        client.get(
            f"/api/v1/dag-executions/{target}/events?token={quote(token, safe='')}",
            headers={"Origin": origin},
        ),
        400,
        401,
        403,
        404,
    )
    check(
        client.get(f"/api/v1/dag-executions/{finished}/events", headers={"Authorization": auth}),
        400,
        401,
        403,
    )
