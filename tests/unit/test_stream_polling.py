"""The feed's poll schedule and the gap rule of its eventually consistent reads (stream/polling.py)."""

from __future__ import annotations

from itertools import islice

import pytest

from chalicelib.config import SSE_PROFILES
from chalicelib.stream.polling import PollSchedule, needs_consistent_read


def test_on_a_quiet_log_the_interval_doubles_from_the_first_empty_poll_up_to_the_ceiling():
    schedule = PollSchedule(fast=0.25, ceiling=2.0, factor=2.0, hold=0.0)
    assert list(islice(schedule.quiet_intervals(), 7)) == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_within_the_hold_polls_stay_fast_then_back_off():
    schedule = PollSchedule(fast=0.25, ceiling=2.0, factor=2.0, hold=1.0)
    # polls at 0.25, 0.5, 0.75, 1.0 (still within the hold), then 0.5, 1, 2, 2
    assert list(islice(schedule.quiet_intervals(), 8)) == [0.25, 0.25, 0.25, 0.25, 0.5, 1.0, 2.0, 2.0]


def test_an_event_brings_the_interval_back_to_fast_at_once():
    schedule = PollSchedule(fast=0.25, ceiling=2.0, factor=2.0, hold=0.0)
    assert schedule.next_interval(2.0, got_events=True, since_event=0.0) == 0.25
    assert schedule.next_interval(2.0, got_events=False, since_event=30.0) == 2.0
    assert schedule.next_interval(0.25, got_events=False, since_event=0.25) == 0.5


def test_a_factor_of_one_polls_at_a_constant_rate():
    schedule = PollSchedule(fast=0.5, ceiling=2.0, factor=1.0)
    assert list(islice(schedule.quiet_intervals(), 4)) == [0.5, 0.5, 0.5, 0.5]


def test_polls_within_counts_the_polls_after_the_one_that_saw_the_event():
    schedule = PollSchedule(fast=0.25, ceiling=2.0, factor=2.0, hold=0.0)
    # polls at 0.25, 0.75, 1.75, 3.75, 5.75, 7.75, 9.75
    assert schedule.polls_within(0.2) == 0
    assert schedule.polls_within(0.25) == 1
    assert schedule.polls_within(10.0) == 7
    assert schedule.polls_within(60.0) == 4 + int((60.0 - 3.75) // 2.0)


@pytest.mark.parametrize(
    ("profile", "quiet_minute_polls"),
    # on-demand: 0.2, 0.6, 1.4, 3.0, then every 2 s; managed-instances: every 0.05 s for 3 s,
    # then 0.1, 0.2, … up to 2 s
    [("on-demand", 32), ("managed-instances", 60 + 5 + 27)],
)
def test_what_a_quiet_minute_costs_in_polls_in_each_profile(profile, quiet_minute_polls):
    p = SSE_PROFILES[profile]
    schedule = PollSchedule(p["poll_seconds"], p["idle_poll_seconds"], 2.0, p["poll_hold_seconds"])
    assert schedule.polls_within(60.0) == quiet_minute_polls


@pytest.mark.parametrize(
    ("fast", "ceiling", "factor", "hold"),
    [(0, 1, 2, 0), (2, 1, 2, 0), (0.1, 1, 0.5, 0), (0.1, 1, 2, -1)],
)
def test_a_schedule_that_would_poll_without_bound_is_refused(fast, ceiling, factor, hold):
    with pytest.raises(ValueError):
        PollSchedule(fast, ceiling, factor, hold)


# --- the gap rule: after=5, pages of at most 10


def test_a_gapless_page_from_after_is_trusted():
    assert not needs_consistent_read(5, [6, 7, 8], 10, None)


def test_an_empty_page_is_trusted_when_no_tail_is_known():
    assert not needs_consistent_read(5, [], 10, None)


def test_a_prefix_of_the_log_is_trusted_it_lacks_only_what_comes_later():
    assert not needs_consistent_read(5, [6, 7], 10, known_tail=7)
    assert not needs_consistent_read(5, [6, 7], 10, known_tail=4)  # a tail we are past says nothing


def test_an_event_after_a_missing_one_forces_a_consistent_read():
    assert needs_consistent_read(5, [6, 8], 10, None)
    assert needs_consistent_read(5, [7], 10, None)  # the first one is missing


def test_events_out_of_order_or_twice_force_a_consistent_read():
    assert needs_consistent_read(5, [7, 6], 10, None)
    assert needs_consistent_read(5, [6, 6], 10, None)


def test_fewer_events_than_the_known_tail_force_a_consistent_read():
    assert needs_consistent_read(5, [6, 7], 10, known_tail=9)
    assert needs_consistent_read(5, [], 10, known_tail=6)


def test_a_full_page_short_of_the_tail_is_trusted_the_next_page_follows():
    assert not needs_consistent_read(5, [6, 7], 2, known_tail=100)
