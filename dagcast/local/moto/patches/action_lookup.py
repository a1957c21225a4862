"""Patches ``moto.core.responses.method_names_from_class``: a response class's methods are listed
once, not on every request.

To find the method serving a request, moto's ``BaseResponse.call_action`` lists the response
class's functions with ``inspect.getmembers`` on *every* request — hundreds of members, about
0.4 ms of each in-process DynamoDB call (a tenth of it). A class's methods do not change while the
stack runs (dagcast patches backends, not response classes), so the patch lists each class's once;
``call_action`` only asks whether the action is among them.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core import responses as core_responses
from moto.core import utils as core_utils


@functools.lru_cache(maxsize=256)
def _method_names(clazz: Any) -> frozenset[str]:
    return frozenset(core_utils.method_names_from_class(clazz))


def _listed_once(clazz: object) -> frozenset[str]:
    return _method_names(clazz)


def list_actions_once() -> None:
    if core_responses.__dict__.get("method_names_from_class") is not _listed_once:
        setattr(core_responses, "method_names_from_class", _listed_once)  # noqa: B010
