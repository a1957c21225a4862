"""Webhooks end to end on the local stack: real receivers on 127.0.0.1 (flaky, down, slow), the
real stream poller and fan-out handler, the retry function, signatures, dead letters and replay;
what the fan-out logs and counts about them."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from chalicelib import fanout
from chalicelib.domain.dag import parse_job
from chalicelib.domain.model import now_ms
from chalicelib.factory import Services, build_services
from chalicelib.fanout import FanOut
from chalicelib.orchestration.submission import new_execution_id
from chalicelib.webhooks import dispatcher
from chalicelib.webhooks.dispatcher import DeliveryBackoff, Dispatcher, LaneReport
from chalicelib.webhooks.models import Hook
from tests.functional.conftest import (
    SECRET,
    call,
    echo,
    fail,
    register,
    run_job,
    settled,
    wait_for,
    wait_for_end,
)
from tests.support.fanout import bare_execution, fan_out_by_hand, record, stream_record
from tests.support.receiver import EventBus, Receiver
from tests.support.receiver import published as published_to


def run_as(services: Services, execution_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a job under an id chosen beforehand (a webhook can then filter on it from the start)."""
    services.orchestrator.submit(parse_job(body), execution_id)
    return wait_for_end(services, execution_id)


def one_attempt(services: Services) -> Dispatcher:
    """The stack's dispatcher (store, secrets, sender) with one attempt per delivery: dead at once."""
    assert services.dispatcher is not None
    d = services.dispatcher
    return Dispatcher(d.store, d.box, d.sender, DeliveryBackoff(max_attempts=1))


def stored(stack: Any, *records: dict[str, Any]) -> list[dict[str, Any]]:
    """Put the events these stream records carry into the table (the log a webhook lane reads),
    the stack's own fan-out standing aside; the records, for the test to feed by hand."""
    db = boto3.client("dynamodb")
    with fan_out_by_hand(stack):
        for r in records:
            image = r["dynamodb"]["NewImage"]
            if image["SK"]["S"].startswith("EVT#"):
                event = json.loads(image["data"]["S"]) if image["data"]["S"].startswith('{"') else {}
                extra = {"seq": {"N": str(event.get("seq", 0))}, "type": {"S": str(event.get("type", ""))}}
                db.put_item(TableName=stack.table_name, Item={**image, **extra})
    return list(records)


@contextlib.contextmanager
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every line the fan-out's and the webhooks' powertools loggers write meanwhile (any thread),
    as their own JSON formatter makes it (appended keys included), parsed; DEBUG and up."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(rec)))

    installed = []
    for powertools_logger in (fanout.logger, dispatcher.logger):
        std = logging.getLogger(powertools_logger.service)
        handler = Collect()
        handler.setFormatter(powertools_logger.registered_formatter)
        installed.append((std, handler, std.level))
        std.addHandler(handler)
        std.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for std, handler, level in installed:
            std.removeHandler(handler)
            std.setLevel(level)


RECORD_LINES = {  # every line about one record or delivery: it must carry executionId and seq
    "event",
    "malformed event record skipped",
    "event record failed; the stream delivers it again",
    "event record held back behind a failed one of its execution",
    "webhook delivery failed; will retry",
    "webhook delivery dead after its last attempt",
    "webhook lane failed",
}


def about_records(lines: list[dict[str, Any]]) -> list[tuple[str, str, str, Any]]:
    """(level, message, executionId, seq) of the lines about records; each must name both."""
    found = []
    for line in lines:
        if line["message"] in RECORD_LINES:
            assert line.get("executionId") and isinstance(line.get("seq"), int), line
            found.append((line["level"], line["message"], line["executionId"], line["seq"]))
    return found


