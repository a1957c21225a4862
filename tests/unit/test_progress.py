"""The live output of an attempt (chalicelib/progress.py): coalescing bounds, redaction across
chunks, offsets in UTF-16 units, the order/concatenation property, and a closed emitter's silence."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import events as ev
from chalicelib.progress import Coalescing, ProgressEmitter, utf16_len
from chalicelib.redact import REDACTED, Redactor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Writer:
    """Records what the emitter writes; refuses once ``refuse`` is set (another run claimed it)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.refuse = False

    def write(self, delta: str | None, offset: int, length: int, tail: str, progress: Any) -> bool:
        if self.refuse:
            return False
        self.events.append(ev.substep_progress(7, 1, delta, offset if delta else None, progress))
        return True


DEFAULT = Coalescing()


def _emitter(writer: Writer, clock: Clock, rules: Coalescing = DEFAULT, running: int = 1, secrets=()):
    return ProgressEmitter(writer, lambda: Redactor().with_values(secrets), lambda: running, rules, clock)


def test_a_thousand_tokens_at_fifty_a_second_become_a_few_events_a_second():
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock)
    for _ in range(1000):
        clock.now += 0.02  # 50 tokens/s for 20 s
        out.emit_text("tok ")
    out.finish()
    # one event per min_interval_s (0.5 s) at most, plus the final one
    assert len(writer.events) <= 20 / 0.5 + 1
    assert len(writer.events) >= 30
    assert "".join(e["delta"] for e in writer.events) == "tok " * 1000


def test_the_execution_budget_slows_each_task_when_many_run():
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock, running=200)  # 200 tasks share execution_rate (20/s): one per 10 s
    for _ in range(1000):
        clock.now += 0.02
        out.emit_text("tok ")
    assert len(writer.events) <= 20 / 10 + 1


def test_a_small_chunk_waits_for_more_text_or_max_wait():
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock, Coalescing(min_interval_s=0.5, min_chars=48, max_wait_s=2.0))
    out.emit_text("first words come at once ")  # the first text is written as soon as it is shown
    assert [e["delta"] for e in writer.events] == ["first words come at"]
    clock.now += 1.0
    out.emit_text("a b ")
    assert len(writer.events) == 1  # under min_chars, and under max_wait since the last event
    clock.now += 1.5
    out.emit_text("c d ")
    assert [e["delta"] for e in writer.events][1:] == [" once a b c"]


def test_a_secret_split_across_two_emits_is_redacted_in_the_deltas():
    writer, clock = Writer(), Clock()
    secret = "sk-live-0123456789abcdef"
    out = _emitter(writer, clock, Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0), secrets=[secret])
    out.emit_text("the key is sk-live-01234")
    out.emit_text("56789abcdef and more words follow here")
    out.finish()
    text = "".join(e["delta"] for e in writer.events)
    assert secret not in text and "sk-live" not in text
    assert text == f"the key is {REDACTED} and more words follow here"


def test_offsets_count_utf16_units_as_javascript_does():
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock, Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0))
    for word in ["🙂🙂 one ", "two ", "three ", "four "]:
        out.emit_text(word)
    out.finish()
    at = 0
    for e in writer.events:
        assert e["offset"] == at
        at += utf16_len(e["delta"])
    assert utf16_len("🙂") == 2


def test_a_closed_emitter_writes_nothing_more():
    """The abandoned thread of a timed-out attempt: the runner closed its emitter, under the lock
    every write takes, before recording the outcome."""
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock, Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0))
    out.emit_text("first words here ")
    written = len(writer.events)
    out.abandon()
    done = threading.Event()

    def late() -> None:
        out.emit_text("late words from the abandoned thread ")
        out.progress(1, 2, "late")
        done.set()

    threading.Thread(target=late).start()
    assert done.wait(5)
    out.finish()
    assert len(writer.events) == written


def test_a_refused_write_stops_the_emitter():
    writer, clock = Writer(), Clock()
    out = _emitter(writer, clock, Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0))
    writer.refuse = True  # another run of the attempt claimed it, or the attempt ended
    out.emit_text("words words words ")
    assert out.refused and out.closed and writer.events == []


SHAPES = ["Bearer ", "abcdefgh1234 ", "abcd", "efgh1234", "token=", "🙂", "\n", " "]
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.one_of(words, st.sampled_from(SHAPES)), max_size=40),
    steps=st.lists(st.floats(min_value=0, max_value=1.5), min_size=40, max_size=40),
    rules=st.sampled_from([Coalescing(), Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0)]),
)
def test_deltas_in_order_concatenate_to_the_redacted_text(chunks, steps, rules):
    """Whatever the chunks and their timing, the deltas, in order and each at the offset of the text
    before it, add up to the redacted text the runner records as the result."""
    writer, clock = Writer(), Clock()
    redactor = Redactor().with_values(["abcdefgh1234"])
    out = ProgressEmitter(writer, lambda: redactor, lambda: 1, rules, clock)
    for chunk, step in zip(chunks, steps, strict=False):
        clock.now += step
        out.emit_text(chunk)
    whole = out.finish()
    text, at = "", 0
    for e in writer.events:
        assert e["offset"] == at
        text += e["delta"]
        at += utf16_len(e["delta"])
    assert text == whole  # the result the runner records for a text result (attempt.py)
    assert "abcdefgh1234" not in whole  # a secret value, split across emits or not
