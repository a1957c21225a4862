"""docs/events.schema.json: what the event models say, and what every event sent validates against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # (dev tree: aws-sam-translator's dependency)
import pytest

from chalicelib.domain import events as ev
from chalicelib.domain import schema
from chalicelib.domain.events import EXECUTION_UPDATED, EventType
from tests.support.wire_samples import EID, SNAPSHOT_JSON, WIRE

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_is_what_the_models_generate():
    committed = (ROOT / schema.SCHEMA_PATH).read_text()
    assert committed == schema.render(), (
        f"{schema.SCHEMA_PATH} differs from the event models in chalicelib/domain/events.py: "
        "run make schema and commit the result"
    )


@pytest.fixture(scope="module")
def validator() -> Any:
    published = json.loads((ROOT / schema.SCHEMA_PATH).read_text())
    jsonschema.Draft202012Validator.check_schema(published)
    return jsonschema.Draft202012Validator(published)


def test_every_event_type_is_in_it_and_the_snapshot_too():
    published = schema.event_schema()
    kinds = [
        published["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"]
        for ref in published["oneOf"]
    ]
    assert sorted(kinds) == sorted([*EventType, EXECUTION_UPDATED])


@pytest.mark.parametrize("case", [c for c in WIRE if c[0] != ev.HEARTBEAT], ids=" ".join)
def test_every_stored_event_is_exactly_one_of_its_schemas(validator, case):
    stored = json.loads(json.dumps({**WIRE[case][0](), "executionId": EID, "timestamp": 1, "seq": 2}))
    validator.validate(stored)
    # Without what the store adds, it is not an event a client gets.
    assert not validator.is_valid({k: v for k, v in stored.items() if k != "seq"})


def test_the_heartbeat_and_the_snapshot_validate(validator):
    validator.validate(json.loads(json.dumps(ev.heartbeat(EID, 1))))
    validator.validate(json.loads(SNAPSHOT_JSON))


def test_a_field_left_out_is_never_null_and_an_unknown_field_is_allowed(validator):
    failed = {**ev.substep_failed(1, "x"), "executionId": EID, "timestamp": 1, "seq": 2}
    assert not validator.is_valid({**failed, "attempt": None})
    # Clients ignore fields they do not know (docs/compatibility.md): the schema does not close them.
    validator.validate({**failed, "progress": 0.5})
