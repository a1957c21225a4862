"""Patches ``moto.stepfunctions.models.StateMachine.__deepcopy__``: copy a state machine without its
executions.

moto's StartExecution deep-copies the state machine *with every execution it ever ran*. A running
execution holds locks, so a second StartExecution on a state machine that has one running fails
with "cannot pickle '_thread.RLock' object", and each copy grows with the history. A new
execution needs the definition, not the history: the copy is given no executions. The original
state machine keeps all of them (DescribeExecution, ListExecutions answer as before).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.stepfunctions import models as sfn_models


def _copy_without_executions(self: Any, memo: dict[int, Any]) -> Any:
    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        setattr(clone, key, [] if key == "executions" else copy.deepcopy(value, memo))
    return clone


def fix_state_machine_copy() -> None:
    setattr(sfn_models.StateMachine, "__deepcopy__", _copy_without_executions)  # noqa: B010
