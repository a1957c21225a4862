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


# Gates between tasks of one job, by key: a task that must not end before another has started
# waits on the other's signal instead of racing it (the stack runs task Lambdas in this process).
_started: dict[str, threading.Event] = {}


def _gate(key: str) -> threading.Event:
    with _lock:
        return _started.setdefault(key, threading.Event())


@register_function("tests.started_then_sleep")
def started_then_sleep(inputs: dict[int, Any], key: str, seconds: float) -> str:
    """Signals ``key`` as it starts, then sleeps: a task known to be running."""
    _gate(key).set()
    threading.Event().wait(seconds)
    return f"slept {seconds:g}s"


@register_function("tests.held")
def held(inputs: dict[int, Any], key: str, seconds: float) -> str:
    """Runs until ``let_go(key)`` (at most ``seconds``): a task that stays running for as long as a
    test needs it, and ends as soon as the test is done with it (a cancelled execution's Lambda
    still runs to its end, which the test then waits for)."""
    _gate(f"held:{key}").wait(seconds)
    return "let go"


def let_go(key: str) -> None:
    _gate(f"held:{key}").set()


@register_function("tests.fail_once_started")
def fail_once_started(inputs: dict[int, Any], key: str, message: str) -> str:
    """Fails with ``message`` once ``key`` has started (at most 60 s later)."""
    if not _gate(key).wait(60):
        raise TaskFailed(f"{key} never started")
    raise TaskFailed(message)


def double(inputs: dict[int, Any], value: int) -> int:
    """Not registered: reachable only as ``tests.support.plugins:double`` when DAGCAST_PYTHON_MODULES allows."""
    return value * 2


@register_function("tests.big_text")
def big_text(inputs: dict[int, Any], pattern: str, repeat: int) -> str:
    """A result of ``pattern`` repeated: megabytes of CJK, emoji or quotes without a megabyte job."""
    return pattern * repeat


@register_function("tests.fail_at_length")
def fail_at_length(inputs: dict[int, Any], pattern: str, repeat: int) -> str:
    """Fails with an error of ``pattern`` repeated: errors, unlike results, have no size limit."""
    raise TaskFailed(pattern * repeat)


@register_function("tests.return_args")
def return_args(inputs: dict[int, Any], **args: Any) -> dict[str, Any]:
    """Its args back, as its result: what a python task returns reaches events and the table."""
    return args


@register_function("tests.raise_args")
def raise_args(inputs: dict[int, Any], **args: Any) -> str:
    """Fails quoting its args as name=value: what a python task raises reaches its error."""
    raise TaskFailed("refused: " + "&".join(f"{k}={v}" for k, v in args.items()))
