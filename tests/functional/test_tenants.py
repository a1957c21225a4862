"""Tenant quotas and capabilities on the embedded stack (chalicelib/tenants.py,
persistence/quotas.py, orchestration/release.py; docs/security.md#quotas): over a quota a submit is
429 with Retry-After naming it, nothing stored; tasks over a tenant's maxRunningTasks wait and then
run (none fails), and another tenant's are not held; a job naming another tenant's key is 400; a
key registered in the table is found by the gate, and a revoked one refused once its cache expires.
Over real sockets: tests/e2e/test_tenants.py."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import ApiKeyInvalid, InvalidJob, QuotaExceeded
from chalicelib.domain.model import TaskStatus, now_ms
from chalicelib.factory import Services
from chalicelib.http import api
from chalicelib.http.errors import answer_for
from chalicelib.http.gate import Gate, key_digest
from chalicelib.orchestration.engine import Orchestrator
from chalicelib.persistence.apikeys import ApiKeyRegistry
from chalicelib.persistence.quotas import TenantQuotas
from chalicelib.tenants import Tenants, parse_policies
from dagcast.cli.keys import api_key_command
from tests.functional.conftest import wait_for_end
from tests.support.jobs import echo, sleep, task
from tests.support.plugins import let_go


@pytest.fixture
def policies(services, monkeypatch) -> Iterator[Any]:
    """Set the stage's tenant policies for one test, on the services the stack's functions use now
    (a test before may have had them rebuilt): answers those services."""
    import app

    current = app.services()

    def set_policies(policies: dict[str, Any]) -> Services:
        tenants = Tenants(parse_policies(json.dumps(policies)))
        monkeypatch.setattr(current.orchestrator, "tenants", tenants)  # the services' too
        return current

    yield set_policies


def submit(services: Services, tenant: str, tasks: list[dict[str, Any]]) -> str:
    return services.orchestrator.submit(parse_job({"tasks": tasks}), tenant=tenant)


def test_a_tenant_over_its_submits_per_second_gets_429_naming_it(services, policies):
    services = policies({"t-rate": {"submitsPerSecond": 3}})
    second = now_ms()
    engine = services.orchestrator
    frozen = Orchestrator(  # every submit in one second, however slow this machine is today
        services.store, engine._state_machine, engine._arn, clock=lambda: second,
        quotas=engine.quotas, tenants=engine.tenants,
    )  # fmt: skip
    accepted, refused = [], []
    for _ in range(5):
        try:
            accepted.append(frozen.submit(parse_job({"tasks": [echo(1, "x")]}), tenant="t-rate"))
        except QuotaExceeded as exc:
            refused.append(exc)
    assert len(accepted) == 3 and len(refused) == 2, (accepted, refused)
    answer = answer_for(refused[0])
    assert answer is not None and answer.status == 429 and answer.headers == {"Retry-After": "1"}
    assert "submitsPerSecond" in answer.body["error"] and "t-rate" in answer.body["error"]
    for eid in accepted:
        wait_for_end(services, eid)


def test_a_tenant_at_its_running_executions_gets_429_until_one_ends(services, policies):
    services = policies({"t-execs": {"maxRunningExecutions": 2}})
    key = uuid.uuid4().hex
    running = task(1, "python", {"function": "tests.held", "args": {"key": key, "seconds": 60}})
    first = submit(services, "t-execs", [running])
    second = submit(services, "t-execs", [running])
    with pytest.raises(QuotaExceeded) as refused:
        submit(services, "t-execs", [echo(1, "x")])
    answer = answer_for(refused.value)
    assert answer is not None and answer.status == 429 and answer.headers == {"Retry-After": "5"}
    assert "maxRunningExecutions (2)" in answer.body["error"]
    other = submit(services, "t-other", [echo(1, "x")])  # another tenant is not counted
    for eid in (first, second):  # moto cannot stop an execution its interpreter has not begun
        started(services, eid)
    services.orchestrator.cancel(first)  # an execution that ends frees its place
    third = submit(services, "t-execs", [echo(1, "x")])
    services.orchestrator.cancel(second)
    let_go(key)  # the cancelled executions' Lambdas end now, not after a minute
    for eid in (first, second, third, other):
        wait_for_end(services, eid)


def started(services: Services, execution_id: str) -> None:
    """Until the execution's first task has started (its state machine execution is running)."""
    deadline = time.monotonic() + 30
    while not any(e["type"] == "substep.started" for e in services.store.events_after(execution_id, 0)):
        assert time.monotonic() < deadline, f"{execution_id} never started a task"
        time.sleep(0.05)


