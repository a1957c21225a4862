"""The LocalStack backend without a LocalStack, as pure code: where it looks for LocalStack and what
it would send (the mapping, the table's TTL, the functions and their environment). The Lambda zip and
the provisioning run are tests/functional/test_localstack_provision.py; the health check over
sockets is tests/e2e/test_localstack_health.py."""

from __future__ import annotations

import json

from chalicelib.config import ASL_FUNCTIONS, ASL_SUBSTITUTIONS
from dagcast.local.localstack import connection, provision
from tests.support.cloudformation import ROOT, template


def test_the_endpoint_comes_from_localstack_endpoint():
    assert connection.endpoint_from_env({}) == "http://localhost:4566"
    assert (
        connection.endpoint_from_env({"LOCALSTACK_ENDPOINT": "http://ls.internal:4566/"})
        == "http://ls.internal:4566"
    )


def test_the_fanout_mapping_is_template_yamls():
    mapping = template()["Resources"]["FanoutMapping"]["Properties"]
    sent = provision.event_source_mapping_arguments(
        "arn:stream", "dagcast-local-fanout", "arn:queue", mapping["BatchSize"], 0.2
    )
    assert sent["FilterCriteria"] == mapping["FilterCriteria"]
    assert [json.loads(f["Pattern"]) for f in sent["FilterCriteria"]["Filters"]] == [
        json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]
    ]
    for key in (
        "FunctionResponseTypes",
        "StartingPosition",
        "BatchSize",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
    ):
        assert sent[key] == mapping[key], key
    assert sent["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sent["DestinationConfig"] == {"OnFailure": {"Destination": "arn:queue"}}
    assert sent["MaximumBatchingWindowInSeconds"] == 1  # whole seconds in the API: rounded up
    assert sent["EventSourceArn"] == "arn:stream" and sent["FunctionName"] == "dagcast-local-fanout"


def test_the_table_gets_template_yamls_ttl():
    ttl = template()["Resources"]["EventsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": provision.TTL_ATTRIBUTE, "Enabled": True}


def test_the_functions_are_the_chalice_apps_with_its_timeouts():
    import app

    handlers = provision.lambda_handlers()
    assert set(handlers) == {
        "register_task",
        "run_task",
        "record_failure",
        "finalize",
        "fanout",
        "webhook_retry",
        "reconcile_execution",
    }
    for name, handler in handlers.items():
        module, attr = handler.split(".")
        assert module == "app" and callable(getattr(app, attr)), name
    assert handlers["fanout"] == "app.fanout_handler"
    assert set(ASL_FUNCTIONS) == set(ASL_SUBSTITUTIONS) and set(ASL_FUNCTIONS.values()) <= set(handlers)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    per_function = config["stages"]["dev"]["lambda_functions"]
    for name in handlers:
        want = per_function.get(name, {}).get("lambda_timeout", config["lambda_timeout"])
        made = provision.function_configuration(name, handlers[name], "arn:role", {})
        assert made["Timeout"] == want, name
        assert made["FunctionName"] == f"dagcast-local-{name}"
        assert made["Runtime"] == "python3.12" and made["Handler"] == handlers[name]


def test_the_functions_environment():
    arn = provision.state_machine_arn("000000000000")
    assert arn == "arn:aws:states:us-east-1:000000000000:stateMachine:dagcast-local-dag"
    inherited = {"DAGCAST_PLUGINS": "my.kinds", "DAGCAST_TABLE": "other", "HOME": "/root"}
    env = provision.function_environment("dagcast-local", arn, "s" * 32, "arn:key", inherited)
    assert env["DAGCAST_TABLE"] == "dagcast-local"
    assert env["DAGCAST_STATE_MACHINE_ARN"] == arn
    assert env["DAGCAST_STREAM_SECRET"] == "s" * 32
    assert env["DAGCAST_WEBHOOK_KMS_KEY"] == "arn:key"
    assert env["DAGCAST_PLUGINS"] == "my.kinds" and "HOME" not in env
    assert env["DAGCAST_WEBHOOK_SWEEP_SECONDS"] == "0"
    # LocalStack injects its own AWS_ENDPOINT_URL into the Lambdas; a value here would replace it.
    assert "AWS_ENDPOINT_URL" not in env
    assert (
        provision.function_environment("t", arn, "s", "k", {}, "http://ls:4566")["AWS_ENDPOINT_URL"]
        == "http://ls:4566"
    )
    assert len(json.dumps(env)) < 4096  # Lambda's limit for all variables together
