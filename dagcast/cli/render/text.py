"""The small words every view writes values in: durations, shortened values, lists of task ids.

Pure string functions, so the live view, the plain lines and the tables say "1.26s" and cut a long
result the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def duration(ms: float | None) -> str:
    """340ms, 1.26s, 12.3s, 2m05s, 1h02m."""
    if ms is None:
        return ""
    ms = max(0.0, float(ms))
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f}s"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = int(ms // 1000)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def short(value: Any, limit: int = 80) -> str:
    """One line: strings as they are, anything else as JSON; newlines shown as ⏎; cut with …."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\r\n", "\n").replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ids(values: Iterable[int]) -> str:
    return ", ".join(str(v) for v in values)
