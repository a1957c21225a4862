"""What a read costs in RCU, by DynamoDB's billing rules (chalicelib/persistence/capacity.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.persistence.capacity import (
    ReadMeter,
    index_entry,
    index_write_units,
    item_size,
    read_units,
    table_write_units,
    value_size,
    write_units,
)
from chalicelib.persistence.keys import event_sk, pk
from chalicelib.persistence.table import to_item


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "é"}, 2),  # UTF-8 bytes, not characters
        ({"S": "€"}, 3),
        ({"N": "7"}, 2),  # 1 byte per two significant digits, + 1
        ({"N": "12"}, 2),
        ({"N": "123"}, 3),
        ({"N": "1000"}, 2),  # trailing zeroes trimmed
        ({"N": "-0.0012"}, 2),  # sign, point and leading zeroes too
        ({"N": "0"}, 2),
        ({"B": b"\x00\x01\x02"}, 3),
        ({"BOOL": True}, 1),
        ({"NULL": True}, 1),
        ({"SS": ["ab", "c"]}, 3),
        ({"NS": ["1", "123"]}, 5),
        ({"L": []}, 3),
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (2 + 1) + (2 + 1)),  # 3 + elements + 1 byte each
        ({"M": {"k": {"S": "ab"}}}, 3 + 1 + 2 + 1),  # nested names count
    ],
)
def test_the_size_of_a_value(value, size):
    assert value_size(value) == size


def test_an_item_is_the_sum_of_its_names_and_values():
    assert item_size({"PK": {"S": "EXEC#x"}, "seq": {"N": "12"}}) == 2 + 6 + 3 + 2


def test_an_unknown_type_is_refused():
    with pytest.raises(ValueError):
        value_size({"X": 1})


@pytest.mark.parametrize(
    ("sizes", "consistent", "per_item", "units"),
    [
        ([], True, False, 1.0),  # a read of nothing is still one unit
        ([], False, False, 0.5),
        ([4096], True, False, 1.0),
        ([4097], True, False, 2.0),
        ([4097], False, False, 1.0),
        ([1000, 1000, 1000, 1000], False, False, 0.5),  # a Query rounds the total once
        ([1000, 1000, 1000, 1097], False, False, 1.0),
        ([1536, 6656], True, True, 3.0),  # BatchGetItem: each item rounded (4 KB + 8 KB)
        ([1536, 6656], True, False, 2.0),  # the same items in one Query: 8 KB
        ([16_500], True, False, 5.0),
        ([16_500], False, False, 2.5),
    ],
)
def test_read_units(sizes, consistent, per_item, units):
    assert read_units(sizes, consistent, per_item) == units


def _event_item(data_chars: int) -> dict[str, Any]:
    """An EVT# item as the event log stores it, its data padded to ``data_chars`` characters."""
    body = {"type": "substep.completed", "seq": 12, "preview": ""}
    body["preview"] = "x" * (data_chars - len(json.dumps(body)))
    return to_item(
        {
            "PK": pk("dag-exec_0123456789abcdef"),
            "SK": event_sk(12),
            "seq": 12,
            "type": "substep.completed",
            "idemKey": "substep.completed#3",
            "data": json.dumps(body),
        }
    )


def test_an_event_item_costs_its_data_plus_about_a_hundred_bytes():
    # what docs/sse.md says an event item holds beyond `data`: keys, seq, type, idemKey
    overhead = item_size(_event_item(1000)) - 1000 - len("data")
    assert overhead == 2 + 30 + 2 + 16 + 3 + 2 + 4 + 17 + 7 + 19 == 102


def test_an_event_with_a_full_preview_costs_five_units_consistent_and_half_that_eventual():
    item = _event_item(16_384 + 300)  # a 16,384-character preview and the rest of the event
    assert read_units([item_size(item)], consistent=True) == 5.0
    assert read_units([item_size(item)], consistent=False) == 2.5


