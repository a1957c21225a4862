"""The wire: SSE framing byte for byte, and how a model becomes the JSON dict that is sent."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from chalicelib.domain import wire
from chalicelib.domain.events import HEARTBEAT, SUBSTEP_COMPLETED, SUBSTEP_STARTED


def test_encode_simple_event():
    assert wire.encode_sse('{"a":1}', event=SUBSTEP_STARTED, id=3) == (
        b'event: substep.started\nid: 3\ndata: {"a":1}\n\n'
    )


def test_encode_retry_and_no_id():
    assert (
        wire.encode_sse("x", event=HEARTBEAT, retry_ms=2000) == b"event: heartbeat\nretry: 2000\ndata: x\n\n"
    )


def test_retry_only_message():
    assert wire.encode_retry(1500) == b"retry: 1500\n\n"


def test_multiline_data_becomes_several_data_fields_and_cr_is_normalised():
    assert wire.encode_sse("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_unicode_is_utf8():
    assert wire.encode_sse("é→") == "data: é→\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_event_name_and_id_must_be_single_line(bad):
    with pytest.raises(ValueError):
        wire.encode_sse("x", event=bad)
    with pytest.raises(ValueError):
        wire.encode_sse("x", id=bad)


def test_json_payload_never_spans_lines():
    payload = wire.dumps({"result": "line1\nline2"})
    assert wire.encode_sse(payload).count(b"\n") == 2


def test_large_payload_is_one_data_line_and_round_trips():
    payload = {"result": "x" * 300_000 + "\n" + "é" * 1000, "n": list(range(1000))}
    frame = wire.encode_sse(wire.dumps(payload), event=SUBSTEP_COMPLETED, id=42)
    lines = frame.decode().split("\n")
    assert lines[:2] == ["event: substep.completed", "id: 42"]
    assert lines[2].startswith("data: ") and lines[3:] == ["", ""]
    assert json.loads(lines[2][6:]) == payload


def test_encode_event_uses_type_and_seq():
    encoded = wire.encode_event({"type": SUBSTEP_STARTED, "seq": 7, "taskId": 1})
    assert encoded.seq == 7 and encoded.type == SUBSTEP_STARTED
    assert encoded.frame.startswith(b"event: substep.started\nid: 7\ndata: {")


# ------------------------------------------------------------------------------------ WireModel


class Sample(wire.WireModel):
    kind: Literal["sample"] = "sample"
    count: int
    value: object = None
    note: wire.Sometimes[str] = None
    seq: wire.SetByStore[int] = None


def test_a_field_not_set_is_left_out_and_a_sometimes_field_set_to_none_too():
    assert wire.dumps(Sample(count=1).wire()) == '{"kind":"sample","count":1}'
    assert wire.dumps(Sample(count=1, note=None, seq=None).wire()) == '{"kind":"sample","count":1}'


def test_a_value_field_keeps_its_null_and_fields_keep_their_declared_order():
    made = Sample(seq=4, note="n", value=None, count=2).wire()
    assert wire.dumps(made) == '{"kind":"sample","count":2,"value":null,"note":"n","seq":4}'


def test_the_schema_says_what_the_wire_holds():
    schema = Sample.model_json_schema()
    # Required: the constant, what has no default, and what the store always adds.
    assert schema["required"] == ["kind", "count", "seq"]
    # Sometimes absent, never null; no defaults (there is no such thing on the wire).
    assert schema["properties"]["note"] == {"type": "string"}
    assert schema["properties"]["seq"] == {"type": "integer"}
    assert schema["properties"]["value"] == {}
    assert schema["properties"]["kind"] == {"const": "sample", "type": "string"}
