"""The alarms of template.yaml, offline: each failure an operator must act on has one, every one
notifies the alarm topic when the stage names someone (and nothing when it does not), operations.md
says what to do for each; and what `dagcast destroy` keeps is what the kept data needs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import app
from chalicelib.persistence import sfn
from dagcast.deploy import retained
from dagcast.deploy.sse_profiles import MANAGED_INSTANCES, SseProfile
from tests.support.cloudformation import ROOT, Stack, template

STAGES = sorted(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"])
PROFILES = (
    SseProfile(),
    SseProfile(MANAGED_INSTANCES, subnets="subnet-0a,subnet-0b", security_groups="sg-0a"),
)
TOPIC = "arn:aws:sns:REGION:ACCOUNT:pager"
Watched = tuple[str, str, frozenset[tuple[str, str]]]


def alarms(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every alarm the stack holds, resolved."""
    return {
        name: stack(stack.props(name))
        for name, kind in stack.resources().items()
        if kind == "AWS::CloudWatch::Alarm"
    }


def watched(props: dict[str, Any]) -> list[Watched]:
    """The metrics an alarm reads: its one metric, or those of its metric math."""
    stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    metrics = stats or [props]
    return [
        (m["Namespace"], m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m.get("Dimensions", [])))
        for m in metrics
    ]


def all_watched(stack: Stack) -> dict[Watched, str]:
    return {metric: name for name, props in alarms(stack).items() for metric in watched(props)}


def fn(name: str) -> frozenset[tuple[str, str]]:
    return frozenset({("FunctionName", name)})


def deployed_functions(stack: Stack) -> list[str]:
    """The Lambda function names a stage has: Chalice's (the API handler is named after the app and
    stage) and the template's. A function added to either is in this list."""
    chalice = [f.name for f in app.app.pure_lambda_functions] + [e.name for e in app.app.event_sources]
    names = [f"dagcast-{stack.stage}-{name}" for name in chalice] + [f"dagcast-{stack.stage}"]
    return names + [
        stack.ref(name) for name, kind in stack.resources().items() if kind == "AWS::Serverless::Function"
    ]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.profile)
@pytest.mark.parametrize("stage", STAGES)
def test_every_failure_an_operator_must_act_on_has_an_alarm(stage: str, profile: SseProfile):
    stack = Stack(stage, tpl=template(), **profile.parameters())
    seen = all_watched(stack)
    machine = frozenset({("StateMachineArn", stack.ref("DagStateMachine"))})
    table = stack.ref("EventsTable")
    needed: list[Watched] = [
        # Step Functions ended the execution itself: no Finalize ran
        ("AWS/States", "ExecutionsTimedOut", machine),
        ("AWS/States", "ExecutionsAborted", machine),
        # the bookkeeping functions failed (task failures are not errors)
        *(("AWS/Lambda", "Errors", fn(f"dagcast-{stage}-{f}")) for f in ("register_task", "record_failure", "finalize")),
        # the SSE function's errors (its 5xx count: below), the fan-out and webhooks
        ("AWS/Lambda", "Errors", fn(stack.output("SseFunctionName"))),
        ("AWS/Lambda", "IteratorAge", fn(f"dagcast-{stage}-fanout")),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", frozenset({("QueueName", f"dagcast-{stage}-fanout-failures")})),
        ("dagcast", "WebhookDeadLetters", frozenset({("service", "fanout")})),
        # the region's Lambda pool
        ("AWS/Lambda", "ClaimedAccountConcurrency", frozenset()),
    ]  # fmt: skip
    # every function dagcast deploys, throttled
    needed += [("AWS/Lambda", "Throttles", fn(name)) for name in deployed_functions(stack)]
    # the table and each of its indexes, reads and writes throttled
    indexes = [i["IndexName"] for i in stack.props("EventsTable").get("GlobalSecondaryIndexes", [])]
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        needed.append(("AWS/DynamoDB", metric, frozenset({("TableName", table)})))
        needed += [
            ("AWS/DynamoDB", metric, frozenset({("TableName", table), ("GlobalSecondaryIndexName", index)}))
            for index in indexes
        ]
    missing = [metric for metric in needed if metric not in seen]
    assert not missing, f"no alarm watches {missing}"
    # failed jobs are the job's outcome, not an operator's page (ExecutionsFailed counts only them)
    assert ("AWS/States", "ExecutionsFailed", machine) not in seen


@pytest.mark.parametrize("stage", STAGES)
def test_functions_with_a_concurrency_cap_alarm_before_they_reach_it(stage: str):
    """A function with reserved concurrency turns callers away at its cap: an alarm fires at 80%."""
    stack = Stack(stage)
    capped = {
        stack.ref(name): stack.text(stack.props(name)["ReservedConcurrentExecutions"])
        for name, kind in stack.resources().items()
        if kind == "AWS::Serverless::Function" and "ReservedConcurrentExecutions" in stack.props(name)
    }
    assert capped, "the on-demand SSE function is capped"
    for props in alarms(stack).values():
        for metric in watched(props):
            if metric[:2] == ("AWS/Lambda", "ConcurrentExecutions"):
                name = dict(metric[2])["FunctionName"]
                [expression] = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
                assert expression.endswith(f"/ {capped.pop(name)}") and props["Threshold"] == 80
    assert not capped, f"no alarm before {sorted(capped)} reach their reserved concurrency"


