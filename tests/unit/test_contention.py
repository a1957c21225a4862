"""RecentContention: which executions a process saw contended, for how long (persistence/contention.py)."""

from __future__ import annotations

from chalicelib.persistence import contention
from chalicelib.persistence.contention import WINDOW_S, RecentContention


def test_an_execution_is_contended_for_the_window_after_it_was_seen(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("chalicelib.persistence.contention.time.monotonic", lambda: now[0])
    seen = RecentContention()
    assert not seen.recent("a")
    seen.saw("a")
    now[0] += WINDOW_S - 0.01
    assert seen.recent("a") and not seen.recent("b")
    now[0] += 0.02
    assert not seen.recent("a")  # the window is over: the next write reads the tail again


def test_it_remembers_a_bounded_number_of_executions(monkeypatch):
    monkeypatch.setattr(contention, "_REMEMBERED", 2)
    seen = RecentContention()
    for e in ("a", "b", "c"):
        seen.saw(e)
    assert not seen.recent("a") and seen.recent("b") and seen.recent("c")
