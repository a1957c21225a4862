"""Functional tests: the real state machine definition executed by moto's interpreter, with the
real handlers running in-process (dagcast's embedded local stack, without its HTTP front)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import BaseClient, Client

from chalicelib.domain.dag import parse_job
from chalicelib.domain.events import TERMINAL_TYPES
from chalicelib.domain.model import DeliveryStatus
from chalicelib.factory import Services
from dagcast.local.moto.stack import MotoStack
from tests.support import upstream as fake_upstream
from tests.support.fanout import fanned_out
from tests.support.jobs import echo, fail, sleep
from tests.support.receiver import Receiver

__all__ = ["echo", "fail", "sleep"]  # task builders, re-exported for the tests here


# Package scope: the stack (its poller and retry threads) stops after the last functional test,
# before tests/unit runs (those threads, left running, logged tracebacks concurrently with a unit
# test's ast.parse, which CPython 3.11 does not survive: "AST constructor recursion depth mismatch").
@pytest.fixture(scope="package")
def stack() -> Iterator[MotoStack]:
    # Webhook retries in fractions of a second, so the retry and dead-letter tests take seconds.
    for name, value in {
        "DAGCAST_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "DAGCAST_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        "DAGCAST_WEBHOOK_MAX_ATTEMPTS": "8",
        "DAGCAST_WEBHOOK_TIMEOUT_SECONDS": "2",
    }.items():
        os.environ.setdefault(name, value)
    s = MotoStack(table_name="dagcast-functional", retry_interval_seconds=0.2).start()
    yield s
    s.stop()


@pytest.fixture(scope="package", autouse=True)
def stack_environment() -> Iterator[None]:
    """Chalice's test clients run each request with ``os.environ`` swapped for a copy holding the
    stage's variables from .chalice/config.json, then put back what they found. Here those are
    wrong (the deployed stage's table ``dagcast-dev``, not the stack's), every thread of the stack
    would see them during a request, and two requests at once from threads left the copy in place
    for good: every Services built afterwards (an SSE front, a test's own) read a table that does
    not exist. The stack has set the environment the handlers need; requests keep it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BaseClient, "_patched_env_vars", lambda self, variables: contextlib.nullcontext())
        yield


@pytest.fixture(scope="module")
def client(services: Services) -> Iterator[Client]:
    """Chalice's test client of the app: the REST routes, in process, on the package's stack."""
    import app

    with Client(app.app) as c:
        yield c


