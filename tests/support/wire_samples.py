"""Every event builder's JSON as it was stored and sent before the builders went through the models
(key order, absent vs null), and the SSE snapshot as the endpoint sends it: the byte-for-byte
references the event and schema tests check the models against."""

from __future__ import annotations

from collections.abc import Callable

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

EID = "dag-exec_4f1c0d2e9a8b4c6d8e0f1a2b3c4d5e6f"

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
