"""substep.progress reaches a webhook only when its ``types`` name it, and EventBridge only when the
stage turns it on: no wildcard and no "every type" includes it."""

from __future__ import annotations

from typing import Any

from chalicelib.domain import typefilter
from chalicelib.fanout import FanOut
from chalicelib.webhooks.models import Hook

PROGRESS = {"type": "substep.progress", "executionId": "e", "timestamp": 2, "seq": 3, "taskId": 1}
STARTED = {**PROGRESS, "type": "substep.started"}


def _hook(types: list[str] | None) -> Hook:
    return Hook("h", "https://x", typefilter.TypeFilter.of(types) if types else None, None, b"", 1)


def test_a_webhook_gets_progress_only_when_its_types_name_it():
    assert not _hook(None).matches(PROGRESS) and _hook(None).matches(STARTED)
    assert not _hook(["substep.*"]).matches(PROGRESS) and _hook(["substep.*"]).matches(STARTED)
    assert _hook(["substep.progress"]).matches(PROGRESS)
    assert typefilter.TypeFilter.of(["substep.progress", "execution.*"]).matches("substep.progress")


class Bus:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent += [e["DetailType"] for e in Entries]
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


def _records() -> dict[str, Any]:
    import json

    def record(event: dict[str, Any]) -> dict[str, Any]:
        keys = {"PK": {"S": "EXEC#e"}, "SK": {"S": f"EVT#{event['seq']:012d}"}}
        image = {**keys, "data": {"S": json.dumps(event)}}
        return {
            "eventID": str(event["seq"]),
            "eventName": "INSERT",
            "dynamodb": {"Keys": keys, "NewImage": image},
        }

    return {"Records": [record({**STARTED, "seq": 2}), record(PROGRESS)]}


def test_eventbridge_gets_progress_only_when_the_stage_turns_it_on():
    quiet, noisy = Bus(), Bus()
    FanOut(None, None, quiet, "bus", 0).handle(_records(), None)  # type: ignore[arg-type]
    FanOut(None, None, noisy, "bus", 0, publish_progress=True).handle(_records(), None)  # type: ignore[arg-type]
    assert quiet.sent == ["substep.started"]
    assert noisy.sent == ["substep.started", "substep.progress"]