def running_at_once(views: list[dict[str, Any]]) -> int:
    """The most tasks that ran at the same time, from their startedAt / finishedAt."""
    edges = sorted([(v["startedAt"], 1) for v in views] + [(v["finishedAt"], -1) for v in views])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_tasks_over_a_tenants_running_tasks_wait_and_none_fails(services, policies):
    """Two executions of four parallel 0.4 s tasks under maxRunningTasks 2: every task completes,
    never more than two run at once; another tenant's task meanwhile is not held behind them."""
    services = policies({"t-tasks": {"maxRunningTasks": 2}})
    flood = [submit(services, "t-tasks", [sleep(t, 0.4) for t in range(1, 5)]) for _ in range(2)]
    time.sleep(0.2)  # the flood is holding its two slots: what the other tenant's task must not wait for
    lone = submit(services, "t-lone", [echo(1, "not held")])
    wait_for_end(services, lone)
    (lone_task,) = services.orchestrator.snapshot(lone)["tasks"]
    views = []
    for eid in flood:
        wait_for_end(services, eid)
        snapshot = services.orchestrator.snapshot(eid)
        assert snapshot["status"] == "completed", snapshot
        views += snapshot["tasks"]
    assert [v["status"] for v in views] == [TaskStatus.COMPLETED] * 8
    assert running_at_once(views) <= 2, sorted((v["startedAt"], v["finishedAt"]) for v in views)
    # the four tasks of each round of two took ~0.4 s each: held, the eight take ≥ 4 rounds
    assert max(v["finishedAt"] for v in views) - min(v["startedAt"] for v in views) >= 1500
    # not behind the flood's queue: it started before the flood's last held task did
    assert lone_task["startedAt"] < max(v["startedAt"] for v in views)
    held, queued = TenantQuotas(services.store._db, services.store._table).task_usage("t-tasks")
    assert (held, queued) == (0, [])  # every slot given back


def test_a_job_naming_another_tenants_capability_is_400(services, policies):
    services = policies(
        {"acme": {"lambdaFunctions": ["acme-*"]}, "globex": {"lambdaFunctions": ["globex-*"]}}
    )
    body = json.dumps({"tasks": [task(1, "lambda", {"functionName": "acme-resize"})]}).encode()
    with pytest.raises(InvalidJob) as refused:
        api.execute_dag(services, body, "", tenant="globex")
    answer = answer_for(refused.value)
    assert answer is not None and answer.status == 400
    assert answer.body["problems"][0]["path"] == "tasks[0].params.functionName"
    assert "not in tenant 'globex''s lambdaFunctions" in answer.body["problems"][0]["message"]
    with pytest.raises(InvalidJob, match="another tenant"):  # a tenant without a list of its own
        api.execute_dag(services, body, "", tenant="initech")


def test_a_key_registered_for_a_stage_is_its_tenants_and_a_revoked_one_stops(services, capsys):
    dynamodb = boto3.client("dynamodb")
    args = argparse.Namespace(tenant="acme", stage="functional", region=None, revoke=None)
    assert api_key_command(args, dynamodb) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    key = printed["key"].strip()
    assert key_digest(key) == printed["digest"].strip()
    registry = ApiKeyRegistry(dynamodb, "dagcast-functional")  # the stage's table (deploy/stage.py)
    now = [0.0]
    from chalicelib.config import Settings

    settings = Settings.from_env(
        {"DAGCAST_TABLE": "dagcast-functional", "DAGCAST_AUTH": "off", "DAGCAST_API_KEY_STORE": "1"}
    )
    gate = Gate(settings, registry, clock=lambda: now[0])
    assert gate.check({"x-api-key": key}, "ip") == "acme"
    revoke = argparse.Namespace(
        tenant="default", stage="functional", region=None, revoke=printed["digest"].strip()
    )
    assert api_key_command(revoke, dynamodb) == 0
    assert gate.check({"x-api-key": key}, "ip") == "acme"  # cached
    now[0] += settings.api_key_cache_seconds + 1
    with pytest.raises(ApiKeyInvalid):
        gate.check({"x-api-key": key}, "ip")
