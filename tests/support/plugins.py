"""Python functions used by the tests' jobs (the ``python`` kind), registered like a user would."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from chalicelib.kinds import TaskFailed, register_function

calls: Counter[str] = Counter()
_lock = threading.Lock()


@register_function("tests.sum_inputs")
def sum_inputs(inputs: dict[int, Any], offset: int = 0) -> int:
    return offset + sum(int(v) for v in inputs.values())


@register_function("tests.flaky")
def flaky(inputs: dict[int, Any], key: str, failures: int) -> str:
    """Fails ``failures`` times for ``key``, then succeeds: retries are visible and exact."""
    with _lock:
        calls[key] += 1
        n = calls[key]
    if n <= failures:
        raise TaskFailed(f"attempt {n} of {key} failed")
    return f"{key} succeeded on call {n}"


def double(inputs: dict[int, Any], value: int) -> int:
    """Not registered: reachable only as ``tests.support.plugins:double`` when DAGCAST_PYTHON_MODULES allows."""
    return value * 2
