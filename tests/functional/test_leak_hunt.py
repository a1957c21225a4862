"""The leak hunt: Hypothesis puts random secrets in every position a job allows (originalRequest,
descriptions, URL userinfo and queries, header references, bodies, python args, failing and
succeeding tasks, a result past the preview size), runs the job on the local stack with a webhook
and EventBridge on, and scans every table item, every event, the SSE bytes, every webhook body and
EventBridge detail, every API answer and every log line. A secret found anywhere fails the test,
saying where. With redaction turned off the same hunt finds the leaks (the hunter can see).

``DAGCAST_LEAK_HUNT_EXAMPLES`` sets how many jobs Hypothesis tries (3 in ``make test``).
"""

from __future__ import annotations

import json
import os
import string
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tests.support.plugins  # noqa: F401 - registers tests.return_args and tests.raise_args
from chalicelib.config import Settings
from chalicelib.http import api, webhook_routes
from chalicelib.redact import Redactor
from chalicelib.stream.app import create_sse_app
from tests.functional.conftest import wait_for_end
from tests.support.echo import EchoServer
from tests.support.leakhunt import (
    KEY_VAR,
    TRACE_VAR,
    Secrets,
    fanned_out,
    hunt_job,
    leaks,
    table_places,
)
from tests.support.receiver import EventBus, Receiver

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

EXAMPLES = int(os.environ.get("DAGCAST_LEAK_HUNT_EXAMPLES", "3"))
TABLE = "dagcast-functional"


def _secret() -> st.SearchStrategy[str]:
    """Distinctive (a fixed start and end around 6–20 random characters), URL-safe, ≥ 10 characters."""
    body = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=20)
    return body.map(lambda t: f"Lk{t}Zq")


def _distinct(values: list[str]) -> bool:
    return not any(a != b and a in b for a in values for b in values)


SECRETS = (
    st.lists(_secret(), min_size=Secrets.count(), max_size=Secrets.count(), unique=True)
    .filter(_distinct)
    .map(lambda xs: Secrets(*xs))
)


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = EchoServer().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def fanout_to(services) -> Iterator[tuple[Receiver, EventBus, str]]:
    """A webhook for every event, and EventBridge on (a bus whose rule feeds an SQS queue)."""
    receiver = Receiver("leak-hunt-webhook-secret-0123").start()
    status, hook = webhook_routes.create_webhook(
        services, json.dumps({"url": receiver.url, "secret": receiver.secret}).encode()
    )
    assert status == 201, hook
    bus = EventBus().create()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(services.fanout, "eventbridge", bus.events)
        mp.setattr(services.fanout, "bus", bus.name)
        yield receiver, bus, hook["webhookId"]
    webhook_routes.delete_webhook(services, hook["webhookId"])
    receiver.stop()


def _answers(services, execution_id: str, webhook_id: str) -> dict[str, str]:
    """Every read route's answer for the execution (errors included: they go through respond)."""
    calls: dict[str, Any] = {
        "GET execution": lambda: api.get_execution(services, execution_id),
        "GET executions": lambda: api.list_executions(services, {"limit": "100"}),
        "GET final result": lambda: api.final_result(services, execution_id),
        "POST stream token": lambda: api.stream_token(services, execution_id, "http://local"),
        "GET deliveries": lambda: webhook_routes.list_deliveries(
            services, webhook_id, {"executionId": execution_id}
        ),
    }
    for tid in range(1, 8):
        calls[f"GET task {tid} result"] = lambda t=tid: api.task_result(services, execution_id, str(t))
        calls[f"GET task {tid} result page"] = lambda t=tid: api.task_result(
            services, execution_id, str(t), {"offset": "10", "limit": "3000"}
        )
    return {f"API answer: {name}": json.dumps(api.respond(call)) for name, call in calls.items()}


def hunt(services, secrets: Secrets, echo_url: str, fanout_to, caplog, capfd) -> list[str]:
    """Run the job carrying ``secrets``; where each one surfaced (empty: nowhere)."""
    receiver, bus, webhook_id = fanout_to
    # Lambda's level for everything (httpx logs each request's URL at INFO), dagcast's own at DEBUG
    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger="chalicelib")
    os.environ[KEY_VAR], os.environ[TRACE_VAR] = secrets.header_key, secrets.header_trace
    raw = json.dumps(hunt_job(secrets, echo_url)).encode()
    status, submitted = api.respond(lambda: api.execute_dag(services, raw, "http://local"))
    assert status == 202, submitted
    execution_id = submitted["executionId"]
    events = wait_for_end(services, execution_id)
    places = {"API answer: POST dag-executions": json.dumps(submitted), "events": json.dumps(events)}
    with TestClient(create_sse_app(Settings.from_env(), lambda: services.store)) as client:
        url = f"/api/v1/dag-executions/{execution_id}/events?token={submitted['streamToken']}&since=0"
        places["SSE bytes"] = client.get(url).text
    places |= fanned_out(execution_id, len(events), receiver, bus)
    places |= _answers(services, execution_id, webhook_id)
    places |= table_places(TABLE, execution_id)
    places["log lines (caplog)"] = caplog.text
    places["stdout and stderr"] = "".join(capfd.readouterr())
    return leaks(secrets, places)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # no shrinking: each example is a job on the stack, and the report already says where and what
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(secrets=SECRETS)
def test_no_secret_surfaces_anywhere(services, echo_url, fanout_to, caplog, capfd, secrets):
    found = hunt(services, secrets, echo_url, fanout_to, caplog, capfd)
    assert not found, "secrets leaked:\n" + "\n".join(found)


def test_the_hunt_finds_the_leaks_when_redaction_is_off(
    services, echo_url, fanout_to, caplog, capfd, monkeypatch
):
    """The hunter can see: with the redactor a no-op, the issue's leak (the unreachable URL's key in
    substep.failed and execution.failed) and the others are found, in every kind of place."""
    monkeypatch.setattr(Redactor, "text", lambda self, text: text)
    monkeypatch.setattr(Redactor, "apply", lambda self, value: value)
    secrets = Secrets(*(f"LkOff{n:02d}secretZq" for n in range(Secrets.count())))
    found = hunt(services, secrets, echo_url, fanout_to, caplog, capfd)
    places = [line.split(" in ", 1)[1] for line in found]
    assert any(line.startswith("secret unreachable in events") for line in found), found
    for kind in (
        "events",
        "SSE bytes",
        "webhook body",
        "EventBridge detail",
        "table item",
        "API answer",
        "log",
    ):
        assert any(p.startswith(kind) for p in places), (kind, found)
    assert any(line.startswith("secret header_trace in") for line in found), "resolved values leak too"
