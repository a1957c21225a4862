"""The event log: seq 1, 2, 3… with no gap and no duplicate, under concurrency and retries."""

from __future__ import annotations

import json
import threading
import uuid

from chalicelib.domain.dag import parse_job
from tests.functional.conftest import assert_gapless, echo, run_job, sleep, wait_for_end


def _new_execution(services) -> str:
    eid = f"dag-exec_test{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    return eid


def test_same_key_twice_is_written_once(services):
    eid = _new_execution(services)
    first = services.store.append_event(eid, "k#1", {"type": "substep.started", "taskId": 1})
    again = services.store.append_event(eid, "k#1", {"type": "substep.started", "taskId": 1})
    other = services.store.append_event(eid, "k#2", {"type": "substep.started", "taskId": 2})
    # the key of an event below the tail is still found (via its KEY# marker)
    old = services.store.append_event(eid, "k#1", {"type": "substep.started", "taskId": 1})
    assert (first, again, other, old) == (2, 2, 3, 2)
    assert [e["seq"] for e in services.store.events_after(eid, 0)] == [1, 2, 3]


def test_concurrent_writers_with_duplicate_keys_get_a_gapless_log(services):
    eid = _new_execution(services)
    keys = [f"k#{i}" for i in range(40)]
    seqs: dict[str, set[int]] = {k: set() for k in keys}
    lock = threading.Lock()

    def writer(offset: int) -> None:
        # every writer appends every key, starting at a different place: each key races 4 times
        for i in range(len(keys)):
            key = keys[(i + offset) % len(keys)]
            seq = services.store.append_event(eid, key, {"type": "execution.updated", "mark": key})
            with lock:
                seqs[key].add(seq)

    threads = [threading.Thread(target=writer, args=(n * 10,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = services.store.events_after(eid, 0)
    assert [e["seq"] for e in events] == list(range(1, 42))  # execution.created + 40 keys
    assert sorted(e["mark"] for e in events[1:]) == sorted(keys)
    assert all(len(s) == 1 for s in seqs.values()), "a key was given two seqs"


def test_handlers_called_again_write_nothing_twice(services):
    """Step Functions and Lambda may run a step twice; a second run must change nothing."""
    import app

    eid, events = run_job(services, {"tasks": [echo(1, "a"), echo(2, "{{1}}b", [1])]})
    for task_id in (1, 2):
        assert app.run_task({"executionId": eid, "taskId": task_id, "attempt": 1}, None) == {
            "taskId": task_id,
            "status": "completed",
            "attempt": 1,
            "waitSeconds": 0,
        }
    app.finalize({"executionId": eid, "error": None}, None)
    app.register_task({"executionId": eid, "taskId": 2, "token": "stale-token"}, None)
    assert services.store.events_after(eid, 0) == events


def test_a_run_lambda_that_fails_after_doing_its_work_is_retried_without_duplicates(services, stack):
    """The run Lambda completes the task, then crashes (e.g. a timeout on the way out): Step
    Functions retries it, and the retry must not write any event a second time."""
    crashed: list[int] = []

    def crash_once_after_running(event, context):
        result = real(event, context)
        if event["taskId"] == 2 and not crashed:
            crashed.append(2)
            raise ConnectionError("lost the connection after finishing")
        return result

    with stack.handler_override("run_task", crash_once_after_running) as real:
        eid, events = run_job(services, {"tasks": [sleep(1), echo(2, "two", [1]), echo(3, "{{2}}!", [2])]})
    assert crashed == [2]
    assert_gapless(events, eid)
    assert events[-1]["type"] == "execution.completed"
    assert events[-1]["finalResult"] == "two!"


def test_a_throttled_read_of_a_tasks_inputs_retries_the_run_instead_of_failing_the_task(
    services, monkeypatch
):
    """The run Lambda reads the task's inputs (its dependencies' results) before the kind runs.
    The read was inside the handler of the kind's own failures, so a throttle botocore gave up on
    failed the task — ``substep.failed``, its dependents skipped — although nothing of the user's
    ran. Now it fails the Run, which Step Functions retries, and the task completes."""
    from botocore.exceptions import ClientError

    real = services.store.get_results
    throttled: list[str] = []

    def throttled_once(execution_id, task_ids):
        ids = list(task_ids)
        if ids == [1] and not throttled:  # task 2's inputs
            throttled.append(execution_id)
            code = "ProvisionedThroughputExceededException"
            raise ClientError({"Error": {"Code": code, "Message": "throttled"}}, "BatchGetItem")
        return real(execution_id, ids)

    monkeypatch.setattr(services.store, "get_results", throttled_once)
    eid, events = run_job(services, {"tasks": [echo(1, "one"), echo(2, "{{1}}!", [1])]})
    assert throttled == [eid]
    assert_gapless(events, eid)
    task_two = [e["type"] for e in events if e.get("taskId") == 2 and e["type"].startswith("substep.")]
    assert task_two == ["substep.started", "substep.completed"]
    assert events[-1]["type"] == "execution.completed"
    assert events[-1]["finalResult"] == "one!"


def test_a_run_lambda_that_keeps_crashing_fails_the_task_and_its_dependents(services, stack):
    def always_crash(event, context):
        if event["taskId"] == 2:
            raise RuntimeError("out of memory")
        return real(event, context)

    with stack.handler_override("run_task", always_crash) as real:
        eid = services.orchestrator.submit(
            parse_job(
                {
                    "failurePolicy": "continue",
                    "tasks": [sleep(1), echo(2, "x", [1]), echo(3, "y", [2]), sleep(4)],
                }
            )
        )
        events = wait_for_end(services, eid, timeout=90)
    assert_gapless(events, eid)
    failed = {e["taskId"]: e for e in events if e["type"] == "substep.failed"}
    assert failed[2]["error"] == "task runner failed: RuntimeError: out of memory"
    assert failed[3]["upstreamTaskIds"] == [2]
    assert events[-1]["type"] == "execution.failed"
    assert events[-1]["completedTasks"] == 2


def test_secrets_are_redacted_before_anything_is_stored(services, monkeypatch):
    """A task result with secret-looking keys: the table, the API snapshot and every event see
    [REDACTED], never the value."""
    from chalicelib.orchestration import attempt

    def leaky(action, params, inputs, results, ctx):
        return {"api_key": "sk-live-123", "rows": [{"password": "hunter2", "name": "ada"}], "total_tokens": 3}

    monkeypatch.setattr(attempt, "run_kind", leaky)
    eid, events = run_job(services, {"tasks": [echo(1, "ignored")]})
    text = json.dumps(events) + json.dumps(services.orchestrator.snapshot(eid))
    assert "sk-live-123" not in text and "hunter2" not in text
    done = next(e for e in events if e["type"] == "substep.completed")
    assert done["result"] == {
        "api_key": "[REDACTED]",
        "rows": [{"password": "[REDACTED]", "name": "ada"}],
        "total_tokens": 3,
    }
    # and a payload handed straight to the store is redacted too
    running = _new_execution(services)
    seq = services.store.append_event(
        running, "custom#1", {"type": "execution.updated", "authorization": "Bearer x"}
    )
    assert services.store.events_after(running, seq - 1)[0]["authorization"] == "[REDACTED]"


def test_nothing_is_appended_after_the_terminal_event(services):
    eid, events = run_job(services, {"tasks": [echo(1, "a")]})
    assert services.store.append_event(eid, "late#1", {"type": "substep.started", "taskId": 1}) == 0
    # the terminal event's own key still answers with its seq (finalize may run twice)
    assert services.store.append_event(eid, "execution.terminal", {"type": "execution.failed"}) == len(events)
    assert services.store.events_after(eid, 0) == events


def _types(services, eid: str) -> list[tuple[int, str]]:
    return [(e["seq"], e.get("mark", e["type"])) for e in services.store.events_after(eid, 0)]


def _hold_lease(services, eid: str, seconds: float) -> None:
    """A lease holder that died: its lease runs out in ``seconds``."""
    import time

    from chalicelib.persistence.table import to_item

    services.store._db.put_item(
        TableName=services.settings.table_name,
        Item=to_item(
            {
                "PK": f"QUEUE#{eid}",
                "SK": "LEASE",
                "holder": "dead",
                "expires": int((time.time() + seconds) * 1000),
            }
        ),
    )


def test_nobody_puts_directly_while_events_are_queued(services):
    """An event that was queued (its writer returned) comes before any event appended after it —
    even from a writer that meets no contention at all."""
    eid = _new_execution(services)
    services.store.event_log._enqueue(
        eid, "queued#1", {"type": "execution.updated", "mark": "queued#1"}, None
    )
    seq = services.store.append_event(
        eid, "later#1", {"type": "execution.updated", "mark": "later#1"}, wait=False
    )
    assert seq == 3  # it drained the queue first, then wrote its own
    assert _types(services, eid) == [(1, "execution.created"), (2, "queued#1"), (3, "later#1")]
    assert services.store.event_log._queued(eid, 10) == []


class _FailingRelease:
    """The event log's client, whose DeleteItem (only the lease release calls it) fails with ``code``."""

    def __init__(self, client, code: str) -> None:
        self._client, self._code = client, code

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def delete_item(self, **_):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self._code, "Message": "refused"}}, "DeleteItem")


