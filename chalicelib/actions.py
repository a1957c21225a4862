"""What each task action does. One function per action, registered in ACTIONS.

An action receives the task item (``params`` decoded) and the results of the tasks its templates
refer to, and returns a JSON-serialisable result or raises TaskFailed. Anything else it raises is
reported as a failure of the task too (with the exception's type), never as a crash of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .dag import render_template


class TaskFailed(Exception):
    """The task ran and failed; the message is shown to users as the task's error."""


def _sleep(params: Mapping[str, Any], results: Mapping[int, Any]) -> Any:
    seconds = float(params["seconds"])
    time.sleep(seconds)
    return f"slept {seconds:g}s"


def _echo(params: Mapping[str, Any], results: Mapping[int, Any]) -> Any:
    return render_template(str(params["text"]), results)


def _fail(params: Mapping[str, Any], results: Mapping[int, Any]) -> Any:
    raise TaskFailed(str(params.get("message", "task failed")))


Action = Callable[[Mapping[str, Any], Mapping[int, Any]], Any]
ACTIONS: dict[str, Action] = {"sleep": _sleep, "echo": _echo, "fail": _fail}


def run_action(action: str, params: Mapping[str, Any], results: Mapping[int, Any]) -> Any:
    try:
        fn = ACTIONS[action]
    except KeyError:
        raise TaskFailed(f"unknown action {action!r}") from None
    return fn(params, results)
