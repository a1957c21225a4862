"""A webhook lane's lease on the local stack: what its holder does when another sender wants the
lane (it goes round again, asked), and what it costs when nobody does (issue 20: the fan-out's
calls per lane per batch)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.factory import Services
from chalicelib.fanout import FanOut
from chalicelib.webhooks.dispatcher import DeliveryBackoff, Dispatcher, Handed, LaneReport
from chalicelib.webhooks.models import Hook, delivery_item
from chalicelib.webhooks.sender import Attempt, Sender
from chalicelib.webhooks.store import WebhookStore, _lane_key
from tests.functional.conftest import SECRET, register
from tests.support.fanout import bare_execution, fan_out_by_hand, stream_record
from tests.support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


@pytest.fixture
def own_store(services: Services) -> Iterator[tuple[WebhookStore, list[str]]]:
    """A webhook store on its own client (the stack's retry function calls nobody else's), and the
    DynamoDB operations it makes, in order."""
    client = boto3.client("dynamodb")
    operations: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    yield WebhookStore(client, services.store._table), operations


class GatedSender:
    """Posts as the real sender does, but the first post waits for ``go`` (the holder, mid-lane)."""

    def __init__(self, real: Sender) -> None:
        self.real, self.timeout = real, real.timeout
        self.inside, self.go = threading.Event(), threading.Event()

    def post(self, hook: Hook, key: bytes, delivery: Mapping[str, Any], attempt: int) -> Attempt:
        self.inside.set()
        assert self.go.wait(30), "the test never let the holder go on"
        return self.real.post(hook, key, delivery, attempt)


def like_the_stacks(
    services: Services, store: WebhookStore, sender: Any = None, backoff: Any = None
) -> Dispatcher:
    """A dispatcher like the stack's (its key box, sender and back-off, unless given) on ``store``:
    the test's own client, or a store that misbehaves on purpose. The caller closes it."""
    assert services.dispatcher is not None
    d = services.dispatcher
    return Dispatcher(store, d.box, sender or d.sender, backoff or d.backoff)


def lane_item(store: WebhookStore, webhook_id: str, eid: str) -> dict[str, Any]:
    """The lane item as DynamoDB holds it (attribute values typed: ``{"N": "1"}``)."""
    return dict(store._db.get_item(TableName=store._table, Key=_lane_key(webhook_id, eid))["Item"])


def the_hook(services: Services, webhook_id: str) -> Hook:
    assert services.webhooks is not None
    hook = services.webhooks.get_hook(webhook_id)
    assert hook is not None
    return hook


def test_a_sender_that_finds_the_lane_held_leaves_its_delivery_to_the_holder_who_sends_it_on_release(
    client, hooks, services, stack, receiver, own_store
):
    """The sender that finds a lane held (another stream handler, or the retry function) asks its
    holder to go round once more; the holder sends the new delivery as it lets the lane go, so the
    delivery waits for neither the holder's lease to run out nor a sweep of the retry function."""
    store, _ = own_store
    assert services.dispatcher is not None
    gated = GatedSender(services.dispatcher.sender)
    holder = like_the_stacks(services, store, sender=gated)
    contender = like_the_stacks(services, store)
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, receiver, executionId=eid))
    reports: list[LaneReport] = []
    try:
        with fan_out_by_hand(stack):
            services.store.append_event(eid, "lanes#1", {"type": "substep.started", "taskId": 1})
            held = threading.Thread(target=lambda: reports.append(holder.process_lane(hook, eid, 1e12)))
            held.start()
            assert gated.inside.wait(30), "the holder never reached its first delivery"
            services.store.append_event(eid, "lanes#2", {"type": "substep.started", "taskId": 2})
            # the lane is held: the contender asks the holder and sends nothing itself
            assert contender.process_lane(hook, eid, 1e12) == LaneReport()
            lane = lane_item(store, hook.id, eid)
            assert lane["asked"] == {"BOOL": True}
            gated.go.set()
            held.join(30)
        # the holder sent both, in order, before it returned: nobody else was left to
        assert len(reports) == 1 and len(reports[0].lags_ms) == 2
        assert receiver.keys_for(eid) == [f"{eid}:1", f"{eid}:2"]
        lane = lane_item(store, hook.id, eid)
        assert "asked" not in lane and "holder" not in lane and "dueSet" not in lane
        assert not [i for i in store.due_items() if i["executionId"] == eid]  # the holder cleared it
    finally:
        gated.go.set()
        holder.close()
        contender.close()


