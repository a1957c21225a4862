"""Stream slots in the table (persistence/streamleases.py) and the leases the SSE endpoint holds
on them (stream/limits.py), against moto: the caps hold however admissions race."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.domain.errors import TooManyStreams
from chalicelib.persistence.keys import client_streams_pk, execution_streams_pk
from chalicelib.persistence.streamleases import StreamSlots
from chalicelib.stream.limits import Limits, StreamLeases, StreamLimits

NOW = 1_700_000_000_000  # epoch ms


def _scope() -> str:
    return execution_streams_pk(f"dag-exec_lease{uuid.uuid4().hex[:12]}")


@pytest.fixture
def slots(services) -> StreamSlots:
    return StreamSlots.beside(services.store)


def test_the_cap_plus_first_is_refused_and_a_release_frees_a_slot(slots):
    scope = _scope()
    taken = [slots.take(scope, 3, f"h{i}", NOW + 60_000, NOW) for i in range(3)]
    assert sorted(taken) == [0, 1, 2]
    assert slots.take(scope, 3, "h3", NOW + 60_000, NOW) is None
    slots.release(scope, taken[1], "h1")
    assert slots.take(scope, 3, "h3", NOW + 60_000, NOW) == taken[1]


def test_racing_admissions_never_overshoot_the_cap(slots):
    """32 admissions at once for 5 slots: exactly 5 win, whatever the stale reads say."""
    scope = _scope()
    start = threading.Barrier(32)

    def admit(i):
        start.wait()
        return slots.take(scope, 5, f"h{i}", NOW + 60_000, NOW)

    with ThreadPoolExecutor(32) as pool:
        won = [s for s in pool.map(admit, range(32)) if s is not None]
    assert len(won) == len(set(won)) <= 5
    assert slots.live_slots(scope, NOW) == set(won)
    # The losers that raced may have been refused before every slot was gone: a retry fills them.
    while len(won) < 5:
        slot = slots.take(scope, 5, "late", NOW + 60_000, NOW)
        assert slot is not None
        won.append(slot)
    assert slots.take(scope, 5, "one-too-many", NOW + 60_000, NOW) is None


def test_a_stale_read_cannot_take_a_held_slot(slots, monkeypatch):
    """The query is only a hint: a claimant that read the scope empty still loses the condition."""
    scope = _scope()
    assert slots.take(scope, 1, "first", NOW + 60_000, NOW) == 0
    monkeypatch.setattr(slots, "live_slots", lambda scope, now: set())
    assert slots.take(scope, 1, "second", NOW + 60_000, NOW) is None


def test_an_expired_lease_is_taken_over_and_its_old_holder_frees_nothing(slots):
    scope = _scope()
    assert slots.take(scope, 1, "dead", NOW + 1_000, NOW) == 0
    assert slots.take(scope, 1, "next", NOW + 62_000, NOW + 2_000) == 0  # the lease ran out
    assert slots.renew(scope, 0, "dead", NOW + 70_000) is False
    slots.release(scope, 0, "dead")
    assert slots.live_slots(scope, NOW + 3_000) == {0}  # still "next"'s


def test_a_renewed_lease_keeps_its_slot(slots):
    scope = _scope()
    assert slots.take(scope, 1, "alive", NOW + 1_000, NOW) == 0
    assert slots.renew(scope, 0, "alive", NOW + 5_000) is True
    assert slots.take(scope, 1, "other", NOW + 62_000, NOW + 2_000) is None


def test_slots_of_a_lowered_cap_still_count(slots):
    scope = _scope()
    for i in range(4):
        assert slots.take(scope, 4, f"h{i}", NOW + 60_000, NOW) is not None
    assert slots.take(scope, 2, "after-redeploy", NOW + 60_000, NOW) is None


class _Clock:
    def __init__(self) -> None:
        self.now = NOW / 1000

    def __call__(self) -> float:
        return self.now


def test_a_refusal_for_the_execution_holds_no_client_slot(services):
    eid, clock = f"dag-exec_lease{uuid.uuid4().hex[:12]}", _Clock()
    leases = StreamLeases(lambda: services.store, 5, 1, 60, clock)
    leases.take("10.0.0.1", eid)
    with pytest.raises(TooManyStreams, match="for this execution"):
        leases.take("10.0.0.2", eid)
    slots = StreamSlots.beside(services.store)
    assert slots.live_slots(client_streams_pk("10.0.0.2"), NOW) == set()


def test_a_client_over_its_cap_is_refused_before_the_executions_slots(services, monkeypatch):
    clock, ip = _Clock(), f"10.1.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    leases = StreamLeases(lambda: services.store, 1, 100, 60, clock)
    leases.take(ip, f"dag-exec_a{uuid.uuid4().hex[:8]}")
    other = f"dag-exec_b{uuid.uuid4().hex[:8]}"
    with pytest.raises(TooManyStreams, match=f"from {ip}"):
        leases.take(ip, other)
    assert StreamSlots.beside(services.store).live_slots(execution_streams_pk(other), NOW) == set()


def test_a_stream_whose_slot_was_taken_over_is_told_to_end(services):
    """Process A stalls past its lease; B takes the slot; A's next renewal finds it gone."""
    eid = f"dag-exec_lease{uuid.uuid4().hex[:12]}"
    a_clock, b_clock = _Clock(), _Clock()
    a = StreamLimits(Limits(10, 10), StreamLeases(lambda: services.store, 10, 1, 0.6, a_clock))
    b = StreamLeases(lambda: services.store, 10, 1, 0.6, b_clock)

    async def scenario() -> tuple[bool, int]:
        ended = asyncio.Event()
        admission = await a.acquire("10.0.0.1", eid, ended.set)
        b_clock.now += 5  # B's clock: A's lease (0.6 s) has run out
        b.take("10.0.0.2", eid)
        await asyncio.wait_for(ended.wait(), 5)  # A's keeper renews every 0.2 s
        await a.release(admission)
        return admission.lost, len(
            StreamSlots.beside(services.store).live_slots(execution_streams_pk(eid), NOW)
        )

    lost, live = asyncio.run(scenario())
    assert lost is True
    assert live == 1  # B's slot: A's release freed nothing of B's
