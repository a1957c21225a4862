"""A webhook lane's lease on the local stack: what its holder does when another sender wants the
lane (it goes round again, asked), and what it costs when nobody does (issue 20: the fan-out's
calls per lane per batch)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest

from chalicelib.factory import Services
from chalicelib.webhooks.dispatcher import Dispatcher, LaneReport
from chalicelib.webhooks.models import Hook
from chalicelib.webhooks.sender import Attempt, Sender
from chalicelib.webhooks.store import WebhookStore
from tests.functional.conftest import SECRET, register
from tests.support.fanout import bare_execution, fan_out_by_hand
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
    d = services.dispatcher
    gated = GatedSender(d.sender)
    holder = Dispatcher(store, d.box, gated, d.backoff)  # type: ignore[arg-type]
    contender = Dispatcher(store, d.box, d.sender, d.backoff)
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
            lane = store._db.get_item(
                TableName=store._table, Key={"PK": {"S": f"HOOK#{hook.id}"}, "SK": {"S": f"LANE#{eid}"}}
            )["Item"]
            assert lane["asked"] == {"BOOL": True}
            gated.go.set()
            held.join(30)
        # the holder sent both, in order, before it returned: nobody else was left to
        assert len(reports) == 1 and len(reports[0].lags_ms) == 2
        assert receiver.keys_for(eid) == [f"{eid}:1", f"{eid}:2"]
        lane = store._db.get_item(
            TableName=store._table, Key={"PK": {"S": f"HOOK#{hook.id}"}, "SK": {"S": f"LANE#{eid}"}}
        )["Item"]
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
    assert services.dispatcher is not None
    d = services.dispatcher
    own = Dispatcher(store, d.box, d.sender, d.backoff)
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