def _lease(services, eid: str):
    from chalicelib.persistence.table import from_item, to_item

    out = services.store._db.get_item(
        TableName=services.settings.table_name,
        Key=to_item({"PK": f"QUEUE#{eid}", "SK": "LEASE"}),
        ConsistentRead=True,
    )
    return from_item(out["Item"]) if "Item" in out else None


def test_a_lease_release_that_fails_leaves_the_lease_to_expire(services, monkeypatch, caplog):
    """Releasing the append lease is an optimisation: a throttled release must not fail the append
    whose events it wrote; it is logged, and the lease expires. The events are all written."""
    import logging

    eid = _new_execution(services)
    log = services.store.event_log
    monkeypatch.setattr(log._lease, "_db", _FailingRelease(log._lease._db, "ThrottlingException"))
    log._enqueue(eid, "queued#1", {"type": "execution.updated", "mark": "queued#1"}, None)
    with caplog.at_level(logging.WARNING, logger="chalicelib.persistence.appendlease"):
        seq = services.store.append_event(eid, "later#1", {"type": "execution.updated", "mark": "later#1"})
    assert seq == 3
    assert _types(services, eid) == [(1, "execution.created"), (2, "queued#1"), (3, "later#1")]
    assert "could not release the append lease" in caplog.text
    assert _lease(services, eid) is not None  # left to expire


