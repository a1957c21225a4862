"""Pins the patch of dagcast/local/moto/patches/value_copies.py
(``moto.dynamodb.models.dynamo_type.DynamoType.to_regular_json``)."""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.persistence.table import to_item


def test_nested_values_convert_as_moto_converts_them_without_copying_them_again_per_level(stack, monkeypatch):
    """copy_values_once: moto deep-copied a map or list, then each element's conversion deep-copied
    it again — a value ``d`` deep copied ``d`` times, on every stream record of every write. The
    patched conversion answers what moto's answers (maps, lists, sets, binary decoded, numbers,
    nulls, at depth), copies nothing with ``copy.deepcopy`` for such values, and its answer is
    the caller's own (changing it leaves the item as it was)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    assert getattr(DynamoType, "_dagcast_copied_once", False), "copy_values_once was not applied"
    original = DynamoType._dagcast_original_to_regular_json  # type: ignore[attr-defined]
    item = to_item({"PK": "p", "SK": "s", "l": ["x", 2, None, False, {"k": ["v"]}], "ss": {"a", "b"}})
    item["m"] = {
        "M": {
            "b": {"B": b"\x00\xffhi"},
            "bs": {"BS": [b"a", b"b"]},
            "ns": {"NS": ["1", "2.5"]},
            "deep": {"M": {"l": {"L": [{"M": {"k": {"S": "v"}, "n": {"N": "3"}}}, {"L": [{"NULL": True}]}]}}},
        }
    }
    values = [DynamoType(v) for v in item.values()]
    assert [v.to_regular_json() for v in values] == [original(v) for v in values]

    deep_copies: list[Any] = []
    real_deepcopy = copy.deepcopy

    def counting(value: Any, *args: Any) -> Any:
        deep_copies.append(value)
        return real_deepcopy(value, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    nested = DynamoType(item["m"])
    converted = nested.to_regular_json()
    assert deep_copies == []
    converted["M"]["deep"]["M"]["l"]["L"][0]["M"]["k"]["S"] = "changed"
    assert nested.to_regular_json() == original(nested)
    assert original(nested)["M"]["deep"]["M"]["l"]["L"][0]["M"]["k"] == {"S": "v"}