def _meter_call(meter: ReadMeter, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
    """What botocore does around one call: the params hook, then the after-call hook."""
    context: dict[str, Any] = {}
    meter._ask(params=params, context=context)
    meter._answered(parsed=parsed, model=SimpleNamespace(name=operation), context=context)


def test_the_meter_asks_for_the_consumed_capacity_and_counts_both_figures():
    meter = ReadMeter()
    params: dict[str, Any] = {"TableName": "t", "ConsistentRead": False}
    small = _event_item(500)
    _meter_call(meter, "Query", params, {"Items": [small, small], "ConsumedCapacity": {"CapacityUnits": 1.0}})
    assert params["ReturnConsumedCapacity"] == "TOTAL"
    _meter_call(meter, "GetItem", {"ConsistentRead": True}, {"Item": small})
    stats = meter.stats()
    assert stats["eventualReads"] == 1 and stats["consistentReads"] == 1 and stats["items"] == 3
    assert stats["rcuEventual"] == 0.5 and stats["rcuConsistent"] == 1.0 and stats["rcu"] == 1.5
    assert stats["rcuReported"] == 1.0 and stats["unreportedReads"] == 1  # moto's constant; none for one


def test_a_batch_get_is_consistent_only_if_every_table_read_is_and_each_item_is_rounded():
    meter = ReadMeter()
    params = {"RequestItems": {"t": {"Keys": [], "ConsistentRead": True}}}
    item = _event_item(100)
    _meter_call(meter, "BatchGetItem", params, {"Responses": {"t": [item, item]}, "ConsumedCapacity": []})
    assert meter.stats()["rcuConsistent"] == 2.0


def test_a_refused_read_is_not_counted():
    meter = ReadMeter()
    _meter_call(meter, "Query", {}, {"Error": {"Code": "ThrottlingException"}})
    assert meter.stats()["reads"] == 0


# ---------------------------------------------------------------------------------- writes

_KEYS = ["PK", "SK"]
_LIST = {
    "IndexName": "L",
    "KeySchema": [{"AttributeName": "lp", "KeyType": "HASH"}, {"AttributeName": "ls", "KeyType": "RANGE"}],
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
}
_ALL = {**_LIST, "Projection": {"ProjectionType": "ALL"}}


def _meta(**extra: Any) -> dict[str, Any]:
    return to_item(
        {"PK": "EXEC#x", "SK": "META", "lp": "EXECS#default#03", "ls": "1#x", "status": "running", **extra}
    )


def test_a_write_costs_the_larger_image_in_kilobyte_units_and_at_least_one():
    assert write_units(0) == 1 and write_units(1024) == 1 and write_units(1025) == 2
    small, big = _meta(), _meta(originalRequest="r" * 100_000)
    assert table_write_units(None, small) == 1
    assert table_write_units(big, big) == 98  # an update of a 100,000-byte item: 98 KB, whatever changed
    assert table_write_units(big, None) == 98  # a delete, or a failed condition
    assert table_write_units(small, small, transactional=True) == 2


def test_an_index_is_written_only_when_what_it_holds_changes():
    before = _meta(completed={1})
    counted = _meta(completed={1, 2}, originalRequest="r" * 5_000)
    assert index_write_units(before, counted, _LIST, _KEYS) == 0  # no key, no projected attribute
    assert index_write_units(before, counted, _ALL, _KEYS) == 5  # ALL: the whole item (5,09x bytes)
    finished = _meta(completed={1}, status="completed")
    assert index_write_units(before, finished, _LIST, _KEYS) == 1  # a projected attribute
    moved = {**before, "lp": {"S": "EXECS#default#04"}}
    assert index_write_units(before, moved, _LIST, _KEYS) == 2  # a key: a delete and a put
    assert index_write_units(None, before, _LIST, _KEYS) == 1  # enters
    bare = {k: v for k, v in before.items() if k not in ("lp", "ls")}
    assert index_write_units(before, bare, _LIST, _KEYS) == 1  # leaves
    assert index_write_units(bare, bare, _LIST, _KEYS) == 0  # never in it (sparse)


def test_an_index_entry_holds_keys_and_projected_attributes_only():
    entry = index_entry(_meta(completed={1}), _LIST, _KEYS)
    assert entry is not None and set(entry) == {"PK", "SK", "lp", "ls", "status"}


def test_a_transactions_condition_check_is_metered_as_a_write_of_the_item_it_checks():
    """Issue 20: queued appends check the append lease inside their transaction; DynamoDB bills a
    ConditionCheck like a transactional write of that item, so the meter must count it."""
    from chalicelib.persistence.capacity import _keys_of

    key = {"PK": {"S": "QUEUE#e"}, "SK": {"S": "LEASE"}}
    put = {"PK": {"S": "EXEC#e"}, "SK": {"S": "EVT~Q#1"}, "payload": {"S": "x"}}
    params = {
        "TransactItems": [
            {"Put": {"TableName": "t", "Item": put}},
            {"ConditionCheck": {"TableName": "t", "Key": key, "ConditionExpression": "attribute_exists(PK)"}},
        ]
    }
    touched = _keys_of("TransactWriteItems", params, ["PK", "SK"])
    assert touched == [({"PK": put["PK"], "SK": put["SK"]}, True), (key, True)]