def test_a_holder_nobody_asked_lets_its_lane_go_without_reading_it_again(
    client, hooks, services, stack, receiver, own_store
):
    """The lane's calls when it is not contended, as the fan-out makes them for each lane of a
    batch: take the lease, read the log, read the delivery back, send, save, release. Before, every
    holder read the lane's deliveries once more after releasing it (a Query per lane per batch), in
    case another sender had written one meanwhile; now such a sender asks (test above)."""
    store, operations = own_store
    own = like_the_stacks(services, store)
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, receiver, executionId=eid))
    try:
        with fan_out_by_hand(stack):
            services.store.append_event(eid, "lanes#1", {"type": "substep.started", "taskId": 1})
            operations.clear()
            report = own.process_lane(hook, eid, 1e12)
        assert len(report.lags_ms) == 1 and receiver.keys_for(eid) == [f"{eid}:1"]
        assert operations == [
            "UpdateItem",  # acquire
            "Query",  # the log from the cursor
            "BatchGetItem",  # its deliveries, as stored
            "PutItem",  # the one no stream record wrote (this test fed none)
            "BatchWriteItem",  # save
            "UpdateItem",  # release (and whether anyone asked)
        ]
    finally:
        own.close()


def handed(services: Services, hook: Hook, eid: str, seqs: Iterable[int] | None = None) -> Handed:
    """What the fan-out hands the lane when its batch carries the execution's stored events
    (``seqs`` of them; all by default): the deliveries their records bring for this webhook, not
    yet written, and the seqs."""
    assert services.webhooks is not None
    events = services.webhooks.log_after(eid, 0, 100)
    carried = set(seqs) if seqs is not None else {int(e["seq"]) for e in events}
    deliveries = [
        delivery_item(hook, json.loads(str(e["data"])), str(e["data"]))
        for e in events
        if int(e["seq"]) in carried and hook.matches(json.loads(str(e["data"])), hook.tenant)
    ]
    return Handed(deliveries, frozenset(carried))


def test_a_lane_handed_its_records_deliveries_sends_them_and_writes_each_once_with_its_outcome(
    client, hooks, services, stack, receiver, own_store
):
    """The fan-out hands each lane the deliveries its records bring. A lane that takes its lease
    and whose batch carried every event from its cursor on sends them without reading the log or
    the deliveries, and writes each once, with its outcome: three calls per lane, where it made six
    — and the first POST goes after one DynamoDB round trip, not three."""
    store, operations = own_store
    own = like_the_stacks(services, store)
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, receiver, executionId=eid))
    try:
        with fan_out_by_hand(stack):
            for n in (1, 2):
                services.store.append_event(eid, f"lanes#{n}", {"type": "substep.started", "taskId": n})
            given = handed(services, hook, eid)
            operations.clear()
            report = own.process_lane(hook, eid, 1e12, given)
        assert len(report.lags_ms) == 2 and receiver.keys_for(eid) == [f"{eid}:1", f"{eid}:2"]
        assert operations == [
            "UpdateItem",  # acquire
            "BatchWriteItem",  # the deliveries, written once each: delivered
            "UpdateItem",  # release
        ]
        for seq in (1, 2):
            stored = store.get_delivery(hook.id, eid, seq)
            assert stored is not None and stored["status"] == "delivered" and stored["attempts"] == 1
            assert stored["expiresAt"] > 0
    finally:
        own.close()


def test_a_handed_delivery_that_fails_is_written_pending_and_so_are_the_ones_behind_it(
    client, hooks, services, stack, own_store
):
    """Written with its outcome: the failed one pending with its attempt and back-off, the one the
    lane did not reach pending untried — both listed, as when they were written before sending."""
    store, _ = own_store
    failing_once = Receiver(SECRET, fail_first=1).start()
    # a back-off the stack's retry function cannot reach while the test looks (it would send both)
    own = like_the_stacks(services, store, backoff=DeliveryBackoff(base_seconds=600))
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, failing_once, executionId=eid))
    try:
        with fan_out_by_hand(stack):
            for n in (1, 2):
                services.store.append_event(eid, f"lanes#{n}", {"type": "substep.started", "taskId": n})
            report = own.process_lane(hook, eid, 1e12, handed(services, hook, eid))
        assert report.failures == 1 and failing_once.requests == 1
        first, second = store.get_delivery(hook.id, eid, 1), store.get_delivery(hook.id, eid, 2)
        assert first is not None and first["status"] == "pending" and first["attempts"] == 1
        assert first["nextAttemptAt"] > first["lastAttemptAt"]
        assert second is not None and second["status"] == "pending" and second["attempts"] == 0
        lane = lane_item(store, hook.id, eid)
        assert lane["failedSeq"] == {"N": "1"} and lane["cursor"] == {"N": "0"}
    finally:
        own.close()
        failing_once.stop()


