"""A secret that a task handles — in a request header it sends, in the result it gets back — never
shows up in an event, the SSE stream, a webhook body, the REST API or a log line; the places that
carry the result show [REDACTED] instead."""

from __future__ import annotations

import json
import logging
import time
import warnings

from chalicelib.http import api, webhook_routes
from tests.functional.conftest import run_job
from tests.support.jobs import task
from tests.support.receiver import Receiver

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "hunter2-do-not-leak"


def test_a_secret_in_a_request_or_a_result_never_leaks(services, upstream, caplog, capfd, monkeypatch):
    from chalicelib.config import Settings
    from chalicelib.stream.app import create_sse_app

    monkeypatch.setenv("E2E_API_KEY", f"Bearer {SECRET}")

    # dagcast's own loggers at DEBUG, everything else at INFO (Lambda's level; botocore's DEBUG
    # wire dumps are not something a deployment turns on)
    caplog.set_level(logging.INFO)
    for name in ("chalicelib", "dagcast", "dagcast-fanout", "dagcast-webhooks", "app"):
        caplog.set_level(logging.DEBUG, logger=name)
    receiver = Receiver("webhook-secret-0123456789").start()
    status, hook = webhook_routes.create_webhook(
        services, json.dumps({"url": receiver.url, "secret": receiver.secret}).encode()
    )
    assert status == 201
    try:
        job = {
            "tasks": [
                task(
                    1,
                    "http",
                    {
                        "method": "POST",
                        "url": f"{upstream}/echo",
                        # a credential header is a reference (issue 19: literal ones are refused)
                        "headers": {"Authorization": {"env": "E2E_API_KEY"}, "X-Test": "visible"},
                        "body": {"password": SECRET, "nested": [{"apiKey": SECRET}], "note": "visible"},
                    },
                )
            ]
        }
        eid, events = run_job(services, job)
        assert events[-1]["type"] == "execution.completed"
        deadline = time.monotonic() + 30
        while len(receiver.keys_for(eid)) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
        settings = Settings.from_env()
        token = services.signer.issue(eid).token
        with TestClient(create_sse_app(settings, lambda: services.store)) as client:
            stream = client.get(f"/api/v1/dag-executions/{eid}/events?token={token}&since=0").text
        places = {
            "events": json.dumps(events),
            "stream": stream,
            "webhooks": json.dumps([r.event for r in receiver.accepted]),
            "snapshot": json.dumps(api.get_execution(services, eid)),
            "task result": json.dumps(api.task_result(services, eid, "1")),
            "final result": json.dumps(api.final_result(services, eid)),
            "logs": caplog.text,
            "stdout and stderr (powertools' JSON log lines, EMF)": "".join(capfd.readouterr()),
        }
        for where, text in places.items():
            assert SECRET not in text, f"the secret leaked into the {where}"
        for where in ("events", "stream", "webhooks", "task result", "final result"):
            assert "[REDACTED]" in places[where] and "visible" in places[where], (
                where
            )  # the result went through
        assert len(receiver.keys_for(eid)) == len(events)
    finally:
        webhook_routes.delete_webhook(services, hook["webhookId"])
        receiver.stop()
