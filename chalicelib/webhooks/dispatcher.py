"""Sending the lanes: who may send a (webhook, execution) lane (its lease), in what order (seq),
what a failed attempt means (back off, or dead after the last one), the retry function's sweep, and
replay.

A lane's source is the execution's event log, read from the lane's cursor: the stream records
that wrote deliveries only trigger it. DynamoDB Streams orders records per item, and one
execution's events can come on two shards processed in parallel, so a delivery for seq 7 may be
written before seq 6's; a lane that sent whatever deliveries it found would move its cursor past 6
before 6 arrived. The log is gapless and ordered, so the lane walks it seq by seq, creates the
delivery of a matching event that no record has written yet, and never moves its cursor over a
seq it has not settled (delivered, dead, or not for this webhook).

The dispatcher owns the thread pool its lanes run on: lanes go in parallel, each strictly in
order. The pool's threads start with the first lanes sent, never at import or construction, and
``close()`` stops them. It does not write items itself (store.py), build requests (sender.py) or
open secrets (secrets.py); it decides, and counts what it did in ``LaneReport``s for the caller's
metrics.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from ..config import Settings
from ..domain.model import DeliveryStatus, now_ms
from ..persistence.table import Item
from .models import Hook, delivery_item, delivery_view
from .secrets import SecretBox
from .sender import Attempt, Sender
from .store import LEASE_MS, WebhookStore

logger = Logger(service="dagcast-webhooks")

_PAGE = 100  # events of the log read per query of a lane
_LANE_THREADS = 16  # lanes sent at once by one dispatcher
_ASKS = 5  # holders a sender asks in vain (each let go first) before it leaves the lane to its due entry


@dataclass
class LaneReport:
    """What one lane's processing did, for metrics (collected in the calling thread)."""

    lags_ms: list[int] = field(default_factory=list)
    failures: int = 0
    dead: int = 0
    errors: int = 0
    unwritten: bool = False  # the deliveries it was handed could not be written (nothing was sent)


@dataclass(frozen=True)
class Handed:
    """What a stream batch brings one lane: the deliveries of its records for the lane's webhook
    (models.delivery_item, not yet written), and the seq of every event record of the execution the
    fan-out took through (for this webhook or not: it matched each one against every webhook)."""

    deliveries: list[Item]
    seqs: frozenset[int]


class Unwritten(RuntimeError):
    """The deliveries handed to a lane could not be written (nothing of them was sent)."""


@dataclass
class InHand:
    """A lane task's deliveries, and the seqs its batch carried. ``written``: as stored (written by
    this task, or found); until then, items as they will be stored, unwritten — a lane that holds
    its lease sends them and writes each once, with its outcome."""

    items: dict[int, Item] = field(default_factory=dict)
    seqs: frozenset[int] = frozenset()
    written: bool = True

    def first_page(self, lane: Item, cursor: int) -> list[tuple[int, Item | None]] | None:
        """The lane's first page from what the batch carried — no read of the log — when the batch
        carried the event right after the cursor: every seq from there while the batch carried it
        (a delivery in hand, or None: not for this webhook). Empty when the cursor is past them all.
        None when the log must be read: a gap before the batch's events; a delivery in hand that a
        holder tried and failed since it was handed (named on the lane: ``failedSeq``; one that
        succeeded or died moved the cursor past it), dropped here so it is read again; or a due
        entry on the lane (the retry function was told to look: the log says what for)."""
        if int(lane.get("failedSeq", -1)) in self.items:
            self.items.pop(int(lane["failedSeq"]))
            return None
        if not self.seqs or lane.get("dueSet"):
            return None
        if cursor >= max(self.seqs):
            return []
        page: list[tuple[int, Item | None]] = []
        seq = cursor + 1
        while seq in self.seqs:
            page.append((seq, self.items.get(seq)))
            seq += 1
        return page or None


