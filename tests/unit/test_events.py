"""Events: the builders' JSON byte for byte, the models it is made by, and the counters.

What is stored and sent must not change when the code that builds it does: ``WIRE`` holds every
builder's JSON as it was written before the builders went through the models (key order, absent vs
null), and each event type's model must dump exactly that. The events the trace tests (and their
text snapshots) are made of are checked against the models and the published schema too.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.domain import events as ev
from chalicelib.domain import previews
from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_FAILED,
    EXECUTION_UPDATED,
    HEARTBEAT,
    SUBSTEP_COMPLETED,
    SUBSTEP_FAILED,
    SUBSTEP_STARTED,
    SUBSTEP_WAITING,
    EventType,
)
from chalicelib.domain.wire import WireModel, dumps
from tests.support.wire_samples import CUT, EID, META, SNAPSHOT_JSON, WIRE


def test_counters_from_sets():
    meta = {"totalTasks": 5, "status": "running", "completed": {1, 2}, "failed": {3}, "running": {4}}
    assert ev.execution_updated(meta) == {
        "type": "execution.updated",
        "status": "running",
        "totalTasks": 5,
        "completedTasks": 2,
        "failedTasks": 1,
        "runningTasks": 1,
        "skippedTasks": 0,
        "waitingTasks": 1,
    }


def test_substep_payloads_use_the_field_names_of_the_system_we_replace():
    assert ev.substep_started(1, "d") == {
        "type": "substep.started",
        "subStepId": "1",
        "taskId": 1,
        "description": "d",
        "attempt": 1,
    }
    failed = ev.substep_failed(4, "upstream task 2 failed", upstream=[2])
    assert failed["reason"] == "upstream" and failed["upstreamTaskIds"] == [2]


def test_a_cancelled_executions_snapshot_shows_tasks_that_will_never_run_as_cancelled():
    from chalicelib.orchestration.views import build_snapshot

    meta = {
        "executionId": "dag-exec_x",
        "status": "cancelled",
        "createdAt": 1,
        "totalTasks": 4,
        "completed": {1},
        "running": {2},
    }
    tasks = [
        {"taskId": 1, "action": "echo", "status": "completed"},
        {"taskId": 2, "action": "sleep", "status": "running"},
        {"taskId": 3, "action": "echo", "status": "waiting"},
        {"taskId": 4, "action": "echo", "status": "retrying", "attempt": 2},
    ]
    snap = build_snapshot(meta, tasks, 9)
    assert [t["status"] for t in snap["tasks"]] == ["completed", "running", "cancelled", "cancelled"]
    assert snap["tasks"][2]["error"] == "not run: the execution was cancelled"
    counts = {k: snap[k] for k in ("completedTasks", "runningTasks", "skippedTasks", "waitingTasks")}
    assert counts == {"completedTasks": 1, "runningTasks": 1, "skippedTasks": 2, "waitingTasks": 0}
    running = build_snapshot({**meta, "status": "running"}, tasks, 9)
    assert [t["status"] for t in running["tasks"]][2:] == ["waiting", "retrying"]


# ------------------------------------------------------------------ the builders' JSON, byte for byte


@pytest.mark.parametrize("case", WIRE, ids=" ".join)
def test_every_builder_writes_the_same_json_as_stored_and_sent_before(case):
    build, wire = WIRE[case]
    assert dumps(build()) == wire


MODEL_OF: dict[EventType, type[WireModel]] = {
    EXECUTION_CREATED: ev.ExecutionCreated,
    EXECUTION_UPDATED: ev.ExecutionUpdated,
    EXECUTION_COMPLETED: ev.ExecutionCompleted,
    EXECUTION_FAILED: ev.ExecutionFailed,
    SUBSTEP_STARTED: ev.SubstepStarted,
    SUBSTEP_COMPLETED: ev.SubstepCompleted,
    SUBSTEP_FAILED: ev.SubstepFailed,
    EventType.SUBSTEP_PROGRESS: ev.SubstepProgress,
    SUBSTEP_WAITING: ev.SubstepWaiting,
    HEARTBEAT: ev.Heartbeat,
}


def assert_sent_as_modelled(event: Mapping[str, Any]) -> None:
    """``event`` is one the models send: every field known and of its type, nothing coerced or null
    that is absent on the wire (validated, then dumped back, it is the same)."""
    model = ev.parse_event(event)
    assert model.wire() == event, f"{event.get('type')}: the model dumps {model.wire()}"


def test_every_event_type_has_a_model_and_a_builder_case():
    assert set(MODEL_OF) == set(EventType) == {t for t, _ in WIRE}
    assert all(model.model_fields["type"].default == t for t, model in MODEL_OF.items())


@pytest.mark.parametrize("case", WIRE, ids=" ".join)
def test_the_builders_json_is_its_models_dump(case):
    built = WIRE[case][0]()
    model = ev.parse_event(built)
    assert type(model) is MODEL_OF[case[0]]
    assert dumps(model.wire()) == dumps(built)


@pytest.mark.parametrize("case", [c for c in WIRE if c[0] != HEARTBEAT], ids=" ".join)
def test_an_event_as_stored_is_its_models_dump_byte_for_byte(case):
    # The store appends executionId, timestamp and seq, in this order (store._put_event).
    stored = {**WIRE[case][0](), "executionId": EID, "timestamp": 1_795_657_000_123, "seq": 3}
    assert dumps(ev.parse_event(stored).wire()) == dumps(stored)


def test_the_snapshot_is_its_models_dump_byte_for_byte():
    snapshot = json.loads(SNAPSHOT_JSON)
    model = ev.parse_event(snapshot)
    assert isinstance(model, ev.ExecutionSnapshot) and model.tasks[1].resultTruncated is True
    assert dumps(model.wire()) == SNAPSHOT_JSON


def test_a_cancelled_executions_snapshot_is_one_the_model_sends():
    snapshot = json.loads(SNAPSHOT_JSON)
    snapshot.update(status="cancelled", reason="cancelled", error="cancelled by request")
    # build_snapshot adds reason and error to a task that never ran after its other fields.
    snapshot["tasks"][1] = {
        **snapshot["tasks"][1],
        "status": "cancelled",
        "reason": "cancelled",
        "error": "x",
    }
    assert_sent_as_modelled(snapshot)


def test_a_progress_event_and_a_snapshot_are_told_apart_by_snapshot():
    progress = {**ev.execution_updated(META), "executionId": EID, "timestamp": 1, "seq": 2}
    assert type(ev.parse_event(progress)) is ev.ExecutionUpdated
    assert type(ev.parse_event(json.loads(SNAPSHOT_JSON))) is ev.ExecutionSnapshot
    with pytest.raises(ValidationError):  # a snapshot must carry the view and the tasks
        ev.parse_event({**progress, "snapshot": True})


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "substep.progress", "taskId": 1},  # a type this version does not know
        {**ev.substep_failed(1, "x"), "reason": "because"},  # a reason no task fails for
        {**ev.substep_started(1, "d"), "taskId": "one"},
        {k: v for k, v in ev.substep_started(1, "d").items() if k != "attempt"},
        {**ev.execution_failed(META, 1, "x"), "status": "running"},
    ],
)
def test_what_no_producer_sends_is_refused(bad):
    with pytest.raises(ValidationError):
        ev.parse_event(bad)


def test_a_field_sent_as_null_where_it_is_left_out_is_not_what_the_models_send():
    with pytest.raises(AssertionError):
        assert_sent_as_modelled({**ev.substep_failed(1, "x"), "attempt": None})
    with pytest.raises(AssertionError):  # a field no model has
        assert_sent_as_modelled({**ev.substep_started(1, "d"), "progress": 0.5})


def _first_parameters(test: Callable[..., Any]) -> dict[str, Any]:
    """A test's arguments from the first case of each of its parametrize marks."""
    args: dict[str, Any] = {}
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            names = [n.strip() for n in mark.args[0].split(",")]
            first = mark.args[1][0]
            args.update(zip(names, first if len(names) > 1 else [first], strict=True))
    return args


