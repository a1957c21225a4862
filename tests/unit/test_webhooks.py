"""The pure parts of webhooks: the signature, the back-off, a delivery's shape and view, and the
dispatcher's own lane threads (no AWS: the lanes' work is replaced)."""

from __future__ import annotations

import base64
import re
import threading
import time
from typing import Any, cast

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chalicelib.config import Settings
from chalicelib.domain.errors import InvalidWebhook
from chalicelib.domain.model import DeliveryStatus
from chalicelib.webhooks.dispatcher import DeliveryBackoff, Dispatcher, LaneReport
from chalicelib.webhooks.models import STATUSES, Hook, delivery_item, delivery_view, parse_spec
from chalicelib.webhooks.signing import headers, key_of, legacy_sign, new_key, sign, whsec
from chalicelib.webhooks.store import delivery_sk, hook_pk, keyed_delivery

SETTINGS = Settings(table_name="tbl", auth=False)
HOOK = Hook("wh_1", "https://hooks.example.com/x", None, None, b"sealed", 1_700_000_000_000)


def test_the_deprecated_signature_is_unchanged_for_a_secret_registered_before_the_standard():
    """X-Dagcast-Signature is kept for one release: the same value as before for the same secret."""
    body = b'{"type":"execution.started","seq":1}'
    assert legacy_sign(key_of("s3cret-s3cret-s3cret"), 1795669236, body) == (
        "t=1795669236,v1=8c2797d7ddc0ce0da36dc243ddb0f71b76de4e33728f86d5313ab87cbc9f2bdf"
    )


def test_the_signature_is_the_standard_webhooks_one_on_the_specs_own_example():
    """The example of the Standard Webhooks spec (and of its libraries' tests)."""
    key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_headers_verify_with_the_library_and_a_tampered_request_does_not():
    key, body, now = new_key(), b'{"type":"execution.completed","seq":7}', int(time.time())
    sent = headers(key, "dag-exec_x:7", now, body)
    assert sent["webhook-id"] == "dag-exec_x:7" and sent["webhook-timestamp"] == str(now)
    assert Webhook(whsec(key)).verify(body, sent) == {"type": "execution.completed", "seq": 7}
    for tampered_body, tampered in (
        (body.replace(b"7}", b"8}"), sent),
        (body, {**sent, "webhook-id": "dag-exec_x:8"}),
        (body, {**sent, "webhook-timestamp": str(now + 1)}),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(whsec(key)).verify(tampered_body, tampered)
    with pytest.raises(WebhookVerificationError, match="too old"):  # why each attempt signs anew
        Webhook(whsec(key)).verify(body, headers(key, "dag-exec_x:7", now - 301, body))


def test_a_secret_from_before_the_standard_is_its_utf8_bytes_and_whsec_is_their_base64():
    assert key_of("s3cret-s3cret-s3cret") == b"s3cret-s3cret-s3cret"
    assert whsec(key_of("s3cret-s3cret-s3cret")) == "whsec_czNjcmV0LXMzY3JldC1zM2NyZXQ="
    key = new_key()
    assert len(key) == 32 and key_of(whsec(key)) == key


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("whsec_not*base64*at*all!!", "standard base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24-64 bytes of key in base64 (this one 23)"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "(this one 65)"),
    ],
)
def test_a_malformed_whsec_secret_is_refused_saying_why(secret, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        key_of(secret)
    with pytest.raises(InvalidWebhook) as refused:
        parse_spec({"url": "https://hooks.example.com/x", "secret": secret}, SETTINGS)
    assert any(p.startswith("secret: ") and says in p for p in refused.value.problems), refused.value.problems


def test_a_registration_without_a_secret_gets_a_new_key_and_one_with_a_secret_keeps_it():
    url = "https://hooks.example.com/x"
    made = parse_spec({"url": url}, SETTINGS)
    assert made.secret is None and len(made.key()) == 32 and made.key() != made.key()
    given = whsec(new_key())
    assert parse_spec({"url": url, "secret": given}, SETTINGS).key() == key_of(given)


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

    def lane(hook: Hook, execution_id: str, deadline: float, handed: Any = None) -> LaneReport:
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
