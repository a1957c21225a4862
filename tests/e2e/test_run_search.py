"""Issue 22 items 1, 3 and 4 on `dagcast up`, over real sockets: an Idempotency-Key retried, tags
and metadata from the job to the stream and the views, the list's filters and its cursor, and
`dagcast ls --status failed --tag nightly`; each bad input a clear 4xx that stores nothing."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from chalicelib.domain.events import EXECUTION_CREATED
from tests.support.api import read_stream, submit
from tests.support.cli import dagcast
from tests.support.jobs import echo, fail

pytestmark = pytest.mark.e2e


def _wait_done(base: str, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = httpx.get(f"{base}/api/v1/dag-executions/{execution_id}", timeout=30).json()
        if view["status"] != "running":
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def ids(body: dict[str, Any]) -> list[str]:
    return [e["executionId"] for e in body["executions"]]


def _listed(base: str, **params: Any) -> dict[str, Any]:
    reply = httpx.get(f"{base}/api/v1/dag-executions", params=params, timeout=30)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_a_retried_submit_with_its_key_starts_nothing_new(server):
    key = str(uuid.uuid4())
    job = {"originalRequest": "retried", "tasks": [echo(1, "once")], "tags": [f"idem-{key[:8]}"]}

    def post(body: str) -> httpx.Response:
        headers = {"Idempotency-Key": key, "content-type": "application/json"}
        return httpx.post(f"{server}/api/v1/execute-dag", content=body, headers=headers, timeout=30)

    first = post(json.dumps(job))
    assert first.status_code == 202, first.text
    eid = first.json()["executionId"]
    again = post(json.dumps(job, indent=2, sort_keys=True))  # the same JSON value
    assert again.status_code == 202 and again.json()["executionId"] == eid
    _, messages = read_stream(again.json()["eventsUrl"] + "&since=0")  # its fresh token streams it
    streamed = [m["data"] for m in messages if m["event"] != "heartbeat"]
    assert [e["type"] for e in streamed].count(EXECUTION_CREATED) == 1
    assert {e["executionId"] for e in streamed} == {eid}
    other = post(json.dumps({**job, "originalRequest": "changed"}))
    assert other.status_code == 422 and "another body" in other.json()["error"]
    bad = httpx.post(
        f"{server}/api/v1/execute-dag", json=job, headers={"Idempotency-Key": "two words"}, timeout=30
    )
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]
    _wait_done(server, eid)
    assert [e["executionId"] for e in _listed(server, tag=f"idem-{key[:8]}")["executions"]] == [eid]


def test_tags_and_metadata_reach_the_stream_and_the_views_and_the_list_filters_them(server):
    nightly = f"nightly-{uuid.uuid4().hex[:8]}"
    ok = submit(server, {"tasks": [echo(1, "fine")], "tags": [nightly, "team:data"], "metadata": {"run": 1}})
    bad = submit(server, {"tasks": [fail(1, "boom")], "tags": [nightly], "metadata": {"run": 2}})
    _, messages = read_stream(ok["eventsUrl"] + "&since=0")
    created = next(m["data"] for m in messages if m["event"] == EXECUTION_CREATED)
    assert created["tags"] == [nightly, "team:data"] and created["metadata"] == {"run": 1}
    assert _wait_done(server, ok["executionId"])["metadata"] == {"run": 1}
    assert _wait_done(server, bad["executionId"])["tags"] == [nightly]
    assert ids(_listed(server, tag=nightly)) == [bad["executionId"], ok["executionId"]]
    assert ids(_listed(server, tag=nightly, status="failed")) == [bad["executionId"]]
    assert ids(_listed(server, tag=[nightly, "team:data"])) == [ok["executionId"]]
    first = _listed(server, tag=nightly, limit=1)
    assert ids(first) == [bad["executionId"]] and first["nextCursor"]
    assert ids(_listed(server, tag=nightly, limit=1, cursor=first["nextCursor"])) == [ok["executionId"]]
    tampered = first["nextCursor"][:-1] + ("A" if first["nextCursor"][-1] != "A" else "B")
    reply = httpx.get(
        f"{server}/api/v1/dag-executions", params={"tag": nightly, "cursor": tampered}, timeout=30
    )
    assert reply.status_code == 400 and "cursor" in reply.json()["error"]

    # the CLI: dagcast ls --status failed --tag …
    shown = dagcast("ls", "--url", server, "--status", "failed", "--tag", nightly, "--json")
    assert shown.returncode == 0, shown.stderr
    assert ids(json.loads(shown.stdout)) == [bad["executionId"]]
    plain = dagcast("ls", "--url", server, "--status", "failed", "--tag", nightly)
    assert (
        plain.returncode == 0 and bad["executionId"] in plain.stdout and ok["executionId"] not in plain.stdout
    )
    wrong = dagcast("ls", "--url", server, "--tag", "no#hash")
    assert wrong.returncode == 2 and "tag must be" in wrong.stderr


@pytest.mark.parametrize(
    "extra", [{"tags": ["has space"]}, {"tags": [str(n) for n in range(21)]}, {"metadata": {"b": "x" * 5000}}]
)
def test_oversize_or_malformed_tags_and_metadata_are_400s_and_nothing_is_stored(server, extra):
    before = _listed(server, limit=100)["executions"]
    reply = httpx.post(f"{server}/api/v1/execute-dag", json={"tasks": [echo(1, "x")], **extra}, timeout=30)
    assert reply.status_code == 400 and "nothing was started" in reply.json()["error"]
    assert _listed(server, limit=100)["executions"] == before