def test_register_list_get_delete_and_the_secret_is_never_returned(client, hooks, services):
    receiver = Receiver(SECRET).reserve_port()
    webhook_id = register(
        client, hooks, receiver, types=["substep.*", "execution.completed"], description="ci"
    )
    shown = call(client, "get", f"/api/v1/webhooks/{webhook_id}").json_body
    assert shown["url"] == receiver.url and shown["types"] == ["substep.*", "execution.completed"]
    listed = call(client, "get", "/api/v1/webhooks").json_body["webhooks"]
    assert webhook_id in [h["webhookId"] for h in listed]
    for body in (shown, *listed):
        assert SECRET not in json.dumps(body) and "secret" not in body
    # stored encrypted: the raw item holds KMS ciphertext, not the secret
    raw = services.webhooks.get_hook(webhook_id)
    assert raw is not None and SECRET.encode() not in raw.sealed_secret
    assert call(client, "delete", f"/api/v1/webhooks/{webhook_id}").status_code == 200
    assert call(client, "get", f"/api/v1/webhooks/{webhook_id}").status_code == 404
    assert call(client, "delete", f"/api/v1/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("", 400, "body is empty"),
        ("{nope", 400, "not valid JSON"),
        ("[]", 400, "JSON object"),
        ({"url": "ftp://x.example/hook", "secret": SECRET}, 400, "must start with"),
        ({"url": "http://127.0.0.1/hook", "secret": "short"}, 400, "secret"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "types": ["nope"]}, 400, "matches no event type"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "types": ["heartbeat"]}, 400, "matches no event"),
        ({"url": "http://u:p@127.0.0.1/hook", "secret": SECRET}, 400, "credentials"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "colour": "red"}, 400, "colour"),
        ({"url": "http://127.0.0.1/hook", "secret": SECRET, "executionId": "a b"}, 400, "executionId"),
    ],
)
def test_bad_registrations_say_what_to_fix(client, body, status, says):
    reply = call(client, "post", "/api/v1/webhooks", body)
    assert reply.status_code == status
    text = json.dumps(reply.json_body)
    assert says in text and "Traceback" not in text


def test_bad_delivery_queries_say_what_to_fix(client, hooks):
    webhook_id = register(client, hooks, Receiver(SECRET).reserve_port())
    base = f"/api/v1/webhooks/{webhook_id}/deliveries"
    assert call(client, "get", base + "?status=lost").status_code == 400
    assert call(client, "get", base + "?limit=0").status_code == 400
    assert call(client, "get", base + "?after=x").status_code == 400
    assert call(client, "get", "/api/v1/webhooks/wh_nope/deliveries").status_code == 404
    assert call(client, "post", base + "/nope/replay").status_code == 400
    assert call(client, "post", base + "/dag-exec_x:7/replay").status_code == 404


def start_after_a_failed_attempt(
    services, webhook_id: str, receiver: Receiver, stop: threading.Event
) -> None:
    while not stop.wait(0.05):
        tried, _ = services.webhooks.deliveries(webhook_id, None, None, 100, None)
        if any(int(d.get("attempts", 0)) >= 1 for d in tried):
            receiver.start()
            return


def test_every_event_reaches_flaky_down_and_slow_receivers_once_in_order_signed(client, hooks, services):
    flaky = Receiver(SECRET, fail_first=3).start()
    slow = Receiver(SECRET, delay_seconds=0.3).start()
    down = Receiver(SECRET).reserve_port()  # nothing listens yet
    receivers = {"flaky": flaky, "slow": slow, "down": down}
    ids = {name: register(client, hooks, r) for name, r in receivers.items()}
    # down until a delivery to it has been tried and failed (not for a while: on a loaded machine
    # the first attempt can come after any fixed time); then its deliveries are retried
    stop = threading.Event()
    comes_up = threading.Thread(target=start_after_a_failed_attempt, args=(services, ids["down"], down, stop))
    try:
        comes_up.start()
        job = {"tasks": [echo(1, "a"), echo(2, "b", [1]), echo(3, "c", [1]), echo(4, "d", [2, 3])]}
        eid, events = run_job(services, job)
        expected = [f"{eid}:{e['seq']}" for e in events]
        for name, r in receivers.items():
            wait_for(lambda r=r: r.keys_for(eid) == expected, what=f"the {name} receiver's deliveries")
        assert flaky.requests > len(expected)  # it refused the first three
        for name, r in receivers.items():
            got = [x for x in r.accepted if x.event.get("executionId") == eid]
            assert [x.key for x in got] == expected, name  # each once, in seq order
            assert all(x.signature_ok for x in got), name
            assert [x.event for x in got] == events, name  # the event exactly as stored
            assert all(x.headers["X-Dagcast-Event"] == x.event["type"] for x in got)
            assert all(x.headers["X-Dagcast-Webhook-Id"] == ids[name] for x in got)
        page = call(client, "get", f"/api/v1/webhooks/{ids['down']}/deliveries?executionId={eid}").json_body
        assert [d["deliveryId"] for d in page["deliveries"]] == expected
        assert {d["status"] for d in page["deliveries"]} == {"delivered"}
        assert page["deliveries"][0]["attempts"] > 1  # it was retried while the receiver was down
    finally:
        stop.set()
        comes_up.join()
        for r in receivers.values():
            r.stop()