def test_the_sse_functions_app_5xx_are_errors():
    """The Web Adapter reports an answered request as a success unless its status is listed: the
    SSE function's 5xx reach SseErrorsAlarm only through AWS_LWA_ERROR_STATUS_CODES."""
    for profile in PROFILES:
        stack = Stack("dev", tpl=template(), **profile.parameters())
        name = next(n for n, k in stack.resources().items() if k == "AWS::Serverless::Function")
        codes = stack.props(name)["Environment"]["Variables"]["AWS_LWA_ERROR_STATUS_CODES"]
        listed: set[int] = set()
        for part in codes.split(","):
            low, _, high = part.partition("-")
            listed |= set(range(int(low), int(high or low) + 1))
        assert set(range(500, 600)) <= listed, name


DESTINATIONS = [
    # parameters → the alarms' one action (None: no actions), whether the stack makes the topic
    ({}, None, False),
    ({"AlarmEmail": "ops@example.com"}, "arn:aws:sns:REGION:ACCOUNT:dagcast-{stage}-alarms", True),
    ({"AlarmTopicArn": TOPIC}, TOPIC, False),
    ({"AlarmEmail": "ops@example.com", "AlarmTopicArn": TOPIC}, TOPIC, False),
]


@pytest.mark.parametrize(("parameters", "action", "made"), DESTINATIONS)
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.profile)
def test_every_alarm_notifies_the_topic_when_the_stage_names_someone(parameters, action, made, profile):
    stack = Stack("dev", tpl=template(), **profile.parameters(), **parameters)
    found = alarms(stack)
    assert len(found) >= 15
    for name, props in found.items():
        if action is None:
            assert "AlarmActions" not in props and "OKActions" not in props, name
        else:
            expected = [action.format(stage="dev")]
            assert props["AlarmActions"] == expected and props["OKActions"] == expected, name
    resources = stack.resources()
    assert ("AlarmTopic" in resources) is made
    assert ("AlarmEmailSubscription" in resources) is ("AlarmEmail" in parameters)
    if "AlarmEmail" in parameters:
        subscription = stack(stack.props("AlarmEmailSubscription"))
        assert subscription == {
            "Protocol": "email",
            "Endpoint": parameters["AlarmEmail"],
            "TopicArn": action.format(stage="dev"),
        }
    assert stack.output("AlarmTopicArn") == (action or "").format(stage="dev")


def test_every_metric_math_alarm_returns_one_series_from_metrics_it_defines():
    stack = Stack("dev")
    for name, props in alarms(stack).items():
        metrics = props.get("Metrics")
        if metrics is None:
            continue
        assert [m.get("ReturnData", True) for m in metrics].count(True) == 1, name
        ids = {m["Id"] for m in metrics if "MetricStat" in m}
        for m in metrics:
            if "Expression" in m and "METRICS()" not in m["Expression"]:
                used = set(re.findall(r"[a-z][A-Za-z0-9_]*", m["Expression"])) - {"FILL", "SUM"}
                assert used <= ids, f"{name}: {m['Expression']} reads {used - ids}"


def test_the_aborted_alarm_leaves_out_the_stops_dagcast_makes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """A cancel stops its Step Functions execution (ExecutionsAborted counts it); the adapter
    counts each stop it makes, and the alarm subtracts them: only other stops page."""
    # as in a Lambda; the embedded stack of an earlier test layer turns EMF off for the process
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    props = alarms(Stack("dev"))["ExecutionsAbortedAlarm"]
    namespace, metric, dimensions = sfn.STOPPED_METRIC
    ids = {m["Id"]: watched({"Metrics": [m]})[0] for m in props["Metrics"] if "MetricStat" in m}
    stopped = next(i for i, w in ids.items() if w == (namespace, metric, frozenset(dimensions.items())))
    aborted = next(i for i, w in ids.items() if w[1] == "ExecutionsAborted")
    [expression] = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
    assert expression.replace(" ", "") == f"FILL({aborted},0)-FILL({stopped},0)"

    class Client:
        def stop_execution(self, **kwargs: str) -> None:
            pass

    sfn.StepFunctions(Client()).stop_execution("arn:x", error="Cancelled", cause="by request")  # type: ignore[arg-type]
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == namespace and directive["Metrics"][0]["Name"] == metric
    assert {k: line[k] for k in dimensions} == dimensions and line[metric] == [1.0]


def test_operations_md_says_what_to_do_for_every_alarm_in_the_template():
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Metrics and alarms", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for first, _, _ in rows for name in re.findall(r"`(\w+Alarm)`", first)}
    in_template = {n for n, r in template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert documented == in_template, (
        f"operations.md lacks {sorted(in_template - documented)}; lists {sorted(documented - in_template)}"
    )
    assert all(len(todo.strip()) > 10 for _, _, todo in rows)


def test_destroy_keeps_what_the_kept_table_needs_and_names_all_of_it():
    """What is retained is the table and the key its webhook secrets are encrypted under (the
    stage's DAGCAST_WEBHOOK_KMS_KEY is that key's alias); `dagcast destroy` finds each of them
    through an output it reads before deleting the stack."""
    tpl = template()
    kept = {n for n, r in tpl["Resources"].items() if r.get("DeletionPolicy") == "Retain"}
    assert kept == {"EventsTable", "WebhookKey"}
    for name in kept:
        assert tpl["Resources"][name].get("UpdateReplacePolicy") == "Retain", name
    stack = Stack("dev")
    assert stack(stack.props("WebhookKeyAlias")["TargetKeyId"]) == stack.ref("WebhookKey")
    names = {stack.ref("EventsTable"), stack.getatt("WebhookKey", "Arn")}
    assert {stack.output(key) for key in retained.KEPT_OUTPUTS} == names
