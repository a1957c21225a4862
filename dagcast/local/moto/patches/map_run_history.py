"""Patches ``DistributedIterationComponent._map_run``: keep the history of a Distributed Map's items.

moto runs a Distributed Map's items in the parent's process, as frames that write their history
events (the child executions' ``TaskStateEntered``, ``ChoiceStateEntered``…) to a fresh
``EventManager`` it then drops: GetExecutionHistory of the parent shows ``MapRunStarted`` and
``MapRunSucceeded`` and nothing of the items, and there are no child executions to ask. The cost
model (bench/transitions.py) counts the states each item enters, so this keeps that manager, keyed
by the parent execution's ARN (the last ``_KEEP`` parents: the local stack runs for hours).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
    distributed_iteration_component as dic,
)

_KEEP = 64
_managers: OrderedDict[str, list[Any]] = OrderedDict()
_lock = threading.Lock()
_ORIGINAL = "_dagcast_original_map_run"


def _map_run_keeping_history(self: Any, env: Any, eval_input: Any) -> None:
    parent = str(env.states.context_object.context_object_data["Execution"]["Id"])
    with _lock:
        _managers.setdefault(parent, []).append(env.event_manager)
        _managers.move_to_end(parent)
        while len(_managers) > _KEEP:
            _managers.popitem(last=False)
    getattr(dic.DistributedIterationComponent, _ORIGINAL)(self, env, eval_input)


def map_run_history(execution_arn: str) -> list[dict[str, Any]]:
    """The history events of every item of the execution's Distributed Map runs, in the order they
    were written (items interleave: they run concurrently)."""
    with _lock:
        managers = list(_managers.get(execution_arn, []))
    return [dict(e) for m in managers for e in m.get_event_history()]


def keep_map_run_history() -> None:
    cls = dic.DistributedIterationComponent
    if not hasattr(cls, _ORIGINAL):
        setattr(cls, _ORIGINAL, cls._map_run)
        setattr(cls, "_map_run", _map_run_keeping_history)  # noqa: B010