def test_the_last_failure_leaves_a_dead_letter_that_replay_delivers(client, hooks, services):
    receiver = Receiver(SECRET, fail_always=True).start()
    webhook_id = register(client, hooks, receiver, types=["execution.failed"])
    try:
        eid, events = run_job(services, {"tasks": [fail(1, "boom")]})
        seq = events[-1]["seq"]
        base = f"/api/v1/webhooks/{webhook_id}/deliveries"

        def dead() -> Any:
            return call(client, "get", f"{base}?status=dead&executionId={eid}").json_body["deliveries"]

        wait_for(lambda: bool(dead()), timeout=30, what="a dead letter")
        [letter] = dead()
        assert letter["deliveryId"] == f"{eid}:{seq}" and letter["eventType"] == "execution.failed"
        attempts = int(os.environ["DAGCAST_WEBHOOK_MAX_ATTEMPTS"])
        assert letter["attempts"] == attempts and letter["lastStatusCode"] == 500
        assert "HTTP 500" in letter["lastError"] and receiver.requests == attempts
        failed = call(client, "post", f"{base}/{eid}:{seq}/replay").json_body
        assert failed["replay"]["delivered"] is False and failed["status"] == "dead"
        receiver.fail_always = False
        replayed = call(client, "post", f"{base}/{eid}:{seq}/replay")
        assert replayed.status_code == 200
        assert (
            replayed.json_body["status"] == "delivered" and replayed.json_body["replay"]["delivered"] is True
        )
        assert receiver.keys_for(eid) == [f"{eid}:{seq}"]
        assert receiver.accepted[-1].signature_ok
        assert dead() == []
    finally:
        receiver.stop()


