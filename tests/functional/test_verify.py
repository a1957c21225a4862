"""`dagcast verify` against the embedded stack made to look like a stage: the real front (REST API
+ SSE under uvicorn), the fan-out publishing to a bus of moto's EventBridge, a webhook receiver, and
alarms, log groups and metrics put into moto's CloudWatch. moto has no alarm history, no REPORT
lines of its own and no DynamoDB metrics: those the test puts there, or verify says it skipped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from chalicelib.config import Settings
from dagcast.verify import Options, run_checks
from dagcast.verify.report import Outcome, Result
from dagcast.verify.target import StageTarget, from_deployment, stack_outputs_and_alarms
from tests.support.chaos_stream import SseServer
from tests.support.receiver import Receiver

SECRET = "verify-webhook-secret-0123456789"


@pytest.fixture
def front(stack) -> Iterator[SseServer]:
    with SseServer(stack, Settings.from_env()) as server:
        yield server


@pytest.fixture
def bus(services, monkeypatch) -> str:
    """The fan-out publishes to a fresh bus while the test runs (the local stack's has none)."""
    events = boto3.client("events")
    name = f"dagcast-verify-test-{int(time.time() * 1000)}"
    events.create_event_bus(Name=name)
    monkeypatch.setattr(services.fanout, "eventbridge", events)
    monkeypatch.setattr(services.fanout, "bus", name)
    return name


def alarms() -> tuple[str, str]:
    """One alarm with an action, one without; their names."""
    cloudwatch, sns = boto3.client("cloudwatch"), boto3.client("sns")
    topic = sns.create_topic(Name="dagcast-verify-oncall")["TopicArn"]
    common: dict[str, Any] = {
        "Namespace": "AWS/States", "MetricName": "ExecutionsTimedOut", "Statistic": "Sum", "Period": 300,
        "EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
    }  # fmt: skip
    cloudwatch.put_metric_alarm(AlarmName="verify-paged", AlarmActions=[topic], **common)
    cloudwatch.put_metric_alarm(AlarmName="verify-silent", **common)
    return "verify-paged", "verify-silent"


def cold_starts(function: str) -> None:
    logs = boto3.client("logs")
    group = f"/aws/lambda/{function}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    lines = [
        "REPORT RequestId: a Duration: 12.1 ms Billed Duration: 13 ms Memory Size: 512 MB Max Memory "
        f"Used: 90 MB Init Duration: {init} ms"
        for init in ("812.40", "640.00", "1021.7")
    ] + [
        "REPORT RequestId: b Duration: 3.0 ms Billed Duration: 3 ms Memory Size: 512 MB Max Memory Used: 90 MB"
    ]
    logs.put_log_events(
        logGroupName=group, logStreamName="s", logEvents=[{"timestamp": now, "message": m} for m in lines]
    )


def by_check(results: list[Result]) -> dict[str, Result]:
    return {r.check: r for r in results}


def test_verify_runs_a_job_through_the_stage_and_reports_each_check(stack, front, bus, services):
    receiver = Receiver(SECRET).reserve_port().start()
    paged, silent = alarms()
    cold_starts("dagcast-local-run_task")
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/DynamoDB",
        MetricData=[
            {"MetricName": "ConsumedReadCapacityUnits", "Dimensions": [{"Name": "TableName", "Value": stack.table_name}],
             "Value": 30.0}
        ],
    )  # fmt: skip
    target = StageTarget(
        stage="local", api_url=front.base, api_key=None, events_url=front.base, table=stack.table_name,
        event_bus=bus, alarms=(paged, silent), functions=("dagcast-local-run_task", "dagcast-local-finalize"),
    )  # fmt: skip
    options = Options(webhook_url=receiver.url, webhook_secret=SECRET, viewers=2, timeout=60, alarm_wait=0,
                      metrics_wait=0)  # fmt: skip
    try:
        with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client:
            results = run_checks(target, boto3.Session(), client, options, lambda r: None)
    finally:
        receiver.stop()
    got = by_check(results)
    for check in ("rest-api submit", "sse function url", "sse live", "rest-api read", "sse resume", "sse gzip",
                  "eventbridge", "webhook", "cold start dagcast-local-run_task", "RCU per viewer"):  # fmt: skip
        assert got[check].outcome == Outcome.PASS, got[check]
    assert got["cold start dagcast-local-run_task"].detail.startswith(
        "3 cold starts: median 812 ms, max 1022 ms"
    )
    assert got["RCU per viewer"].detail.startswith("≤ 15.0 RCU")  # 30 RCU over 2 viewers
    assert got["cold start dagcast-local-finalize"].outcome == Outcome.SKIP  # no log group here
    assert (
        got[f"alarm {silent}"].outcome == Outcome.FAIL and "reaches no one" in got[f"alarm {silent}"].detail
    )
    # moto keeps no alarm history: the action is named, not confirmed
    assert (
        got[f"alarm {paged}"].outcome == Outcome.SKIP
        and "dagcast-verify-oncall" in got[f"alarm {paged}"].detail
    )
    assert receiver.accepted and all(r.signature_ok for r in receiver.accepted)
    # what verify made, it removed; the alarms are back to OK
    assert not [r for r in boto3.client("events").list_rules(EventBusName=bus)["Rules"]]
    assert not [u for u in boto3.client("sqs").list_queues().get("QueueUrls", []) if "dagcast-verify-" in u]
    hooks = httpx.get(f"{front.base}/api/v1/webhooks").json()["webhooks"]
    assert not [h for h in hooks if h["description"] == "dagcast verify"]
    states = boto3.client("cloudwatch").describe_alarms(AlarmNames=[paged])["MetricAlarms"]
    assert states[0]["StateValue"] == "OK"


