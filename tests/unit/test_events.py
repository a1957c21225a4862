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

META = {
    "totalTasks": 5,
    "status": "running",
    "completed": {1, 2},
    "failed": {3},
    "running": {4},
    "skipped": set(),
}
CUT = '"' + "x" * 20_000 + '"'  # a result whose JSON is over RESULT_PREVIEW_CHARS
CUT_FIELDS = '"' + "x" * 16_383 + '","{k}Truncated":true,"{k}Bytes":20002,"{k}Url":"/r"'

# Each builder, every optional field present and absent: key order, absent vs null, as stored before
# the builders went through the models. Keyed by (type, case).
WIRE: dict[tuple[EventType, str], tuple[Callable[[], ev.Event], str]] = {
    (EXECUTION_CREATED, ""): (
        lambda: ev.execution_created(3, "Write a report é\n"),
        '{"type":"execution.created","totalTasks":3,"originalRequest":"Write a report é\\n"}',
    ),
    (SUBSTEP_STARTED, ""): (
        lambda: ev.substep_started(7, "fetch", 2),
        '{"type":"substep.started","subStepId":"7","taskId":7,"description":"fetch","attempt":2}',
    ),
    (SUBSTEP_COMPLETED, ""): (
        lambda: ev.substep_completed(7, 120, previews.preview('{"a": [1, null]}', "/r"), attempt=2),
        '{"type":"substep.completed","subStepId":"7","taskId":7,"durationMs":120,"attempt":2,'
        '"result":{"a":[1,null]}}',
    ),
    (SUBSTEP_COMPLETED, "null"): (
        lambda: ev.substep_completed(7, 120, previews.preview("null", "/r")),
        '{"type":"substep.completed","subStepId":"7","taskId":7,"durationMs":120,"attempt":1,"result":null}',
    ),
    (SUBSTEP_COMPLETED, "cut"): (
        lambda: ev.substep_completed(7, 120, previews.preview(CUT, "/r")),
        '{"type":"substep.completed","subStepId":"7","taskId":7,"durationMs":120,"attempt":1,"result":"\\'
        + CUT_FIELDS.format(k="result")
        + "}",
    ),
    (SUBSTEP_FAILED, ""): (
        lambda: ev.substep_failed(4, "boom"),
        '{"type":"substep.failed","subStepId":"4","taskId":4,"error":"boom","reason":"error","willRetry":false}',
    ),
    (SUBSTEP_FAILED, "retried"): (
        lambda: ev.substep_failed(4, "boom", 98, attempt=1, reason="error", retry_in_seconds=2),
        '{"type":"substep.failed","subStepId":"4","taskId":4,"error":"boom","reason":"error","willRetry":true,'
        '"attempt":1,"retryInSeconds":2,"durationMs":98}',
    ),
    (SUBSTEP_FAILED, "upstream"): (
        lambda: ev.substep_failed(4, "upstream task 2 did not complete", upstream=[2, 3]),
        '{"type":"substep.failed","subStepId":"4","taskId":4,"error":"upstream task 2 did not complete",'
        '"reason":"upstream","willRetry":false,"upstreamTaskIds":[2,3]}',
    ),
    (SUBSTEP_FAILED, "skipped"): (
        lambda: ev.substep_failed(4, "not started", duration_ms=5, upstream=[], reason="skipped"),
        '{"type":"substep.failed","subStepId":"4","taskId":4,"error":"not started","reason":"skipped",'
        '"willRetry":false,"durationMs":5}',
    ),
    (EventType.SUBSTEP_PROGRESS, ""): (
        lambda: ev.substep_progress(7, 2, "Once upon 🙂", 12),
        '{"type":"substep.progress","subStepId":"7","taskId":7,"attempt":2,"delta":"Once upon 🙂","offset":12}',
    ),
    (EventType.SUBSTEP_PROGRESS, "progress"): (
        lambda: ev.substep_progress(7, 1, progress={"done": 3, "total": 10, "message": "pages"}),
        '{"type":"substep.progress","subStepId":"7","taskId":7,"attempt":1,'
        '"progress":{"done":3.0,"total":10.0,"message":"pages"}}',
    ),
    (SUBSTEP_WAITING, ""): (
        lambda: ev.substep_waiting(5, "Approve", "Deploy?", 3_600, 1_795_660_600_000),
        '{"type":"substep.waiting","subStepId":"5","taskId":5,"description":"Approve","prompt":"Deploy?",'
        '"timeoutSeconds":3600,"decisionDeadline":1795660600000}',
    ),
    (EXECUTION_UPDATED, ""): (
        lambda: ev.execution_updated(META),
        '{"type":"execution.updated","status":"running","totalTasks":5,"completedTasks":2,"failedTasks":1,'
        '"skippedTasks":0,"runningTasks":1,"waitingTasks":1}',
    ),
    (EXECUTION_COMPLETED, ""): (
        lambda: ev.execution_completed(META, 4300, previews.preview('"ok"', "/r")),
        '{"type":"execution.completed","status":"completed","completedTasks":2,"failedTasks":1,"totalTasks":5,'
        '"durationMs":4300,"finalResult":"ok"}',
    ),
    (EXECUTION_COMPLETED, "cut"): (
        lambda: ev.execution_completed(META, 4300, previews.preview(CUT, "/r")),
        '{"type":"execution.completed","status":"completed","completedTasks":2,"failedTasks":1,"totalTasks":5,'
        '"durationMs":4300,"finalResult":"\\' + CUT_FIELDS.format(k="finalResult") + "}",
    ),
    (EXECUTION_FAILED, ""): (
        lambda: ev.execution_failed(META, 1500, "task 1 failed: boom"),
        '{"type":"execution.failed","status":"failed","reason":"taskFailed","completedTasks":2,"failedTasks":1,'
        '"skippedTasks":0,"totalTasks":5,"durationMs":1500,"error":"task 1 failed: boom"}',
    ),
    (EXECUTION_FAILED, "cancelled"): (
        lambda: ev.execution_failed(META, 1500, "cancelled by request", "cancelled", "cancelled"),
        '{"type":"execution.failed","status":"cancelled","reason":"cancelled","completedTasks":2,"failedTasks":1,'
        '"skippedTasks":0,"totalTasks":5,"durationMs":1500,"error":"cancelled by request"}',
    ),
    # As the SSE endpoint writes it (never stored).
    (HEARTBEAT, ""): (
        lambda: ev.heartbeat("dag-exec_x", 1_795_657_000_000),
        '{"type":"heartbeat","executionId":"dag-exec_x","timestamp":1795657000000}',
    ),
}


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
EID = "dag-exec_4f1c0d2e9a8b4c6d8e0f1a2b3c4d5e6f"


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