def test_an_execution_filter_and_type_filter_select_events(client, hooks, services, stack):
    receiver = Receiver(SECRET).start()
    webhook_id = register(client, hooks, receiver, types=["substep.completed"])
    other = Receiver(SECRET).start()
    other_id = register(client, hooks, other, executionId="dag-exec_someone-else")
    try:
        eid, events = run_job(services, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
        expected = [f"{eid}:{e['seq']}" for e in events if e["type"] == "substep.completed"]
        wait_for(lambda: receiver.keys_for(eid) == expected, what="the completed substeps")
        wait_for(
            lambda: settled(stack, client, webhook_id, eid) and settled(stack, client, other_id, eid),
            what="the fan-out of every event and the deliveries",
        )
        assert receiver.keys_for(eid) == expected
        assert other.requests == 0
    finally:
        receiver.stop()
        other.stop()


def test_when_every_record_of_a_batch_fails_its_deliveries_are_still_sent(client, hooks, services, stack):
    receiver = Receiver(SECRET).start()
    eid = new_execution_id()
    webhook_id = register(client, hooks, receiver, executionId=eid)
    missing = EventBus()  # never created: PutEvents fails for every record (ResourceNotFoundException)
    assert services.dispatcher is not None
    handler = FanOut(services.webhooks, services.dispatcher, missing.events, missing.name, 10).handle
    try:
        first = stored(stack, record(eid, 1))
        assert handler({"Records": first}, None) == {
            "batchItemFailures": [{"itemIdentifier": first[0]["dynamodb"]["SequenceNumber"]}]
        }
        # sent by this invocation, not left pending
        assert receiver.keys_for(eid) == [f"{eid}:1"]
        delivery = services.webhooks.get_delivery(webhook_id, eid, 1)
        assert delivery is not None and delivery["status"] == "delivered"
        batch = stored(stack, record(eid, 2), record(eid, 3))
        failed = handler({"Records": batch}, None)["batchItemFailures"]
        assert [f["itemIdentifier"] for f in failed] == [r["dynamodb"]["SequenceNumber"] for r in batch]
        # seq 2's delivery went out; so did seq 3's, whose record was held back behind it: the lane
        # reads the log, where seq 3 is (before issue 18 it waited for its record's redelivery)
        assert receiver.keys_for(eid) == [f"{eid}:1", f"{eid}:2", f"{eid}:3"]
        delivery = services.webhooks.get_delivery(webhook_id, eid, 3)
        assert delivery is not None and delivery["status"] == "delivered"
    finally:
        receiver.stop()


def test_every_log_line_about_a_record_carries_its_execution_and_seq(client, hooks, services, stack):
    receiver = Receiver(SECRET).start()
    eid, malformed = new_execution_id(), new_execution_id()
    receiver.refuse_keys = {f"{eid}:1"}
    ok_id = register(client, hooks, receiver, executionId=eid)
    # a webhook whose stored secret KMS cannot decrypt (InvalidCiphertextException): its lane fails
    broken = Hook(f"wh_{uuid.uuid4().hex}", receiver.url, None, eid, b"not a KMS ciphertext", now_ms())
    services.webhooks.put_hook(broken)
    hooks.append(broken.id)
    bus = EventBus().create()
    handler = FanOut(services.webhooks, one_attempt(services), bus.events, bus.name, 10).handle
    batch = stored(
        stack,
        record(eid, 1),
        record(eid, 2, type=""),  # EventBridge refuses it
        record(eid, 3),  # held back behind it
        record(malformed, 1, data="{not json"),
    )
    try:
        with log_lines() as lines:
            handler({"Records": batch}, None)
            fanout.logger.warning("after the batch")
            dispatcher.logger.warning("after the batch")
        mine = [x for x in about_records(lines) if x[2] in (eid, malformed)]
        assert sorted(mine, key=str) == sorted(
            [
                ("DEBUG", "event", eid, 1),
                ("DEBUG", "event", eid, 2),
                ("ERROR", "event record failed; the stream delivers it again", eid, 2),
                ("WARNING", "event record held back behind a failed one of its execution", eid, 3),
                ("ERROR", "malformed event record skipped", malformed, 1),
                ("WARNING", "webhook delivery dead after its last attempt", eid, 1),
                ("ERROR", "webhook lane failed", eid, 1),
            ],
            key=str,
        )
        by_message = {x["message"]: x for x in lines if x.get("executionId") == eid}
        assert by_message["webhook delivery dead after its last attempt"]["webhookId"] == ok_id
        assert by_message["webhook lane failed"]["webhookId"] == broken.id
        assert "InvalidCiphertextException" in by_message["webhook lane failed"]["exception"]
        assert (
            "EventBridge refused" in by_message["event record failed; the stream delivers it again"]["error"]
        )
        # the keys belong to the record: the lines after it carry none
        after = [x for x in lines if x["message"] == "after the batch"]
        assert len(after) == 2 and not any("executionId" in x or "seq" in x for x in after)
    finally:
        receiver.stop()


def test_webhook_metrics_count_deliveries_failures_dead_letters_and_lag(
    monkeypatch, capsys, client, hooks, services, stack
):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    ok, down = Receiver(SECRET).start(), Receiver(SECRET, fail_always=True).start()
    eid = new_execution_id()
    register(client, hooks, ok, executionId=eid)
    register(client, hooks, down, executionId=eid)
    bus = EventBus().create()
    handler = FanOut(services.webhooks, one_attempt(services), bus.events, bus.name, 10).handle
    written = now_ms()
    batch = stored(stack, record(eid, 1), record(eid, 2), record(eid, 3, type=""))  # the bus refuses seq 3
    try:
        capsys.readouterr()
        assert len(handler({"Records": batch}, None)["batchItemFailures"]) == 1
        received = now_ms()
        counted: dict[str, list[float]] = {}
        for line in capsys.readouterr().out.splitlines():
            if '"_aws"' in line:
                emf = json.loads(line)
                for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                    value = emf[m["Name"]]
                    counted.setdefault(m["Name"], []).extend(value if isinstance(value, list) else [value])
        # seq 3's deliveries were written before the bus refused it, so they went out too
        assert counted["WebhooksDelivered"] == [3.0]  # to the receiver that is up
        assert counted["WebhookFailures"] == [3.0] and counted["WebhookDeadLetters"] == [3.0]  # down
        lags = counted["WebhookDeliveryLag"]
        assert len(lags) == 3 and all(0 <= lag <= received - written for lag in lags), lags
        assert counted["EventsWritten"] == [2.0] and counted["EventBridgePublished"] == [2.0]
        assert counted["RecordsFailed"] == [1.0]
        assert ok.keys_for(eid) == [f"{eid}:{n}" for n in (1, 2, 3)] and down.requests == 3
    finally:
        ok.stop()
        down.stop()


def test_concurrent_executions_reach_a_failing_receiver_each_event_once_in_order(
    client, hooks, services, stack
):
    flaky = Receiver(SECRET, fail_first=8).start()
    steady = Receiver(SECRET).start()
    receivers = {"flaky": flaky, "steady": steady}
    webhook_ids = {name: register(client, hooks, r) for name, r in receivers.items()}
    job = {"tasks": [echo(1, "a"), echo(2, "b", [1]), echo(3, "c", [1]), echo(4, "d", [2, 3])]}
    try:
        ids = [services.orchestrator.submit(parse_job(job)) for _ in range(3)]  # all running at once
        expected = {eid: [f"{eid}:{e['seq']}" for e in wait_for_end(services, eid)] for eid in ids}

        def exactly_once(r: Receiver) -> bool:
            return all(r.keys_for(eid) == keys for eid, keys in expected.items())

        for name, r in receivers.items():
            wait_for(lambda r=r: exactly_once(r), what=f"the {name} receiver's deliveries")
        for name, webhook_id in webhook_ids.items():
            wait_for(lambda w=webhook_id: settled(stack, client, w, *ids), what=f"the {name} deliveries")
        for name, r in receivers.items():
            assert exactly_once(r), name  # nothing more arrived: no late duplicate
            assert all(x.signature_ok for x in r.accepted), name
        assert flaky.requests > sum(len(keys) for keys in expected.values())  # it refused the first 8
    finally:
        for r in receivers.values():
            r.stop()


def test_an_execution_filter_delivers_that_executions_events_and_no_others(client, hooks, services, stack):
    receiver = Receiver(SECRET).start()
    eid, other = new_execution_id(), new_execution_id()
    webhook_id = register(client, hooks, receiver, executionId=eid)
    job = {"tasks": [echo(1, "a"), echo(2, "b", [1])]}
    try:
        services.orchestrator.submit(parse_job(job), other)  # runs alongside
        events = run_as(services, eid, job)
        wait_for_end(services, other)
        expected = [f"{eid}:{e['seq']}" for e in events]
        wait_for(lambda: receiver.keys_for(eid) == expected, what="the filtered execution's events")
        wait_for(lambda: settled(stack, client, webhook_id, eid, other), what="the fan-out and deliveries")
        assert receiver.keys_for(eid) == expected  # all of them, once each, in order
        assert [x.event["executionId"] for x in receiver.accepted] == [eid] * len(expected)  # no other
    finally:
        receiver.stop()


def test_after_a_dead_letter_the_lane_moves_on_and_retries_back_off_exponentially(client, hooks, services):
    eid = new_execution_id()
    dead_key = f"{eid}:2"
    receiver = Receiver(SECRET, refuse_keys={dead_key}).start()
    webhook_id = register(client, hooks, receiver, executionId=eid)
    attempts = int(os.environ["DAGCAST_WEBHOOK_MAX_ATTEMPTS"])
    base = float(os.environ["DAGCAST_WEBHOOK_BACKOFF_SECONDS"])
    cap = float(os.environ["DAGCAST_WEBHOOK_BACKOFF_MAX_SECONDS"])
    seen: dict[int, tuple[int, int]] = {}  # attempts → (lastAttemptAt, nextAttemptAt) of the delivery
    try:
        with log_lines() as lines:
            events = run_as(services, eid, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})

            def dead() -> bool:
                item = services.webhooks.get_delivery(webhook_id, eid, 2)
                if item is not None and "nextAttemptAt" in item:
                    seen[int(item["attempts"])] = (int(item["lastAttemptAt"]), int(item["nextAttemptAt"]))
                return item is not None and item["status"] == "dead"

            wait_for(dead, timeout=60, what="the dead letter")
            expected = [f"{eid}:{e['seq']}" for e in events if e["seq"] != 2]
            wait_for(lambda: receiver.keys_for(eid) == expected, what="the events after the dead one")
        # the lane moved on: seq 3 went out after seq 2's last attempt, and everything after it too
        tries = receiver.attempts_at(dead_key)
        assert len(tries) == attempts
        assert receiver.attempts_at(f"{eid}:3")[0] > tries[-1]
        assert receiver.attempts_at(f"{eid}:1")[-1] < tries[0]
        # back-off: after the n-th failure the next try waits base × 2^(n-1), capped, minus ≤ 20% jitter
        nominal = [min(cap, base * 2 ** (n - 1)) for n in range(1, attempts)]
        for n, (last, nxt) in seen.items():
            assert 0.8 * nominal[n - 1] * 1000 - 1 <= nxt - last <= nominal[n - 1] * 1000, (n, seen)
        assert len(seen) >= 3 and max(seen) >= 4, seen  # observed while it grew and once capped
        gaps = [b - a for a, b in itertools.pairwise(tries)]
        for gap, wait in zip(gaps, nominal, strict=True):
            # never early; late by at most a retry pass (0.2 s here) and the machine's load
            assert 0.8 * wait - 0.002 <= gap <= wait + 1.0, (gaps, nominal)
        assert gaps[2] > gaps[0]  # 0.8 s after the third failure, 0.2 s after the first
        # each retry and the dead letter were logged with the delivery's coordinates
        logged = [m for _, m, e, seq in about_records(lines) if (e, seq) == (eid, 2) and m != "event"]
        retries = ["webhook delivery failed; will retry"] * (attempts - 1)
        assert logged == [*retries, "webhook delivery dead after its last attempt"]
    finally:
        receiver.stop()