def test_a_lane_steps_over_the_events_its_webhook_does_not_take_and_reads_the_log_across_a_gap(
    client, hooks, services, stack, receiver, own_store
):
    """Events of the batch that the webhook's filter refuses are settled without a read; a batch
    that does not start right after the lane's cursor (an earlier event's record is elsewhere: the
    other shard, a later batch) makes the lane read the log from its cursor, never skip."""
    store, operations = own_store
    own = like_the_stacks(services, store)
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, receiver, executionId=eid, types=["substep.started"]))
    kinds = ["substep.started", "substep.completed", "substep.started", "substep.started"]
    try:
        with fan_out_by_hand(stack):
            for n, kind in enumerate(kinds, start=1):
                services.store.append_event(eid, f"lanes#{n}", {"type": kind, "taskId": n})
            operations.clear()
            own.process_lane(hook, eid, 1e12, handed(services, hook, eid, seqs=[1, 2, 3]))
            assert "Query" not in operations and receiver.keys_for(eid) == [f"{eid}:1", f"{eid}:3"]
            operations.clear()
            # seq 4's batch, after a lane that is at 3: no gap, no read
            own.process_lane(hook, eid, 1e12, handed(services, hook, eid, seqs=[4]))
            assert "Query" not in operations
            services.store.append_event(eid, "lanes#5", {"type": "substep.started", "taskId": 5})
            services.store.append_event(eid, "lanes#6", {"type": "substep.started", "taskId": 6})
            operations.clear()
            # seq 6's record comes first: the lane reads 5 from the log and sends both, in order
            own.process_lane(hook, eid, 1e12, handed(services, hook, eid, seqs=[6]))
            assert "Query" in operations
        assert receiver.keys_for(eid) == [f"{eid}:{n}" for n in (1, 3, 4, 5, 6)]
    finally:
        own.close()


class AttemptedBeforeTheLease(WebhookStore):
    """A store whose first ``acquire`` lets another sender take the lane first (``before``): what
    happens when a holder slips in between a lane's write of its deliveries and its lease."""

    before: Any = None

    def acquire(self, webhook_id: str, execution_id: str, owner: str, now: int) -> tuple[bool, Any]:
        if self.before is not None:
            before, self.before = self.before, None
            before()
        return super().acquire(webhook_id, execution_id, owner, now)


def test_a_delivery_in_hand_that_another_sender_attempted_since_is_read_again(
    client, hooks, services, stack, own_store
):
    """The copy a lane holds is as its record brought it (attempts 0); another holder that took the
    lane between the fan-out and this lane's lease, tried the delivery and failed names it on the
    lane (``failedSeq``), so the lane reads it again and the attempts go on counting (2, not 1) —
    also when that holder left no due entry (which alone would send the lane to the log)."""
    store, _ = own_store
    failing_once = Receiver(SECRET, fail_first=1).start()
    racing = AttemptedBeforeTheLease(store._db, store._table)
    own = like_the_stacks(services, racing)
    # its failure's due entry far ahead: the stack's retry function must not send the lane meanwhile
    other = like_the_stacks(services, store, backoff=DeliveryBackoff(base_seconds=600))
    eid = bare_execution(services)
    hook = the_hook(services, register(client, hooks, failing_once, executionId=eid))

    def another_sender_fails_it_and_its_back_off_is_cut_short() -> None:
        assert len(other.process_lane(hook, eid, 1e12).lags_ms) == 0  # attempt 1: refused
        # the back-off cut short (as a replay does), and no due entry: as if that holder died
        # between its release and writing the entry — the lane alone says which delivery failed
        store._db.update_item(
            TableName=store._table,
            Key=_lane_key(hook.id, eid),
            UpdateExpression="REMOVE nextAttemptAt, dueSet",
        )
        store.clear_due(hook.id, eid)

    try:
        with fan_out_by_hand(stack):
            services.store.append_event(eid, "lanes#1", {"type": "substep.started", "taskId": 1})
            racing.before = another_sender_fails_it_and_its_back_off_is_cut_short
            report = own.process_lane(hook, eid, 1e12, handed(services, hook, eid))
        assert len(report.lags_ms) == 1 and failing_once.requests == 2
        stored = store.get_delivery(hook.id, eid, 1)
        assert stored is not None and stored["status"] == "delivered" and stored["attempts"] == 2
    finally:
        own.close()
        other.close()
        failing_once.stop()


class Unwritable(WebhookStore):
    def create(self, deliveries: list[Any]) -> list[Any]:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "test"}}, "PutItem")


def test_deliveries_a_lane_cannot_write_fail_their_executions_records_so_the_stream_brings_them_again(
    client, hooks, services, stack, receiver
):
    """A lane that must read the log writes its handed deliveries first (here: the batch carries seq
    2 but not 1); one that cannot sends nothing, lets the lane go, and the fan-out reports its
    execution's records failed, so the stream delivers them again (the other executions' records
    are answered as usual)."""
    assert services.webhooks is not None
    broken = like_the_stacks(services, Unwritable(services.webhooks._db, services.webhooks._table))
    eid, other = bare_execution(services), bare_execution(services)
    webhook_id = register(client, hooks, receiver, executionId=eid)
    fanout = FanOut(services.webhooks, broken, None, "", inline_seconds=5)
    try:
        with fan_out_by_hand(stack):
            for n, execution in enumerate((eid, eid, other)):
                services.store.append_event(execution, f"lanes#{n}", {"type": "substep.started", "taskId": n})
            items = services.webhooks.log_after(eid, 1, 10) + services.webhooks.log_after(other, 0, 10)
            records = [stream_record(i, f"{n:05d}") for n, i in enumerate(items)]
            response = fanout.handle({"Records": records}, None)
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["00000"]
        assert receiver.keys_for(eid) == []
        lane = lane_item(services.webhooks, webhook_id, eid)
        assert "holder" not in lane  # let go: the redelivered record's lane takes it at once
    finally:
        broken.close()
