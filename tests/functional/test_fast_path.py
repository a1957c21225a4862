"""Issue 20's fast path: how many DynamoDB calls a task and an event cost (counts, not timings).

docs/architecture.md#what-a-task-costs has the table these bounds come from.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import boto3

from chalicelib.domain.dag import parse_job
from chalicelib.domain.events import TERMINAL_TYPES
from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import marker_sk, pk
from chalicelib.persistence.table import from_item, to_item
from tests.functional.conftest import assert_gapless
from tests.support.jobs import echo


class _OwnCalls:
    """Counts the calls this thread makes on the store's client (the stack's sweepers share it)."""

    def __init__(self, services: Any) -> None:
        self.calls = 0
        self._thread = threading.current_thread()
        services.store._db.meta.events.register("before-call.dynamodb", self)

    def __call__(self, **_: Any) -> None:
        if threading.current_thread() is self._thread:
            self.calls += 1


def _counted(services: Any) -> Any:
    return _OwnCalls(services)


class _TaskPathCalls:
    """Counts the calls the state machine's steps make: not the fan-out's (the stream poller's
    thread and its webhook lanes), whose reads depend on how the stream batches records, nor the
    local stack's sweepers (webhook retries, the reconciler), which poll on a clock, not per task."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        name = threading.current_thread().name
        # (the moto stack's retry sweeper is an unnamed thread: known by its target)
        sweeper = name.startswith(("dagcast-retry", "dagcast-reconciler")) or "(_run_retries)" in name
        if not (name.startswith(("dagcast-stream-poller", "dagcast-webhook")) or sweeper):
            self.calls += 1


def test_an_event_is_appended_with_its_marker_in_two_calls(services):
    """The tail read, then one transaction: the event and its own KEY# marker (the old protocol
    read the marker, put the tail's marker, then put the event: four calls)."""
    eid = f"dag-exec_fast{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    counter = _counted(services)
    before = counter.calls
    seq = services.store.append_event(eid, "k#1", {"type": "substep.started", "taskId": 1})
    services.store._db.meta.events.unregister("before-call.dynamodb", counter)
    assert counter.calls - before == 2
    marker = services.store._db.get_item(
        TableName=services.store._table, Key=to_item({"PK": pk(eid), "SK": marker_sk("k#1")})
    )
    assert from_item(marker["Item"])["seq"] == seq == 2
    # the duplicate check is the marker's condition: the same key again writes nothing
    assert services.store.append_event(eid, "k#1", {"type": "substep.started", "taskId": 1}) == 2
    assert [e["seq"] for e in services.store.events_after(eid, 0)] == [1, 2]


def test_a_task_on_the_common_path_costs_at_most_fifteen_dynamodb_calls(services):
    """Register, start, finish, release the dependent and the three events of every task of a
    chain (no two appends at once, so no lost race and no queue: the common path, and a count
    that barely depends on the machine's load): at most 15 calls per task (~12 measured), the
    execution's own calls (create, start, finalize) and the local stack's webhook-retry sweeps
    included, the fan-out's not. It was ~25 before the event and its marker went in
    one transaction, the task's changes and its execution.updated with its event, and the second
    reads of the task and META went. (Under contention — bench/dag_makespan's 200-task DAG — the
    figure is docs/architecture.md's ≤ 15.) Counted on the handlers' client; the test polls with
    another."""
    tasks = [echo(i, f"t{i}", [i - 1] if i > 1 else []) for i in range(1, 13)]
    counter = _TaskPathCalls()
    services.store._db.meta.events.register("before-call.dynamodb", counter)
    poll = DynamoStore(boto3.client("dynamodb"), services.store._table)
    before = counter.calls
    eid = services.orchestrator.submit(parse_job({"tasks": tasks}))
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not (events and events[-1]["type"] in TERMINAL_TYPES):
        assert time.monotonic() < deadline, events
        time.sleep(0.05)
        events += poll.events_after(eid, events[-1]["seq"] if events else 0)
    time.sleep(0.5)  # Finalize's last calls after the terminal event, if any
    per_task = (counter.calls - before) / len(tasks)
    assert events[-1]["type"] == "execution.completed"
    assert_gapless(events, eid)
    services.store._db.meta.events.unregister("before-call.dynamodb", counter)
    assert per_task <= 15, f"{per_task:.1f} DynamoDB calls per task"


def test_a_drained_chunk_whose_answer_was_lost_is_not_written_again(services, monkeypatch):
    """The drainer writes a chunk of queued events in one transaction and marks them after. If the
    transaction is applied but its answer lost, botocore's retry fails on the chunk's own events:
    the drainer must see they are its own, not go one by one and write the chunk again above
    itself (its markers are not written yet, so the duplicate check cannot catch it)."""
    eid = f"dag-exec_lost{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    log = services.store.event_log
    for k in (1, 2, 3):
        log._enqueue(eid, f"k#{k}", {"type": "substep.started", "taskId": k}, 1_700_000_000_000 + k)
    real = log._transact
    lost: list[int] = []

    def answer_lost(ops: list[dict[str, Any]]) -> list[bool]:
        failed: list[bool] = real(ops)
        chunk = len(ops) == 4 and all("Put" in o for o in ops[:3]) and "ConditionCheck" in ops[3]
        if not failed and not lost and chunk:  # the 3 events and the lease's check
            lost.append(1)
            again: list[bool] = real(ops)  # the retry of the applied call: its own events are there
            return again
        return failed

    monkeypatch.setattr(log, "_transact", answer_lost)
    written = log._drain_while_free(eid)
    assert lost, "the chunk was not written in one transaction"
    assert written == {"k#1": 2, "k#2": 3, "k#3": 4}
    events = services.store.events_after(eid, 0)
    assert [(e["seq"], e.get("taskId")) for e in events] == [(1, None), (2, 1), (3, 2), (4, 3)]