def test_replaying_a_pending_delivery_queues_its_lane(client, hooks, services, stack):
    receiver = Receiver(SECRET, fail_always=True).start()
    webhook_id = register(client, hooks, receiver, types=["execution.completed"])
    base = f"/api/v1/webhooks/{webhook_id}/deliveries"
    try:
        eid, events = run_job(services, {"tasks": [echo(1, "a")]})
        seq = events[-1]["seq"]

        def backing_off() -> bool:
            item = services.webhooks.get_delivery(webhook_id, eid, seq)
            return (
                item is not None
                and item["status"] == "pending"
                and int(item.get("nextAttemptAt", 0)) - now_ms() > 300
            )

        wait_for(backing_off, timeout=30, what="a delivery backing off")
        before = services.webhooks.get_delivery(webhook_id, eid, seq)
        assert before is not None
        receiver.fail_always = False
        reply = call(client, "post", f"{base}/{eid}:{seq}/replay")
        assert reply.status_code == 202, reply.json_body
        assert reply.json_body["replay"] == {"queued": True} and reply.json_body["status"] == "pending"
        wait_for(lambda: receiver.keys_for(eid) == [f"{eid}:{seq}"], what="the queued delivery")
        wait_for(lambda: settled(stack, client, webhook_id, eid), what="the lane to finish")
        assert receiver.keys_for(eid) == [f"{eid}:{seq}"]  # once
        assert receiver.accepted[-1].headers["X-Dagcast-Attempt"] == str(before["attempts"] + 1)
        page = call(client, "get", f"{base}?executionId={eid}").json_body["deliveries"]
        assert [(d["seq"], d["status"]) for d in page] == [(seq, "delivered")]
    finally:
        receiver.stop()