def test_every_event_the_trace_tests_and_their_snapshots_are_made_of_is_one_the_models_send(monkeypatch):
    from tests.unit import test_trace as trace_tests

    seen: list[dict[str, Any]] = []
    trace_model = vars(trace_tests)["TraceModel"]  # the class the trace tests feed, wherever it lives
    apply = trace_model.apply

    def recording(self: Any, message: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(copy.deepcopy(message))
        return apply(self, message, *args, **kwargs)

    monkeypatch.setattr(trace_model, "apply", recording)
    tests = [t for name, t in inspect.getmembers(trace_tests, inspect.isfunction) if name.startswith("test_")]
    for test in tests:
        test(**_first_parameters(test))
    assert len(tests) > 15 and len(seen) > 200
    assert {str(e["type"]) for e in seen} == set(EventType)
    for event in seen:
        assert_sent_as_modelled(event)


def test_a_shorter_event_preview_cuts_at_its_length_and_keeps_the_size_and_link():
    whole = json.dumps("é" * 2_000, ensure_ascii=False)  # 2,002 characters, 4,002 bytes
    cut = previews.preview(whole, "/r", limit=256)
    assert cut == {"result": whole[:256], "resultTruncated": True, "resultBytes": 4_002, "resultUrl": "/r"}
    assert previews.preview(whole, "/r", limit=2_002) == {"result": "é" * 2_000}  # at the limit: whole


def test_a_stored_preview_is_cut_again_only_when_longer_than_the_events_length():
    stored = previews.preview(CUT, "/r")  # cut at RESULT_PREVIEW_CHARS, as a task item keeps it
    assert len(stored["result"]) == previews.RESULT_PREVIEW_CHARS
    shorter = previews.cut_preview(stored, 1_024)
    assert shorter == {**stored, "result": CUT[:1_024]}
    assert previews.cut_preview(stored, previews.RESULT_PREVIEW_CHARS) == stored
    assert previews.cut_preview({"result": {"a": 1}}, 256) == {"result": {"a": 1}}  # whole results: untouched
