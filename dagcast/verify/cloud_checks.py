"""What only CloudWatch can say about a stage: whether each alarm's action fires (set to ALARM,
then back to OK: its subscribers get a test notification), and the figures the docs only estimate —
cold starts (the ``Init Duration`` of the functions' REPORT log lines) and the table's read
capacity per viewer (``ConsumedReadCapacityUnits`` over the verify job's window).

CloudWatch metrics arrive a minute or more late, so the RCU figure waits up to ``metrics_wait``
seconds for its datapoints; the alarm history likewise up to ``alarm_wait``.
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from .report import Result, failed, passed, skipped

INIT_DURATION = re.compile(r"Init Duration: ([0-9.]+) ms")
REASON = "dagcast verify: testing this alarm's actions"


def _history(cloudwatch: Any, alarm: str, since: datetime, wait: float) -> tuple[list[str], str]:
    """The alarm's action history items since ``since`` (waiting up to ``wait`` s for one), or why
    there is none to read."""
    deadline = time.monotonic() + wait
    while True:
        try:
            items = cloudwatch.describe_alarm_history(
                AlarmName=alarm, HistoryItemType="Action", StartDate=since
            ).get("AlarmHistoryItems", [])
        except Exception as exc:  # any failure is the answer: the history cannot be read (moto has none)
            return [], f"alarm history unreadable ({type(exc).__name__})"
        if items or time.monotonic() >= deadline:
            return [str(i.get("HistorySummary", "")) for i in items], "no action in the alarm's history"
        time.sleep(2)


def alarm_check(cloudwatch: Any, alarm: str, wait: float) -> Result:
    """Set the alarm to ALARM and back to OK; its actions, and whether its history shows them run."""
    check = f"alarm {alarm}"
    found = cloudwatch.describe_alarms(AlarmNames=[alarm]).get("MetricAlarms", [])
    if not found:
        return failed(check, "no such alarm")
    actions = list(found[0].get("AlarmActions", []))
    if not actions:
        return failed(check, "no AlarmActions: it reaches no one")
    since = datetime.now(UTC)
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason=REASON)
    try:
        history, why = _history(cloudwatch, alarm, since, wait)
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason=REASON)
    where = ", ".join(actions)
    if any(h.startswith("Failed") for h in history):
        return failed(check, f"an action failed: {next(h for h in history if h.startswith('Failed'))}")
    if not history:
        return skipped(check, f"set to ALARM and back to OK; actions {where}; not confirmed: {why}")
    return passed(check, f"ALARM → OK; actions {where}: {history[0]}")


def cold_start_figure(logs: Any, function: str, since_ms: int) -> Result:
    """Init Duration of the cold starts in ``function``'s REPORT lines since ``since_ms``."""
    check = f"cold start {function}"
    group = f"/aws/lambda/{function}"
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group,
            startTime=since_ms,
            filterPattern="REPORT",
            PaginationConfig={"MaxItems": 1000},
        )
        inits = [
            float(m.group(1)) for p in pages for e in p["events"] if (m := INIT_DURATION.search(e["message"]))
        ]
    except logs.exceptions.ResourceNotFoundException:
        return skipped(check, f"no log group {group}")
    if not inits:
        return skipped(check, "no cold start (REPORT … Init Duration) logged in the window")
    return passed(
        check, f"{len(inits)} cold starts: median {statistics.median(inits):.0f} ms, max {max(inits):.0f} ms"
    )


def rcu_figure(
    cloudwatch: Any, table: str, start: datetime, end: datetime, viewers: int, wait: float
) -> Result:
    """The table's consumed RCU over the job's window, shared out over its viewers (an upper bound:
    the task Lambdas' and the API's reads are in it too)."""
    check = "RCU per viewer"
    deadline = time.monotonic() + wait
    while True:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ConsumedReadCapacityUnits",
            Dimensions=[{"Name": "TableName", "Value": table}],
            StartTime=start, EndTime=end, Period=60, Statistics=["Sum"],
        ).get("Datapoints", [])  # fmt: skip
        if points or time.monotonic() >= deadline:
            break
        time.sleep(15)
    if not points:
        return skipped(check, f"no ConsumedReadCapacityUnits datapoints for {table} yet (CloudWatch lags)")
    total = sum(float(p["Sum"]) for p in points)
    seconds = max(60.0, (end - start).total_seconds())
    return passed(
        check,
        f"≤ {total / viewers:.1f} RCU ({total / viewers / seconds:.3f} RCU/s) per viewer: {total:.1f} RCU "
        f"in {seconds:.0f} s with {viewers} viewers, every reader of the table included",
    )
