"""How often a feed polls the event log, and when a cheap read must be read again consistently.

Pure: no clock, no I/O. The feed (hub.py) asks ``PollSchedule.next_interval`` after each poll and
``needs_consistent_read`` after each eventually consistent one.

**The schedule.** ``fast`` seconds after a poll that brought events (and after any poll within
``hold`` seconds of the last event); otherwise the interval grows by ``factor`` per empty poll, up
to ``ceiling``. With ``hold`` = 0 (the on-demand profile) the back-off starts at the first empty
poll, so a quiet minute costs a handful of reads, not 60 / ``fast``; a poll that brings an event
brings the interval back to ``fast`` at once. Bounded both ways: never faster than ``fast``, never
slower than ``ceiling`` — the worst extra latency of the first event after a quiet spell.

**The gap rule.** An eventually consistent Query may come from a replica that has not seen the
newest writes. Events are written in seq order (each put is conditional on the previous seq), so a
stale replica normally shows a *prefix* of the log, and a prefix is safe: what it lacks comes with
a later poll, in order. What must never be taken for the log is anything else: a page whose seqs
do not run ``after + 1, after + 2, …`` without a hole (an event seen after a missing one), or one
that stops short of a tail the stream already knows was written (``known_tail``: fewer events than
the tail says). Either way the page is thrown away and the same range read again with
``ConsistentRead``, so nothing is skipped and nothing reordered; duplicates cannot arise, because
the feed drops every seq at or below its last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PollSchedule:
    fast: float  # seconds between polls while events come
    ceiling: float  # the longest interval while quiet
    factor: float = 2.0  # growth per empty poll, once ``hold`` has passed
    hold: float = 0.0  # seconds after the last event during which polls stay ``fast``

    def __post_init__(self) -> None:
        if not (0 < self.fast <= self.ceiling and self.factor >= 1 and self.hold >= 0):
            raise ValueError(f"invalid poll schedule {self}")

    def next_interval(self, previous: float, got_events: bool, since_event: float) -> float:
        """The wait before the next poll, after a poll that waited ``previous`` before it, brought
        events or not, ``since_event`` seconds after the last event the feed saw."""
        if got_events or since_event < self.hold:
            return self.fast
        return min(self.ceiling, max(self.fast, previous * self.factor))

    def quiet_intervals(self) -> Iterator[float]:
        """The waits between polls after an event when nothing more comes (for docs and tests)."""
        interval = self.fast
        since = 0.0
        while True:
            yield interval
            since += interval
            interval = self.next_interval(interval, False, since)

    def polls_within(self, seconds: float) -> int:
        """Polls in the ``seconds`` of quiet that follow the poll that saw the last event."""
        at = 0.0
        for polls, interval in enumerate(self.quiet_intervals()):
            at += interval
            if at > seconds:
                return polls
        raise AssertionError("unreachable")  # quiet_intervals never ends


def needs_consistent_read(after: int, seqs: Sequence[int], limit: int, known_tail: int | None) -> bool:
    """Whether an eventually consistent page of events after ``after`` (their ``seqs``, in the
    order read, at most ``limit``) cannot be trusted and must be read again with ConsistentRead:
    a hole or disorder in the seqs, or a page that is not full yet ends before ``known_tail``."""
    expected = after
    for seq in seqs:
        if seq != expected + 1:
            return True
        expected = seq
    return known_tail is not None and len(seqs) < limit and expected < known_tail