def test_closed_services_stop_their_lane_threads_and_send_nothing_more(services):
    own = build_services(services.settings)
    assert own.dispatcher is not None
    hook = Hook(f"wh_{uuid.uuid4().hex}", "http://127.0.0.1:9/", None, None, b"unused", now_ms())
    assert own.dispatcher.process([(hook, new_execution_id())], time.time() + 5) == [LaneReport()]
    own.close()  # after the lanes in hand (the one above found nothing to send)
    with pytest.raises(RuntimeError):
        own.dispatcher.process([(hook, new_execution_id())], time.time() + 5)


def test_a_partition_split_that_brings_an_executions_records_out_of_order_loses_no_webhook_event(
    client, hooks, services, stack
):
    """DynamoDB Streams orders records per item; a split put one execution's events on two shards
    processed in parallel. The lane used to send whatever deliveries it found after its cursor: with
    shard A's odd seqs fanned out first it sent 1, 3, 5, 7 and moved its cursor past 2, 4, 6, which
    shard B then wrote below it — never sent. The lane now reads the event log from its cursor."""
    everything, completed = Receiver(SECRET).start(), Receiver(SECRET).start()
    eid = bare_execution(services)
    register(client, hooks, everything, executionId=eid)
    register(client, hooks, completed, executionId=eid, types=["substep.completed"])
    types = ["substep.started", "substep.completed", "execution.updated"]
    bus = EventBus().create()
    assert services.dispatcher is not None
    handle = FanOut(services.webhooks, services.dispatcher, bus.events, bus.name, 10).handle
    try:
        with fan_out_by_hand(stack):
            for n in range(12):
                services.store.append_event(eid, f"test#{n}", {"type": types[n % 3], "taskId": n})
            items = services.webhooks.log_after(eid, 0, 100)
            assert [i["seq"] for i in items] == list(range(1, 13))
            records = {int(i["seq"]): stream_record(i, f"{int(i['seq']):05d}") for i in items}
            shard_a = [records[s] for s in (1, 3, 5, 7, 9, 11)]
            shard_b = [records[s] for s in (2, 4, 8, 10, 12)]  # 6 withheld: it comes last
            assert handle({"Records": shard_a}, None) == {"batchItemFailures": []}
            # both shards at once, one record per batch; shard A redelivered (duplicates)
            with ThreadPoolExecutor(2) as shards:
                for outcome in shards.map(
                    lambda shard: [handle({"Records": [r]}, None) for r in shard], [shard_b, shard_a]
                ):
                    assert all(o == {"batchItemFailures": []} for o in outcome)
            assert handle({"Records": [records[6], records[3]]}, None) == {"batchItemFailures": []}
        wait_for(lambda: all(settled(stack, client, h, eid) for h in hooks[-2:]), what="lanes settled")
        assert everything.keys_for(eid) == [f"{eid}:{s}" for s in range(1, 13)]
        assert completed.keys_for(eid) == [
            f"{eid}:{s}" for s in range(1, 13) if types[(s - 1) % 3] == types[1]
        ]
        # EventBridge: every event at least once (its consumers order by seq)
        assert {s for e, s in published_to(bus) if e == eid} == set(range(1, 13))
    finally:
        everything.stop()
        completed.stop()