def test_verify_fails_what_the_stage_does_not_do(stack, front, services):
    """A bus the fan-out does not publish to, and a receiver that is down: each check fails, saying so."""
    events = boto3.client("events")
    events.create_event_bus(Name="dagcast-verify-unused")
    down = Receiver(SECRET).reserve_port()  # never started
    target = StageTarget("local", front.base, None, "https://elsewhere.example", "dagcast-no-metrics",
                         "dagcast-verify-unused")  # fmt: skip
    options = Options(webhook_url=down.url, webhook_secret=SECRET, viewers=1, timeout=8, metrics_wait=0)
    with httpx.Client(timeout=30) as client:
        got = by_check(run_checks(target, boto3.Session(), client, options, lambda r: None))
    assert got["sse function url"].outcome == Outcome.FAIL  # the API hands out another URL
    assert got["eventbridge"].outcome == Outcome.FAIL and "no event of the job" in got["eventbridge"].detail
    assert got["webhook"].outcome == Outcome.FAIL
    assert got["RCU per viewer"].outcome == Outcome.SKIP  # moto has no DynamoDB metrics


def test_the_stage_is_found_where_dagcast_deploy_recorded_it(stack, tmp_path: Path):
    """.chalice/deployed/<stage>.json (Chalice), the stage's settings, the stack's outputs."""
    (tmp_path / ".chalice" / "deployed").mkdir(parents=True)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:dagcast-vfy-"
    (tmp_path / ".chalice" / "deployed" / "vfy.json").write_text(json.dumps({"resources": [
        {"name": "run_task", "resource_type": "lambda_function", "lambda_arn": arn + "run_task"},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc",
         "rest_api_url": "https://abc.execute-api.us-east-1.amazonaws.com/api/"},
    ]}))  # fmt: skip
    config = {"stages": {"vfy": {"environment_variables": {"DAGCAST_EVENT_BUS": "the-bus"}}}}
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    template = {
        # moto's CloudFormation cannot make an alarm (the next test lists one from a stubbed answer)
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dagcast-vfy-q"}}},
        "Outputs": {
            "EventsUrl": {"Value": "https://sse.lambda-url.us-east-1.on.aws/"},
            "TableName": {"Value": "dagcast-vfy"},
            "SseFunctionName": {"Value": "dagcast-vfy-sse"},
        },
    }
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName="dagcast-vfy", TemplateBody=json.dumps(template))
    target = from_deployment(tmp_path, "vfy", cfn, "key")
    assert target == StageTarget(
        stage="vfy", api_url="https://abc.execute-api.us-east-1.amazonaws.com/api", api_key="key",
        events_url="https://sse.lambda-url.us-east-1.on.aws", table="dagcast-vfy", event_bus="the-bus",
        alarms=(), functions=("dagcast-vfy-run_task", "dagcast-vfy-sse"),
    )  # fmt: skip


def test_the_stacks_alarms_are_its_resources_of_the_alarm_type(stack):
    """CloudFormation names an alarm <stack>-<LogicalId>-<suffix> unless told otherwise: the stack's
    resource list, not a name pattern, says which are the stage's (an answer stubbed from
    botocore's model: moto's CloudFormation has no alarms)."""
    cfn = boto3.client("cloudformation")
    summary = {"LastUpdatedTimestamp": datetime.now(UTC), "ResourceStatus": "CREATE_COMPLETE"}
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "dagcast-s",
                        "CreationTime": datetime.now(UTC),
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [{"OutputKey": "TableName", "OutputValue": "dagcast-s"}],
                    }
                ]
            },
        )
        stub.add_response("list_stack_resources", {"StackResourceSummaries": [
            {"LogicalResourceId": "ExecutionsFailedAlarm", "PhysicalResourceId": "dagcast-s-ExecutionsFailedAlarm-1A",
             "ResourceType": "AWS::CloudWatch::Alarm", **summary},
            {"LogicalResourceId": "FanoutFailures", "PhysicalResourceId": "https://sqs/q",
             "ResourceType": "AWS::SQS::Queue", **summary},
        ]})  # fmt: skip
        outputs, alarms = stack_outputs_and_alarms(cfn, "s")
    assert outputs == {"TableName": "dagcast-s"} and alarms == ["dagcast-s-ExecutionsFailedAlarm-1A"]