@dataclass(frozen=True)
class DeliveryBackoff:
    """When a failed delivery is tried again, and after how many attempts it is dead."""

    max_attempts: int = 12
    base_seconds: float = 2.0
    max_seconds: float = 1800.0

    @classmethod
    def from_settings(cls, s: Settings) -> DeliveryBackoff:
        return cls(s.webhook_max_attempts, s.webhook_backoff_seconds, s.webhook_backoff_max_seconds)

    def delay_ms(self, attempts: int) -> int:
        """After ``attempts`` failures: base × 2^(attempts-1), capped, with up to 20% jitter off."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1))
        return int(delay * 1000 * (1 - 0.2 * random.random()))


class Dispatcher:
    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        sender: Sender,
        backoff: DeliveryBackoff,
        lane_threads: int = _LANE_THREADS,
    ) -> None:
        self.store = store
        self.box = box
        self.sender = sender
        self.backoff = backoff
        # A ThreadPoolExecutor starts its threads on the first submit, so building one is free.
        self._lanes = ThreadPoolExecutor(max_workers=lane_threads, thread_name_prefix="dagcast-webhook")

    def close(self) -> None:
        """Wait for the lanes in hand, then stop the pool's threads; nothing is sent after this.
        The sender is its creator's to close (it may serve another dispatcher)."""
        self._lanes.shutdown(wait=True)

    def process(
        self,
        lanes: Iterable[tuple[Hook, str]],
        deadline: float,
        handed: Mapping[tuple[str, str], Handed] | None = None,
    ) -> list[LaneReport]:
        """Send what is pending in each lane (lanes in parallel, each in order) until ``deadline``.

        ``handed``: per (webhook id, execution id), what the caller's stream batch brings the lane
        (``Handed``). A lane that takes its lease and whose batch carried the events right after
        its cursor sends them without reading the log or the deliveries and writes each once, with
        its outcome; otherwise it writes them first (store.create: in its thread, so a batch's
        lanes write in parallel), keeping the stored items in hand instead of reading them back.

        A sender that finds a lane held asks its holder to go round once more (store.ask): another
        stream handler (one execution's records can arrive on two shards at once) or the retry
        function may hold it, and the delivery it wrote must not wait for the holder's lease or the
        retry function's next sweep. Unasked, a holder lets the lane go without reading it again.
        """
        handed = handed or {}
        return list(
            self._lanes.map(
                lambda lane: self.process_lane(lane[0], lane[1], deadline, handed.get((lane[0].id, lane[1]))),
                lanes,
            )
        )

    def process_lane(
        self, hook: Hook, execution_id: str, deadline: float, handed: Handed | None = None
    ) -> LaneReport:
        report = LaneReport()
        # Every line about the lane carries these (this thread only); ``seq``: the delivery in hand.
        logger.thread_safe_append_keys(webhookId=hook.id, executionId=execution_id)
        in_hand = InHand()
        if handed is not None:
            items = {int(d["seq"]): self.store.as_stored(d) for d in handed.deliveries}
            in_hand = InHand(items, handed.seqs, written=not items)
        try:
            self._process_lane(hook, execution_id, deadline, report, in_hand)
        except Unwritten:
            report.errors, report.unwritten = 1, True  # the caller has the stream bring them again
            logger.exception("webhook deliveries could not be written")
        except Exception:
            report.errors += 1
            logger.exception("webhook lane failed")
            # the lane's lease runs out; the retry function looks again then
            self.store.set_due(hook.id, execution_id, now_ms() + LEASE_MS)
        finally:
            logger.thread_safe_remove_keys(["webhookId", "executionId", "seq"])
        return report

    def _process_lane(
        self, hook: Hook, execution_id: str, deadline: float, report: LaneReport, in_hand: InHand
    ) -> None:
        owner, misses = uuid.uuid4().hex, 0
        while True:
            taken, lane = self.store.acquire(hook.id, execution_id, owner, now_ms())
            if not taken:
                self._write(in_hand)  # durable before the lane is left to its holder or a sweep
                if self._leave_to_holder(hook, execution_id, lane):
                    return
                misses += 1  # its holder let go between the two calls: take the lane now
                if misses == _ASKS:  # it changed hands every time: the retry function's next sweep
                    self.store.set_due(hook.id, execution_id, now_ms())
                    return
                continue
            lease_end, start = int(lane["leaseUntil"]), int(lane.get("cursor", 0))
            first = in_hand.first_page(lane, start)
            if first is None:  # from the log, which finds the deliveries stored
                self._write(
                    in_hand, functools.partial(self.store.release, hook.id, execution_id, owner, start, None)
                )
            cursor, retry_at, done = self._drain(
                hook, execution_id, (start, lease_end), deadline, report, in_hand, first
            )
            in_hand = InHand()  # the next round reads what others may have written meanwhile
            asked = self.store.release(hook.id, execution_id, owner, cursor, retry_at)
            if retry_at is not None:
                self.store.set_due(hook.id, execution_id, retry_at)
                return
            if not done:  # out of time: the retry function continues
                self.store.set_due(hook.id, execution_id, now_ms())
                return
            # Asked: another sender wrote a delivery while we held the lease, and left it to us;
            # its event is in the log, so going round again sends it now.
            if not asked:
                if lane.get("dueSet"):
                    self.store.clear_due(hook.id, execution_id)
                return

    def _write(self, in_hand: InHand, release: Callable[[], Any] | None = None) -> None:
        """Write the deliveries in hand (conditional puts: ones already there are kept, and taken
        in hand as stored); ``Unwritten`` when that fails — after letting the lane go, when held."""
        if in_hand.written:
            return
        try:
            stored = self.store.create(list(in_hand.items.values()))
        except Exception as exc:
            if release is not None:
                with contextlib.suppress(Exception):
                    release()
            raise Unwritten(str(exc)) from exc
        in_hand.items, in_hand.written = {int(d["seq"]): d for d in stored}, True

    def _leave_to_holder(self, hook: Hook, execution_id: str, lane: Item) -> bool:
        """The lane was not taken: leave it to its holder, or to its back-off's due entry. False
        when the holder let go meanwhile (the caller takes the lane)."""
        holder, lease_until = lane.get("holder"), int(lane.get("leaseUntil", 0))
        if holder is None or lease_until < now_ms():  # backing off: the due entry says when
            self.store.set_due(hook.id, execution_id, max(int(lane.get("nextAttemptAt", 0)), now_ms()))
            return True
        # The due entry first, for a holder that dies before it answers; a live holder answers
        # the ask as it releases (and, seeing the entry when it takes the lane again, clears it),
        # so the delivery waits for no sweep of the retry function.
        self.store.set_due(hook.id, execution_id, lease_until)
        return self.store.ask(hook.id, execution_id, str(holder))

    def _drain(
        self,
        hook: Hook,
        execution_id: str,
        lease: tuple[int, int],
        deadline: float,
        report: LaneReport,
        in_hand: InHand,
        first: list[tuple[int, Item | None]] | None = None,
    ) -> tuple[int, int | None, bool]:
        """(cursor, retry_at when backing off, whether the lane ran dry), from ``lease``'s (cursor,
        end). ``first``: the first page when the stream batch carried it (InHand.first_page), else
        it is read from the log; its deliveries, when not written yet, are written once each as
        they end — sent, failed, or not reached (pending)."""
        cursor, lease_end = lease
        secret = b""  # the HMAC key, opened for the first delivery to send (a failure then names its seq)
        margin_ms = int((self.sender.timeout + 5) * 1000)  # room for one more POST within the lease
        while True:
            unwritten: list[Item] = []
            if first is not None:  # what the batch carried; later events come with their own records
                page, ran_dry, first = first, True, None
                if not in_hand.written:
                    unwritten = [item for _, item in page if item is not None]
            else:
                page, ran_dry = self._page(hook, execution_id, cursor, in_hand.items)
            changed: list[Item] = []
            try:
                for seq, item in page:
                    if item is None or item["status"] != DeliveryStatus.PENDING:
                        cursor = seq  # not for this webhook, or settled
                        continue
                    if time.time() >= deadline or now_ms() > lease_end - margin_ms:
                        return cursor, None, False
                    logger.thread_safe_append_keys(seq=seq)
                    secret = secret or self.box.open(hook)
                    result = self._attempt(hook, secret, item)
                    changed.append(item)
                    if result.ok:
                        report.lags_ms.append(result.at - int(item["eventTimestamp"]))
                    elif (retry_at := self._after_failure(item, result, report)) is not None:
                        return cursor, retry_at, False
                    cursor = seq  # delivered, or dead: the lane moves on
                if ran_dry:  # the re-check after release sees late arrivals
                    return cursor, None, True
            finally:
                # the page's unwritten deliveries not attempted are written pending
                attempted = {id(c) for c in changed}
                self.store.save(changed + [i for i in unwritten if id(i) not in attempted])

    def _page(
        self, hook: Hook, execution_id: str, cursor: int, in_hand: dict[int, Item]
    ) -> tuple[list[tuple[int, Item | None]], bool]:
        """The lane's next events from the log, gapless from ``cursor``: (seq, its delivery — the
        one in hand, else read, or written now if no stream record has written it yet — or None for
        an event this webhook does not take), and whether the page reached the end of the log (or a
        gap, which it never skips)."""
        events = self.store.log_after(execution_id, cursor, _PAGE)
        seqs: list[int] = []
        wanted: list[Item] = []
        for expected, item in enumerate(events, start=cursor + 1):
            if int(item["seq"]) != expected:  # cannot happen with the append protocol; never step over it
                logger.warning("gap in the event log; the lane waits at it", extra={"seq": expected})
                break
            seqs.append(expected)
            if expected in in_hand:
                continue
            body = str(item.get("data", ""))
            try:
                event = json.loads(body)
            except ValueError:  # malformed: the fan-out skips it too (MalformedEvents)
                continue
            # a lane exists only for a webhook of the execution's tenant (the fan-out pairs them
            # by tenant), so the tenant check is the hook's own; its filter and registration time remain
            if isinstance(event, dict) and hook.matches(event, hook.tenant):
                wanted.append(delivery_item(hook, event, body))
        stored = {int(d["seq"]): d for d in self.store.enqueue(wanted)} if wanted else {}
        stored.update((seq, d) for seq, d in in_hand.items() if seq in seqs)
        page: list[tuple[int, Item | None]] = []
        wanted_seqs = {int(d["seq"]) for d in wanted} | set(in_hand)
        for seq in seqs:
            if seq in wanted_seqs and seq not in stored:
                return page, True  # its delivery could not be read back: stop before it, never skip it
            page.append((seq, stored.get(seq)))
        return page, len(seqs) < _PAGE

    def _after_failure(self, item: Item, result: Attempt, report: LaneReport) -> int | None:
        """A failed attempt: when to try again, or None when that was the last (the item is dead)."""
        report.failures += 1
        log_extra = {"attempt": item["attempts"], "error": result.error}
        attempts = int(item["attempts"])
        if attempts >= self.backoff.max_attempts:
            item["status"] = DeliveryStatus.DEAD
            report.dead += 1
            logger.warning("webhook delivery dead after its last attempt", extra=log_extra)
            return None
        retry_at = result.at + self.backoff.delay_ms(attempts)
        item["nextAttemptAt"] = retry_at
        logger.info("webhook delivery failed; will retry", extra={**log_extra, "retryAt": retry_at})
        return retry_at

    def _attempt(self, hook: Hook, secret: bytes, item: Item) -> Attempt:
        """POST the delivery once and record the outcome on the item (saved by the caller)."""
        attempts = int(item.get("attempts", 0)) + 1
        result = self.sender.post(hook, secret, item, attempts)
        item.update(attempts=attempts, lastAttemptAt=result.at, lastError=result.error or None)
        item.pop("nextAttemptAt", None)
        if result.status_code is not None:
            item["lastStatusCode"] = result.status_code
        if result.ok:
            item.update(status=DeliveryStatus.DELIVERED, deliveredAt=result.at)
        return result

    def sweep(self, deadline: float) -> list[LaneReport]:
        """The retry function: every lane whose due time has come, until ``deadline``."""
        hooks = {h.id: h for h in self.store.hooks()}
        lanes: list[tuple[Hook, str]] = []
        for webhook_id, execution_id in self.store.due(now_ms()):
            hook = hooks.get(webhook_id)
            if hook is None:  # deleted: its deliveries stay (and expire); nothing more is sent
                self.store.clear_due(webhook_id, execution_id)
            else:
                lanes.append((hook, execution_id))
        return self.process(lanes, deadline)

    def run_retries(self, budget_seconds: float) -> list[LaneReport]:
        """The scheduled retry function: sweep, then sleep until the next due lane, within the budget."""
        end = time.time() + budget_seconds
        reports = self.sweep(max(end, time.time() + self.sender.timeout + 1))
        while True:
            due = [int(i["dueAt"]) for i in self.store.due_items()]
            if not due or min(due) / 1000 > end - 1:
                return reports
            time.sleep(max(0.0, min(due) / 1000 - time.time()))
            reports += self.sweep(end)

    def replay(self, hook: Hook, item: Item) -> dict[str, Any]:
        """Send a settled delivery again now (once); a pending one is retried now by its lane."""
        if item["status"] == DeliveryStatus.PENDING:
            self.store.retry_now(hook.id, str(item["executionId"]))
            return {**delivery_view(item), "replay": {"queued": True}}
        result = self._attempt(hook, self.box.open(hook), item)
        self.store.save([item])
        replay = {"delivered": result.ok, "statusCode": result.status_code, "error": result.error or None}
        return {**delivery_view(item), "replay": replay}
