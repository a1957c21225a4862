"""The checks that watch the job from outside: its EventBridge events (a temporary rule on the
stage's bus with an SQS queue as target, both deleted afterwards) and its webhook deliveries (a
temporary webhook to a receiver the user names, deleted afterwards). Each is set up before the job
is submitted and read after it ended.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.model import DeliveryStatus
from chalicelib.fanout import EVENT_SOURCE

from ..client import Api, CliError
from .report import Result, failed, passed, skipped


@dataclass
class EventBridgeProbe:
    """A rule on ``bus`` for dagcast's events, delivering to a fresh SQS queue."""

    events: Any
    sqs: Any
    bus: str
    name: str = ""
    queue_url: str = ""
    problem: str = ""

    def start(self) -> None:
        self.name = f"dagcast-verify-{secrets.token_hex(4)}"
        try:
            self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
            queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            rule_arn = self.events.put_rule(
                Name=self.name, EventBusName=self.bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]})
            )["RuleArn"]
            self.sqs.set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"Policy": _queue_policy(queue_arn, rule_arn)}
            )
            self.events.put_targets(
                Rule=self.name, EventBusName=self.bus, Targets=[{"Id": "verify", "Arn": queue_arn}]
            )
        except ClientError as exc:
            self.problem = f"could not set up the rule and queue: {exc}"

    def check(self, execution_id: str, timeout: float) -> Result:
        if self.problem:
            return failed("eventbridge", self.problem)
        deadline = time.monotonic() + timeout
        while True:
            for message in self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                event = json.loads(message["Body"])
                if event.get("detail", {}).get("executionId") == execution_id:
                    return passed(
                        "eventbridge", f"{event.get('detail-type')} of the job arrived on bus {self.bus}"
                    )
            if time.monotonic() > deadline:
                return failed("eventbridge", f"no event of the job on bus {self.bus} within {timeout:g}s")

    def close(self) -> None:
        """Delete the rule and the queue, whatever happened (each step tried on its own)."""
        # each may not exist (start failed part way): the others are still deleted
        with contextlib.suppress(ClientError):
            self.events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=["verify"])
        with contextlib.suppress(ClientError):
            self.events.delete_rule(Name=self.name, EventBusName=self.bus)
        if self.queue_url:
            with contextlib.suppress(ClientError):
                self.sqs.delete_queue(QueueUrl=self.queue_url)


def _queue_policy(queue_arn: str, rule_arn: str) -> str:
    """EventBridge may send to the queue for this rule only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


@dataclass
class WebhookProbe:
    """A temporary webhook for ``execution.*`` events to ``url``."""

    api: Api
    url: str
    secret: str = ""  # the receiver's signing secret; a one-off one when not given
    webhook_id: str = ""
    problem: str = ""

    def start(self) -> None:
        secret = self.secret or secrets.token_hex(32)
        body = {"url": self.url, "secret": secret, "types": ["execution.*"], "description": "dagcast verify"}
        try:
            self.webhook_id = str(self.api.json("POST", "/api/v1/webhooks", json=body)["webhookId"])
        except CliError as exc:
            self.problem = f"could not register a webhook: {exc}"

    def check(self, execution_id: str, timeout: float) -> Result:
        if self.problem:
            return failed("webhook", self.problem)
        path = f"/api/v1/webhooks/{self.webhook_id}/deliveries"
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.api.json("GET", path, params={"executionId": execution_id})["deliveries"]
            states = {str(d.get("status")) for d in deliveries}
            if deliveries and DeliveryStatus.PENDING not in states:
                break
            if time.monotonic() > deadline:
                return failed(
                    "webhook", f"{len(deliveries)} deliveries to {self.url}, not all settled in {timeout:g}s"
                )
            time.sleep(1)
        dead = [d for d in deliveries if d.get("status") == DeliveryStatus.DEAD]
        if dead:
            d = dead[0]
            return failed(
                "webhook", f"{len(dead)} dead: {d.get('lastStatusCode')} {d.get('lastError', '')}".strip()
            )
        return passed("webhook", f"{len(deliveries)} deliveries to {self.url}, all delivered")

    def close(self) -> None:
        if self.webhook_id:
            # a failure leaves it listed by GET /api/v1/webhooks (description "dagcast verify")
            with contextlib.suppress(CliError):
                self.api.request("DELETE", f"/api/v1/webhooks/{self.webhook_id}")


def webhook_skipped() -> Result:
    return skipped("webhook", "no --webhook-url: name a receiver you can watch to check delivery")


def eventbridge_skipped() -> Result:
    return skipped("eventbridge", "the stage's DAGCAST_EVENT_BUS is empty: EventBridge is off")
