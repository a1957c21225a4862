"""`dagcast verify --stage S`: a first-deploy check. It runs one small job through the deployed
stage and checks what only AWS can show — the REST API, the event stream through the function URL
(live, resumed with Last-Event-ID, gzip), an EventBridge event, webhook delivery to a receiver the
user names, each alarm's action — and prints the figures the docs only estimate (cold starts, RCU
per viewer). Every check prints pass, fail, or skip with the reason; any failure exits 1.

What it leaves behind: the job's execution (an ordinary one, in the table like any other). What it
removes: its EventBridge rule and queue, its webhook. It does not change the stage's code,
settings or stack. docs/deploy.md § Verifying a stage lists the assumptions each check tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..client import Api
from . import api_checks, cloud_checks, observers
from .report import Result, skipped
from .target import StageTarget


@dataclass(frozen=True)
class Options:
    webhook_url: str = ""
    webhook_secret: str = ""
    viewers: int = 3
    timeout: float = 120  # the job, and each observer, must be done by then
    alarms: bool = True
    alarm_wait: float = 60
    metrics_wait: float = 300
    cold_start_hours: float = 24


def run_checks(
    target: StageTarget, session: Any, client: httpx.Client, options: Options, say: Callable[[Result], None]
) -> list[Result]:
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        say(result)

    api = Api(target.api_url, client, target.api_key)
    bridge = observers.EventBridgeProbe(session.client("events"), session.client("sqs"), target.event_bus)
    hook = observers.WebhookProbe(api, options.webhook_url, options.webhook_secret)
    probes = [p for p, on in ((bridge, bool(target.event_bus)), (hook, bool(options.webhook_url))) if on]
    start = datetime.now(UTC)
    try:
        for probe in probes:
            probe.start()
        run = api_checks.Run()
        record(api_checks.submit(api, run))
        if run.access is not None:
            _job_checks(api, client, run, target, options, record)
            record(
                bridge.check(run.execution_id, options.timeout)
                if target.event_bus
                else observers.eventbridge_skipped()
            )
            record(
                hook.check(run.execution_id, options.timeout)
                if options.webhook_url
                else observers.webhook_skipped()
            )
    finally:
        for probe in probes:
            probe.close()
    end = datetime.now(UTC) + timedelta(minutes=1)
    _cloud_checks(session, target, options, start, end, record)
    return results


def _job_checks(
    api: Api, client: httpx.Client, run: api_checks.Run, target: StageTarget, options: Options,
    record: Callable[[Result], None],
) -> None:  # fmt: skip
    record(api_checks.events_url_check(run, target.events_url))
    threads = api_checks.watch_live(client, run, options.viewers)
    record(api_checks.live_check(run, threads, options.timeout))
    record(api_checks.rest_check(api, run))
    record(api_checks.resume_check(client, run))
    record(api_checks.gzip_check(client, run))


def _cloud_checks(
    session: Any, target: StageTarget, options: Options, start: datetime, end: datetime,
    record: Callable[[Result], None],
) -> None:  # fmt: skip
    cloudwatch = session.client("cloudwatch")
    for alarm in target.alarms:
        if options.alarms:
            record(cloud_checks.alarm_check(cloudwatch, alarm, options.alarm_wait))
        else:
            record(skipped(f"alarm {alarm}", "--skip-alarms"))
    logs = session.client("logs")
    since_ms = int((time.time() - options.cold_start_hours * 3600) * 1000)
    for function in target.functions:
        record(cloud_checks.cold_start_figure(logs, function, since_ms))
    if target.table:
        record(cloud_checks.rcu_figure(cloudwatch, target.table, start - timedelta(minutes=1), end,
                                       options.viewers, options.metrics_wait))  # fmt: skip
