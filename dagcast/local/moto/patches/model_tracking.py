"""Patches ``moto.core.common_models.BaseModel.__new__``: moto stops keeping every object it made.

moto's ``BaseModel.__new__`` appends every model object it creates to a list on its class
(``instances_tracked``, for the moto server's dashboard, /moto-api/data.json), so nothing moto
makes is ever freed: every superseded version of an updated DynamoDB item (each UpdateItem makes
a new ``Item``), every shard iterator. Without the patch, 78% of the ``Item`` objects alive after
30 executions are such garbage. The patch creates model objects without tracking them; the
dashboard, which dagcast does not use, then lists nothing.
"""

from __future__ import annotations

from typing import Any

from moto.core import common_models, model_instances


def untracked_models() -> None:
    base = common_models.BaseModel
    if getattr(base, "_dagcast_untracked", False):
        return

    def new(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return super(base, cls).__new__(cls)  # moto's __new__, without instances_tracked.append

    setattr(base, "__new__", staticmethod(new))  # noqa: B010
    for models in model_instances.model_data.values():  # and drop what was tracked so far
        for model in models.values():
            model.instances_tracked = []  # type: ignore[attr-defined]
    setattr(base, "_dagcast_untracked", True)  # noqa: B010
