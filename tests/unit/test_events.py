"""SSE wire format, byte for byte, and the counters every execution event carries."""

from __future__ import annotations

import pytest

from chalicelib.domain import events as ev


def test_encode_simple_event():
    assert ev.encode_sse('{"a":1}', event="substep.started", id=3) == (
        b'event: substep.started\nid: 3\ndata: {"a":1}\n\n'
    )


def test_encode_retry_and_no_id():
    assert (
        ev.encode_sse("x", event="heartbeat", retry_ms=2000) == b"event: heartbeat\nretry: 2000\ndata: x\n\n"
    )


def test_retry_only_message():
    assert ev.encode_retry(1500) == b"retry: 1500\n\n"


def test_multiline_data_becomes_several_data_fields_and_cr_is_normalised():
    assert ev.encode_sse("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_unicode_is_utf8():
    assert ev.encode_sse("é→") == "data: é→\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_event_name_and_id_must_be_single_line(bad):
    with pytest.raises(ValueError):
        ev.encode_sse("x", event=bad)
    with pytest.raises(ValueError):
        ev.encode_sse("x", id=bad)


def test_json_payload_never_spans_lines():
    payload = ev.dumps({"result": "line1\nline2"})
    assert ev.encode_sse(payload).count(b"\n") == 2


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


def test_large_payload_is_one_data_line_and_round_trips():
    import json

    payload = {"result": "x" * 300_000 + "\n" + "é" * 1000, "n": list(range(1000))}
    frame = ev.encode_sse(ev.dumps(payload), event="substep.completed", id=42)
    lines = frame.decode().split("\n")
    assert lines[:2] == ["event: substep.completed", "id: 42"]
    assert lines[2].startswith("data: ") and lines[3:] == ["", ""]
    assert json.loads(lines[2][6:]) == payload


def test_encode_event_uses_type_and_seq():
    encoded = ev.encode_event({"type": "substep.started", "seq": 7, "taskId": 1})
    assert encoded.seq == 7 and encoded.type == "substep.started"
    assert encoded.frame.startswith(b"event: substep.started\nid: 7\ndata: {")


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