@pytest.fixture
def hooks(client: Client) -> Iterator[list[str]]:
    """Webhook ids a test registers (it appends them); deleted afterwards, so later tests' events
    do not reach them."""
    created: list[str] = []
    yield created
    for webhook_id in created:
        call(client, "delete", f"/api/v1/webhooks/{webhook_id}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The base URL of a fake upstream for http and llm tasks (tests/support/upstream.py)."""
    with fake_upstream.serve() as base:
        yield base


def call(client: Client, method: str, path: str, body: Any = None) -> Any:
    """A JSON request to the app through ``client`` (a str body is sent as it is)."""
    kwargs: dict[str, Any] = {"headers": {"content-type": "application/json"}}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
    return getattr(client.http, method)(path, **kwargs)


SECRET = "s3cret-s3cret-s3cret"  # the webhook secret the functional tests register receivers with


def register(client: Client, hooks: list[str], receiver: Receiver, **extra: Any) -> str:
    """Register ``receiver`` as a webhook through the app (deleted after the test by ``hooks``): its id."""
    reply = call(
        client, "post", "/api/v1/webhooks", {"url": receiver.url, "secret": receiver.secret, **extra}
    )
    assert reply.status_code == 201, reply.json_body
    hooks.append(reply.json_body["webhookId"])
    return str(reply.json_body["webhookId"])


def wait_for(check, timeout: float = 60, what: str = "") -> None:
    """Until ``check()`` is true (asked every 0.1 s); after ``timeout`` seconds, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settled(stack: Any, client: Client, webhook_id: str, *execution_ids: str) -> bool:
    """Whether nothing more can reach the webhook for these executions: the fan-out has been through
    every event written so far, and none of the webhook's deliveries of them is pending (each was
    delivered or is dead), so no retry will send one again. A late duplicate would have come by now."""
    if not fanned_out(stack):
        return False
    for eid in execution_ids:
        query = f"executionId={eid}&status={DeliveryStatus.PENDING}&limit=1"
        reply = call(client, "get", f"/api/v1/webhooks/{webhook_id}/deliveries?{query}")
        assert reply.status_code == 200, reply.json_body
        if reply.json_body["deliveries"]:
            return False
    return True


@pytest.fixture(scope="package")
def services(stack: MotoStack) -> Services:
    import app

    app.services.cache_clear()
    return app.services()


def wait_for_end(services: Services, execution_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The execution's events up to its terminal one, read once nothing more can be written: when
    its state machine execution has stopped too. Until then a step may still run (a cancelled
    execution's task finishing, then Finalize); an event it wrote after the terminal one would be a
    bug, and is returned for the caller's checks to find."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while True:
        events += services.store.events_after(execution_id, events[-1]["seq"] if events else 0)
        if events and events[-1]["type"] in TERMINAL_TYPES:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} did not finish in {timeout}s; events so far: {events}")
        time.sleep(0.05)
    wait_until_stopped(services, execution_id, deadline)
    return events + services.store.events_after(execution_id, events[-1]["seq"])


def wait_until_stopped(services: Services, execution_id: str, deadline: float) -> None:
    """Until the execution's Step Functions execution is no longer RUNNING (none was started: at once)."""
    arn = services.store.get_meta(execution_id).get("stateMachineExecutionArn")
    if not arn:
        return
    sfn = boto3.client("stepfunctions")
    while (status := sfn.describe_execution(executionArn=str(arn))["status"]) == "RUNNING":
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} ended, but its state machine execution is still {status}")
        time.sleep(0.05)


def run_job(
    services: Services, body: dict[str, Any], timeout: float = 60
) -> tuple[str, list[dict[str, Any]]]:
    execution_id = services.orchestrator.submit(parse_job(body))
    return execution_id, wait_for_end(services, execution_id, timeout)


def by_type(events: list[dict[str, Any]], kind: str) -> dict[int, dict[str, Any]]:
    return {e["taskId"]: e for e in events if e["type"] == kind}


def assert_gapless(events: list[dict[str, Any]], execution_id: str) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for e in events:
        assert e["executionId"] == execution_id
        assert isinstance(e["timestamp"], int) and e["timestamp"] > 1_600_000_000_000
        assert isinstance(e["type"], str)
    keys = [
        (e["type"], e.get("taskId"), e.get("attempt"))
        for e in events
        if e["type"] not in ("execution.updated", "substep.progress")  # many per attempt
    ]
    twice = [k for k in set(keys) if keys.count(k) > 1]
    assert not twice, (
        f"written twice: {twice}; all: {[(e['seq'], e['type'], e.get('taskId')) for e in events]}"
    )


def assert_every_finish_updated(events: list[dict[str, Any]]) -> None:
    """docs/events.md: every task that finishes is counted by an ``execution.updated`` after its
    final substep event and before the terminal event (updates queued back to back may be one)."""
    final = [
        e["seq"]
        for e in events
        if e["type"] == "substep.completed" or (e["type"] == "substep.failed" and not e["willRetry"])
    ]
    updates = [e for e in events if e["type"] == "execution.updated" and not e.get("snapshot")]
    end = next(e["seq"] for e in events if e["type"] in TERMINAL_TYPES)
    for seq in final:
        after = [u for u in updates if seq < u["seq"] < end]
        assert after, f"no execution.updated between the finish at seq {seq} and the end at {end}"
        counted = after[0]["completedTasks"] + after[0]["failedTasks"] + after[0]["skippedTasks"]
        assert counted >= sum(1 for s in final if s < after[0]["seq"]), (seq, after[0])


@pytest.fixture(autouse=True, scope="session")
def _quiet_fanout_logs() -> None:
    import logging

    logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
    logging.getLogger("dagcast-webhooks").setLevel(logging.ERROR)