def test_a_lease_release_refused_because_the_lease_is_someone_elses_is_silent(services, monkeypatch, caplog):
    import logging

    eid = _new_execution(services)
    log = services.store.event_log
    monkeypatch.setattr(log._lease, "_db", _FailingRelease(log._lease._db, "ConditionalCheckFailedException"))
    log._enqueue(eid, "queued#1", {"type": "execution.updated", "mark": "queued#1"}, None)
    with caplog.at_level(logging.WARNING, logger="chalicelib.persistence.appendlease"):
        seq = services.store.append_event(eid, "later#1", {"type": "execution.updated", "mark": "later#1"})
    assert seq == 3
    assert not [r for r in caplog.records if r.name == "chalicelib.persistence.appendlease"]


def test_a_queued_event_survives_a_dead_lease_holder_and_the_terminal_event_waits_for_it(services):
    import time

    eid = _new_execution(services)
    _hold_lease(services, eid, 1.5)
    # the lease is taken: a contended writer queues its event and returns at once, without its seq
    services.store.event_log._enqueue(
        eid, "orphan#1", {"type": "execution.updated", "mark": "orphan#1"}, None
    )
    assert (
        services.store.append_event(
            eid, "next#1", {"type": "execution.updated", "mark": "next#1"}, wait=False
        )
        is None
    )
    assert _types(services, eid) == [(1, "execution.created")]
    # the terminal event waits: the lease runs out, it drains everything queued, in order
    started = time.monotonic()
    seq = services.store.append_event(eid, "execution.terminal", {"type": "execution.failed", "mark": "end"})
    assert time.monotonic() - started >= 1.0
    assert seq == 4
    assert _types(services, eid) == [(1, "execution.created"), (2, "orphan#1"), (3, "next#1"), (4, "end")]
    # and nothing is appended after it, queued or not
    assert services.store.append_event(eid, "late#1", {"type": "execution.updated"}, wait=False) == 0


def test_queued_progress_events_in_a_row_become_one(services):
    from chalicelib.persistence.eventlog import PROGRESS

    eid = _new_execution(services)
    _hold_lease(services, eid, 0.5)
    for i in range(5):
        services.store.event_log._enqueue(eid, f"execution.updated#{i}", PROGRESS, None)
    services.store.event_log._enqueue(eid, "other#1", {"type": "execution.updated", "mark": "other#1"}, None)
    seq = services.store.append_event(eid, "execution.terminal", {"type": "execution.failed", "mark": "end"})
    assert _types(services, eid) == [
        (1, "execution.created"),
        (2, "execution.updated"),
        (3, "other#1"),
        (4, "end"),
    ]
    assert seq == 4
    # every coalesced key is marked: appending one again writes nothing
    again = services.store.append_event(eid, "execution.updated#3", PROGRESS)
    assert again == 2


