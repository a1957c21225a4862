"""``{{N}}`` templates: any string in a task's params may name an ancestor task's result."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

TEMPLATE_REF = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def render_template(text: str, results: Mapping[int, Any]) -> str:
    """Replace ``{{N}}`` by task N's result (strings as-is, anything else as JSON)."""

    def sub(match: re.Match[str]) -> str:
        value = results[int(match.group(1))]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return TEMPLATE_REF.sub(sub, text)


def render_value(value: Any, results: Mapping[int, Any]) -> Any:
    """``value`` with every string in it rendered (dict keys untouched)."""
    if isinstance(value, str):
        return render_template(value, results)
    if isinstance(value, dict):
        return {k: render_value(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, results) for v in value]
    return value


def template_refs(text: str) -> list[int]:
    return sorted({int(m) for m in TEMPLATE_REF.findall(text)})


def refs_in_value(value: Any) -> list[tuple[str, int]]:
    """(path inside value, referenced task id) for every ``{{N}}`` in every string of ``value``."""
    out: list[tuple[str, int]] = []

    def walk(v: Any, path: str) -> None:
        if isinstance(v, str):
            out.extend((path, ref) for ref in template_refs(v))
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    walk(value, "")
    return out