def test_a_webhook_gets_no_event_stored_before_it_was_registered(client, hooks, services, stack):
    """A new lane reads the log from seq 1: events stored before the registration must not be sent
    (no backfill), whether a stream record or the lane finds them."""
    receiver = Receiver(SECRET).start()
    eid = bare_execution(services)
    assert services.dispatcher is not None
    handle = FanOut(services.webhooks, services.dispatcher, None, "", 10).handle
    try:
        with fan_out_by_hand(stack):
            services.store.append_event(eid, "before#1", {"type": "substep.started", "taskId": 1})
            services.store.append_event(eid, "before#2", {"type": "substep.started", "taskId": 2})
            time.sleep(0.01)  # the registration's createdAt must be later than both (time is the point)
            register(client, hooks, receiver, executionId=eid)
            services.store.append_event(eid, "after#3", {"type": "substep.started", "taskId": 3})
            items = services.webhooks.log_after(eid, 0, 100)
            records = [stream_record(i, f"{int(i['seq']):05d}") for i in items]
            assert handle({"Records": records[::-1]}, None) == {"batchItemFailures": []}
        wait_for(lambda: settled(stack, client, hooks[-1], eid), what="lane settled")
        assert receiver.keys_for(eid) == [f"{eid}:3"]
    finally:
        receiver.stop()
