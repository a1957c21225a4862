"""How much of a task's result an event or a view carries: the result, or the start of its JSON
and a link to the whole."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

# The most of a result's JSON (in characters) an event, a task view or the snapshot carries: v1's
# promise. A stage may cut events shorter (Settings.event_preview_chars) so a stream reads small;
# views keep this length, and the whole result is always at resultUrl.
RESULT_PREVIEW_CHARS: Final = 16_384
MIN_EVENT_PREVIEW_CHARS: Final = 256


def preview(result_json: str, url: str, limit: int = RESULT_PREVIEW_CHARS) -> dict[str, Any]:
    """The ``result`` fields of an event or a task view: the result, or its first ``limit``
    characters of JSON and a link."""
    if len(result_json) <= limit:
        return {"result": json.loads(result_json)}
    return {
        "result": result_json[:limit],
        "resultTruncated": True,
        "resultBytes": len(result_json.encode()),
        "resultUrl": url,
    }


def cut_preview(shown: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A stored cut preview (``preview`` at RESULT_PREVIEW_CHARS) cut again to ``limit``; a whole
    result is left to ``preview`` (the caller holds its JSON)."""
    if shown.get("resultTruncated") and len(shown["result"]) > limit:
        return {**shown, "result": shown["result"][:limit]}
    return dict(shown)