def test_a_write_with_a_task_change_that_loses_its_race_queues_at_once_without_a_lease_check(
    services, monkeypatch
):
    """A lost race bills the whole transaction (the task and META in it, twice): such an append
    tries once, then queues its event with the writes. It saw no queue, so no one is likely to
    drain: no ConditionCheck on the lease (one that fails costs the transaction again), it drains
    itself."""
    eid = f"dag-exec_race{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    log = services.store.event_log
    log.append_event(eid, "other#1", {"type": "substep.started", "taskId": 9})  # seq 2
    stale = log._top(eid)
    log.append_event(eid, "other#2", {"type": "substep.started", "taskId": 8})  # seq 3: the race
    monkeypatch.setattr(log, "_top", lambda _: stale)  # the tail as read just before another's write
    sent: list[list[dict[str, Any]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if threading.current_thread() is me:
            sent.append(list(params["TransactItems"]))

    me = threading.current_thread()
    services.store._db.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", record)
    try:
        seq = log.append_with(eid, "mine#1", {"type": "substep.started", "taskId": 1}, [])
    finally:
        services.store._db.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", record)
    monkeypatch.undo()
    direct, enqueued = sent[0], sent[1]
    assert any("EVT#" in str(op) for op in direct)  # the direct try, lost
    assert any("EVT~Q#" in str(op) for op in enqueued), enqueued  # then queued at once
    assert not any("ConditionCheck" in op for op in enqueued), enqueued
    assert seq is not None
    events = services.store.events_after(eid, 0)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[-1]["taskId"] == 1


def test_a_write_right_after_contention_queues_without_reading_the_tail(services, monkeypatch):
    """A task's finish comes a moment after its start: if the start found the appends queued, the
    finish queues at once, without a tail read to learn it again (contention.py) — and its event
    still lands in order, once."""
    eid = f"dag-exec_busy{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    log = services.store.event_log
    log._enqueue(eid, "queued#1", {"type": "substep.started", "taskId": 7}, 1_700_000_000_000)
    tops: list[str] = []
    real_top = log._top

    def counted_top(execution_id: str) -> Any:
        tops.append(execution_id)
        return real_top(execution_id)

    monkeypatch.setattr(log, "_top", counted_top)
    log.append_with(eid, "start#1", {"type": "substep.started", "taskId": 1}, [])
    assert tops == [eid]  # saw the queue (then drained it: nobody held the lease)
    log.append_with(eid, "done#1", {"type": "substep.completed", "taskId": 1}, [])
    assert tops == [eid], "the second write read the tail again"
    events = services.store.events_after(eid, 0)
    assert [(e["seq"], e["type"], e.get("taskId")) for e in events] == [
        (1, "execution.created", None),
        (2, "substep.started", 7),
        (3, "substep.started", 1),
        (4, "substep.completed", 1),
    ]


class LostFirstAnswer:
    """A DynamoDB client whose first UpdateItem applies and then loses its answer: botocore sends
    the same call again (a read timeout, a reset connection), and that retry is what the caller
    sees."""

    def __init__(self, real: Any) -> None:
        self.real, self.lost = real, False

    def update_item(self, **kwargs: Any) -> Any:
        answer = self.real.update_item(**kwargs)
        if self.lost:
            return answer
        self.lost = True
        return self.real.update_item(**kwargs)  # the retry of a call that applied

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_an_append_lease_whose_answer_was_lost_is_ours_not_held_by_a_stranger(services):
    """The retry of a lease take that applied finds the lease held — by our own holder id. Taken as
    held, the execution's queued events waited out the lease (10 s per lost answer, seen in the
    chaos runs); it is ours, and marked taken over so the drainer checks for a half-written chunk."""
    from chalicelib.persistence.appendlease import AppendLease

    table = services.store._table
    lease = AppendLease(LostFirstAnswer(boto3.client("dynamodb")), table)  # type: ignore[arg-type]
    eid = f"dag-exec_lease{uuid.uuid4().hex[:12]}"
    taken = lease.acquire(eid)
    assert taken is not None and taken.took_over
    stored = boto3.client("dynamodb").get_item(TableName=table, Key=lease.key(eid), ConsistentRead=True)
    assert stored["Item"]["holder"]["S"] == taken.holder
    assert lease.renew(eid, taken.holder) is not None  # it is ours to renew and release
    # a stranger's live lease is still refused
    assert AppendLease(boto3.client("dynamodb"), table).acquire(eid) is None
