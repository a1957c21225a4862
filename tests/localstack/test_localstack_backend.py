"""`dagcast up --backend localstack` against a real LocalStack: provision, run a job, watch it live.

Needs a running LocalStack (Docker, and LOCALSTACK_AUTH_TOKEN for current images) at
$LOCALSTACK_ENDPOINT (default http://localhost:4566); every test here is skipped, saying so, when
none answers. What can be checked without one is in tests/unit/test_localstack.py,
tests/functional/test_localstack_provision.py and tests/e2e/test_localstack_health.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from dagcast.local.lambdas import function_name
from dagcast.local.launch import start_dagcast_up
from dagcast.local.localstack import connection, provision
from dagcast.local.localstack.backend import LocalStackBackend
from dagcast.local.localstack.errors import LocalStackError
from tests.support.jobs import echo, sleep

ENDPOINT = connection.endpoint_from_env()


def _localstack_problem() -> str | None:
    try:
        connection.check_health(ENDPOINT, timeout=2)
    except LocalStackError as exc:
        return str(exc)
    return None


PROBLEM = _localstack_problem()

pytestmark = [
    pytest.mark.localstack,
    pytest.mark.skipif(PROBLEM is not None, reason=f"these tests need a LocalStack: {PROBLEM}"),
]

STREAM_SECRET = "localstack-test-secret-" + "x" * 16
TABLE = "dagcast-local"  # what `dagcast up --backend localstack` provisions
# The first run pulls LocalStack's python3.12 Lambda image and uploads a ~20 MB zip per function.
STARTUP_SECONDS = 900


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from tests.e2e.conftest import ROOT, stop_server

    proc, base = start_dagcast_up(
        ["--backend", "localstack"],
        log=ROOT / "test-artifacts" / "dagcast-up-localstack.log",
        env={"DAGCAST_STREAM_SECRET": STREAM_SECRET, "LOCALSTACK_ENDPOINT": ENDPOINT},
        cwd=ROOT,
        timeout=STARTUP_SECONDS,
        poll=0.5,
    )
    yield base
    stop_server(proc)


def read_events(url: str, timeout: float = 300) -> list[dict[str, Any]]:
    """Every event of the stream (from seq 1: ``since=0``) until the server ends it."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=120)) as client,
        connect_sse(client, "GET", str(httpx.URL(url).copy_merge_params({"since": "0"}))) as source,
    ):
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            if sse.data and sse.event != "heartbeat":
                events.append({"id": sse.id, **json.loads(sse.data)})
            if time.monotonic() > deadline:
                raise AssertionError(f"no terminal event within {timeout} s: {events}")
    return events


def test_the_stack_is_in_localstack(server):
    health = httpx.get(f"{server}/healthz", timeout=5).json()
    assert health["endpoint"] == ENDPOINT
    assert health["stateMachine"] == provision.state_machine_arn("000000000000")
    session = connection.localstack_session(ENDPOINT)
    names = {f["FunctionName"] for f in session.client("lambda").list_functions()["Functions"]}
    assert {function_name(n) for n in provision.lambda_handlers()} <= names
    assert TABLE in session.client("dynamodb").list_tables()["TableNames"]
    mappings = session.client("lambda").list_event_source_mappings(FunctionName=function_name("fanout"))
    [mapping] = mappings["EventSourceMappings"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["FilterCriteria"]["Filters"] == [{"Pattern": provision.FANOUT_FILTER_PATTERN}]


def test_a_job_runs_in_localstack_and_streams_gapless_to_completion(server):
    job = {
        "originalRequest": "localstack",
        "tasks": [echo(1, "a"), sleep(2, 0.2, [1]), echo(3, "{{1}}c", [1]), echo(4, "{{3}}d", [2, 3])],
    }
    reply = httpx.post(f"{server}/api/v1/execute-dag", json=job, timeout=60)
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    events = read_events(accepted["eventsUrl"])
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # gapless, in order, nothing twice
    assert [int(e["id"]) for e in events] == seqs
    assert events[0]["type"] == "execution.created"
    assert events[-1]["type"] == "execution.completed"
    completed = {e["taskId"] for e in events if e["type"] == "substep.completed"}
    assert completed == {1, 2, 3, 4}
    started = [e["taskId"] for e in events if e["type"] == "substep.started"]
    assert started.index(4) > max(started.index(2), started.index(3))
    final = httpx.get(accepted["statusUrl"], timeout=30).json()
    assert final["status"] == "completed"


def test_up_again_updates_rather_than_fails(server, monkeypatch):
    """A second provisioning against the same LocalStack (what a second `up` does) finds everything."""
    for name in [k for k in os.environ if k.startswith("DAGCAST_")]:
        monkeypatch.delenv(name)  # the functions get what `up` gave them, not this process's settings
    again = LocalStackBackend(endpoint=ENDPOINT, stream_secret=STREAM_SECRET).provision()
    assert again.state_machine_arn == provision.state_machine_arn(again.account)
    assert again.account == "000000000000"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