def test_a_drainer_whose_lease_ran_out_before_it_marked_its_chunk_leaves_nothing_to_write_twice(services):
    """A drainer writes a chunk's events, then their markers. One that died (or stalled past its
    lease) in between leaves events below the tail unmarked, and the duplicate check reads markers:
    whoever takes the expired lease over marks the newest events first, so a retried append of one
    of them finds its seq (the chaos test of crashing task Lambdas once wrote a substep.completed
    twice this way on a loaded machine)."""
    log = services.store.event_log
    eid = _new_execution(services)
    _hold_lease(services, eid, 0.5)
    chunk = {
        "a#1": {"type": "execution.updated", "mark": "a#1"},
        "b#1": {"type": "execution.updated", "mark": "b#1"},
    }
    for key, body in chunk.items():  # the dead holder's chunk: queued, written, not yet marked
        log._enqueue(eid, key, body, None)
    dead = log._lease.held_by(eid, "dead")
    assert log._put_event(eid, "a#1", chunk["a#1"], None, 2, dead) == 2
    assert log._put_event(eid, "b#1", chunk["b#1"], None, 3, dead) == 3
    # the retried append of a#1 waits for the lease, takes it over, and finds a#1 already written
    assert services.store.append_event(eid, "a#1", chunk["a#1"]) == 2
    assert _types(services, eid) == [(1, "execution.created"), (2, "a#1"), (3, "b#1")]
    assert services.store.append_event(eid, "c#1", {"type": "execution.updated", "mark": "c#1"}) == 4
    assert not log._queued(eid, 10)


def _three_queued(services) -> tuple[str, dict[str, dict[str, str]]]:
    """A new execution with three events queued (``k#1``…``k#3``, nobody draining): its id, and
    the events by key."""
    eid = _new_execution(services)
    bodies = {f"k#{n}": {"type": "execution.updated", "mark": f"k#{n}"} for n in (1, 2, 3)}
    for key, body in bodies.items():
        services.store.event_log._enqueue(eid, key, body, None)
    return eid, bodies


def test_a_drain_that_fails_before_it_marks_its_chunk_leaves_nothing_to_write_twice(services, monkeypatch):
    """A drainer writes a chunk's events in one transaction, then their markers (BatchWriteItem).
    When that call failed (a throttle past botocore's attempts or its retry quota) the drain raised
    with the chunk written and unmarked — and released the lease, so the next drainer, not told of
    a takeover, took the unmarked events for unwritten and wrote them again above the tail (a
    duplicated substep event in about one run in ten of test_chaos[throttle]'s job when 1 % of its
    DynamoDB calls raised). A failed drain runs its lease out instead: the next drainer takes it
    over and marks the newest events before writing."""
    from botocore.exceptions import ClientError

    log = services.store.event_log
    eid, bodies = _three_queued(services)
    real = log._batch_write

    def chunk_markers_throttled(requests):
        if len(requests) == 3 and all("KEY#" in r["PutRequest"]["Item"]["SK"]["S"] for r in requests):
            code = "ProvisionedThroughputExceededException"
            raise ClientError({"Error": {"Code": code, "Message": "throttled"}}, "BatchWriteItem")
        real(requests)

    monkeypatch.setattr(log, "_batch_write", chunk_markers_throttled)
    try:
        log._drain_while_free(eid)
    except ClientError:
        pass
    else:
        raise AssertionError("the chunk's markers were not written in one call")
    monkeypatch.setattr(log, "_batch_write", real)
    expected = [(1, "execution.created"), (2, "k#1"), (3, "k#2"), (4, "k#3")]
    assert _types(services, eid) == expected  # written, not marked, still queued
    # the step that failed is run again (Step Functions' retry) and appends its event once more
    assert services.store.append_event(eid, "k#1", bodies["k#1"]) == 2
    assert _types(services, eid) == expected
    assert services.store.append_event(eid, "k#4", {"type": "execution.updated", "mark": "k#4"}) == 5
    assert not log._queued(eid, 10)


def test_an_update_queued_again_after_it_was_written_does_not_swallow_the_updates_after_it(services):
    """Updates queued back to back are drained as one event (they would read the same counters).
    A step run again (Step Functions' retry, a duplicate invocation) queues its task's update once
    more although it was written long ago: a run of updates led by it took that old seq for every
    update in it, so a task whose update came right behind it had none after its substep event
    (docs/events.md: every finish has an update after it). An update already written stands alone."""
    from chalicelib.persistence.eventlog import PROGRESS

    log = services.store.event_log
    eid = _new_execution(services)
    assert services.store.append_event(eid, "execution.updated#3", PROGRESS) == 2
    for key, body in (
        ("substep.completed#5", {"type": "substep.completed", "taskId": 5, "mark": "completed#5"}),
        ("execution.updated#3", PROGRESS),  # the retried step's, again
        ("execution.updated#5", PROGRESS),
    ):
        log._enqueue(eid, key, body, None)
    written = log._drain_while_free(eid)
    assert written["execution.updated#3"] == 2
    assert written["execution.updated#5"] == 4
    assert _types(services, eid) == [
        (1, "execution.created"),
        (2, "execution.updated"),
        (3, "completed#5"),
        (4, "execution.updated"),
    ]


