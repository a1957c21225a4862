"""docs/events.schema.json: the JSON Schema of every event, generated from the models in ``events``.

``python -m chalicelib.domain.schema > docs/events.schema.json`` (``make schema``) rewrites it;
tests/unit/test_event_schema.py fails when the committed file differs from what the models say.
Typed clients are generated from this file; docs/compatibility.md says how it may change.
"""

from __future__ import annotations

import json
from typing import Any

from .events import EVENTS

SCHEMA_PATH = "docs/events.schema.json"  # from the repository's root


def event_schema() -> dict[str, Any]:
    """One of the event models, told apart by ``type`` (and ``snapshot`` for the SSE snapshot)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dagcast event",
        "description": (
            "One event as stored, streamed over SSE and delivered to webhooks: exactly one of the "
            "schemas below, told apart by `type` (`execution.updated` with `snapshot: true` is the "
            "SSE snapshot). Generated from chalicelib/domain/events.py by `make schema`. Clients "
            "ignore event types and fields they do not know (docs/compatibility.md)."
        ),
        **EVENTS.json_schema(),
    }


def render() -> str:
    """The file's text: keys in the models' order, two-space indents, a final newline."""
    return json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