# The snapshot, as the SSE endpoint sends it: the execution view (orchestration.build_snapshot)
# with type, snapshot and timestamp added last.
SNAPSHOT_JSON = (
    '{"executionId":"dag-exec_x","status":"completed","originalRequest":"r","createdAt":1795657000000,'
    '"totalTasks":2,"completedTasks":2,"failedTasks":0,"skippedTasks":0,"runningTasks":0,"waitingTasks":0,'
    '"finishedAt":1795657004300,"durationMs":4300,"failurePolicy":"failFast","finalResultJson":null,'
    '"seq":7,"tasks":[{"taskId":1,"subStepId":"1","description":"","action":"echo","dependencies":[],'
    '"status":"completed","attempt":1,"startedAt":1795657000100,"finishedAt":1795657000200,"durationMs":100,'
    '"result":null},{"taskId":2,"subStepId":"2","description":"d","action":"echo","dependencies":[1],'
    '"status":"completed","attempt":2,"durationMs":4000,"result":"\\"xx","resultTruncated":true,'
    '"resultBytes":40002,"resultUrl":"/api/v1/dag-executions/dag-exec_x/tasks/2/result"}],'
    '"type":"execution.updated","snapshot":true,"timestamp":1795657009999}'
).replace('"finalResultJson":null,', '"finalResult":"ok",')


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