def _take_over(services, eid: str, holder: str) -> None:
    """Another drainer takes the append lease over (the first one's ran out while its write was
    held up) and does what a takeover does first: it marks the newest events."""
    import time

    from chalicelib.persistence.table import to_item

    services.store._db.put_item(
        TableName=services.settings.table_name,
        Item=to_item(
            {"PK": f"QUEUE#{eid}", "SK": "LEASE", "holder": holder, "expires": int((time.time() + 10) * 1000)}
        ),
    )
    services.store.event_log._mark_recent(eid)


def test_a_chunk_that_arrives_after_its_lease_was_taken_over_is_refused_not_written_twice(
    services, monkeypatch
):
    """A drainer's chunk transaction that botocore retried past its lease (a throttle's back-off,
    a request held up) used to land after another drainer had taken the lease over and marked the
    newest events: below the new holder's tail, unmarked, so the new holder wrote the same queued
    events again above it (duplicates seen twice in the throttle chaos run). The chunk's transaction
    now checks that the lease is still its drainer's: it is refused, and the new holder writes each
    queued event once."""
    log = services.store.event_log
    eid, _ = _three_queued(services)
    real = log._transact
    delayed: list[int] = []

    def held_up_past_a_takeover(ops):
        if delayed or not any(
            "EVT#" in op.get("Put", {}).get("Item", {}).get("SK", {}).get("S", "") for op in ops
        ):
            return real(ops)
        delayed.append(len(ops))
        _take_over(services, eid, "next")  # while the first drainer's transaction was held up
        failed = real(ops)  # it arrives
        log._drain(eid, "next")  # the new holder drains before the first one marks anything
        return failed

    monkeypatch.setattr(log, "_transact", held_up_past_a_takeover)
    first = log._lease.acquire(eid)
    assert first is not None
    log._drain(eid, first.holder)
    assert delayed == [4]  # the chunk's 3 puts and the lease check, in one transaction
    assert _types(services, eid) == [(1, "execution.created"), (2, "k#1"), (3, "k#2"), (4, "k#3")]
    assert not log._queued(eid, 10)


def test_an_event_put_one_at_a_time_after_the_lease_was_taken_over_is_refused(services):
    """The one-at-a-time path of a drain (after a put of its chunk lost a race) writes each event
    alone, its marker after: it checks the lease in the same transaction too, and stops."""
    from chalicelib.persistence.appendlease import LeaseLost

    log = services.store.event_log
    eid = _new_execution(services)
    first = log._lease.acquire(eid)
    assert first is not None
    held = log._lease.held_by(eid, first.holder)
    assert log._put_event(eid, "a#1", {"type": "execution.updated", "mark": "a#1"}, None, 2, held) == 2
    assert log._put_event(eid, "a#2", {"type": "execution.updated", "mark": "a#2"}, None, 2, held) is None
    _take_over(services, eid, "next")
    try:
        log._put_event(eid, "b#1", {"type": "execution.updated", "mark": "b#1"}, None, 3, held)
    except LeaseLost:
        pass
    else:
        raise AssertionError("a put after the takeover was not refused")
    assert _types(services, eid) == [(1, "execution.created"), (2, "a#1")]


def test_an_event_put_one_at_a_time_whose_answer_was_lost_is_taken_as_written(services, monkeypatch):
    """A put of the one-at-a-time path applied, its answer lost: botocore's retry finds the seq
    taken — by the event itself. It used to be taken for a lost race, and the event went through
    the full protocol, which wrote it again above itself (its marker not written yet). Like a
    chunk's (``_landed``), the put looks whether the seq holds its own event."""
    log = services.store.event_log
    eid = _new_execution(services)
    taken = log._lease.acquire(eid)
    assert taken is not None
    real = log._transact
    lost: list[int] = []

    def answer_lost(ops):
        failed = real(ops)
        if failed or lost:
            return failed
        lost.append(len(ops))
        return real(ops)  # the retry of the applied call

    monkeypatch.setattr(log, "_transact", answer_lost)
    held = log._lease.held_by(eid, taken.holder)
    assert log._put_event(eid, "a#1", {"type": "execution.updated", "mark": "a#1"}, None, 2, held) == 2
    assert lost == [2]  # the event and the lease's check
    assert log._put_event(eid, "b#1", {"type": "execution.updated", "mark": "b#1"}, None, 2, held) is None
