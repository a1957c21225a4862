"""The pure parts of webhooks: the signature, the back-off, a delivery's shape and view, and the
dispatcher's own lane threads (no AWS: the lanes' work is replaced)."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from chalicelib.domain.model import DeliveryStatus
from chalicelib.webhooks.dispatcher import DeliveryBackoff, Dispatcher, LaneReport
from chalicelib.webhooks.models import STATUSES, Hook, delivery_item, delivery_view
from chalicelib.webhooks.signing import SIGNATURE_HEADER, sign
from chalicelib.webhooks.store import delivery_sk, hook_pk, keyed_delivery

HOOK = Hook("wh_1", "https://hooks.example.com/x", None, None, b"sealed", 1_700_000_000_000)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"type":"execution.started","seq":1}'
    assert SIGNATURE_HEADER == "X-Dagcast-Signature"
    assert sign("s3cret-s3cret-s3cret", 1795669236, body) == (
        "t=1795669236,v1=8c2797d7ddc0ce0da36dc243ddb0f71b76de4e33728f86d5313ab87cbc9f2bdf"
    )


def test_the_back_off_doubles_up_to_its_cap_with_at_most_20_percent_off():
    backoff = DeliveryBackoff(max_attempts=5, base_seconds=2.0, max_seconds=10.0)
    for attempts, full_ms in ((1, 2000), (2, 4000), (3, 8000), (4, 10_000), (9, 10_000)):
        for _ in range(20):
            assert 0.8 * full_ms <= backoff.delay_ms(attempts) <= full_ms


def test_a_new_delivery_is_pending_and_its_item_is_keyed_by_hook_execution_and_seq():
    event = {"type": "execution.started", "executionId": "e-1", "seq": 7, "timestamp": 123}
    delivery = delivery_item(HOOK, event, '{"x":1}')
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert (delivery["eventType"], delivery["eventTimestamp"], delivery["body"]) == (
        "execution.started",
        123,
        '{"x":1}',
    )
    item = keyed_delivery(delivery)
    assert (
        (item["PK"], item["SK"])
        == (hook_pk("wh_1"), delivery_sk("e-1", 7))
        == ("HOOK#wh_1", "DLV#e-1#000000000007")
    )
    assert list(item)[:2] == ["PK", "SK"] and "PK" not in delivery


def test_the_view_of_a_delivery_has_its_id_and_state_but_not_its_body():
    item = keyed_delivery(delivery_item(HOOK, {"type": "t", "executionId": "e-1", "seq": 2}, "{}"))
    view = delivery_view(item)
    assert view["deliveryId"] == "e-1:2" and view["status"] == "pending"
    assert not {"body", "PK", "SK", "eventTimestamp"} & set(view)


def test_the_status_filter_accepts_exactly_the_delivery_statuses():
    assert STATUSES == ("pending", "delivered", "dead") == tuple(DeliveryStatus)


def test_a_dispatcher_starts_its_lane_threads_on_first_use_and_close_stops_them():
    before = threading.active_count()
    dispatcher = Dispatcher(cast(Any, None), cast(Any, None), cast(Any, None), DeliveryBackoff(), 2)
    assert threading.active_count() == before  # building one starts nothing
    ran_on: list[threading.Thread] = []

    def lane(hook: Hook, execution_id: str, deadline: float, recheck: bool = True) -> LaneReport:
        ran_on.append(threading.current_thread())
        return LaneReport()

    dispatcher.process_lane = lane  # type: ignore[method-assign]
    reports = dispatcher.process([(HOOK, "a"), (HOOK, "b"), (HOOK, "c")], deadline=0)
    assert len(reports) == 3 and threading.main_thread() not in ran_on
    dispatcher.close()
    assert not any(t.is_alive() for t in ran_on)
    with pytest.raises(RuntimeError):  # nothing is sent after close
        dispatcher.process([(HOOK, "d")], deadline=0)


def test_a_webhook_takes_only_events_stored_after_it_was_registered():
    """A new lane reads its execution's log from seq 1; without this rule it would send a webhook
    registered mid-execution every earlier event (a backfill the contract rules out), and the
    stream handlers and the lanes would disagree on which events a webhook gets."""
    created = HOOK.created_at
    event = {"type": "execution.started", "executionId": "e-1", "seq": 1}
    assert not HOOK.matches({**event, "timestamp": created - 1})
    assert HOOK.matches({**event, "timestamp": created}) and HOOK.matches({**event, "timestamp": created + 1})


def test_redrive_reads_a_batch_of_the_queue_as_its_records_say_or_by_arrival_times():
    from dagcast.cli.entry import build_parser
    from dagcast.redrive import _epoch_ms

    args = build_parser().parse_args(["fanout", "redrive", "--stage", "prod", "--dry-run"])
    assert (args.command, args.action, args.stage, args.dry_run, args.margin_minutes) == (
        "fanout",
        "redrive",
        "prod",
        True,
        15.0,
    )
    # the on-failure message's arrival times (AWS writes them with a Z)
    assert _epoch_ms("2024-01-02T03:04:05.678Z") == 1_704_164_645_678


def test_the_errors_redrive_reads_as_expired_records_are_ones_dynamodb_streams_answers():
    """moto never trims a stream, so the functional test can only show a stream that is gone; the
    error AWS answers for records past the 24 h retention must still be one the service has."""
    import botocore.session

    from dagcast.redrive import EXPIRED_CODES

    model = botocore.session.get_session().get_service_model("dynamodbstreams")
    errors = {
        e.name for op in ("GetShardIterator", "GetRecords") for e in model.operation_model(op).error_shapes
    }
    assert errors >= EXPIRED_CODES and "TrimmedDataAccessException" in EXPIRED_CODES
