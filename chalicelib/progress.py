"""Live partial output of a running attempt: what a kind's ``ctx.emit_text`` / ``ctx.progress``
calls become — few, coalesced ``substep.progress`` events in the execution's log.

Coalescing (the numbers are ``Coalescing``'s defaults; docs/events.md, "substep.progress"):
- per task, at most one event per ``min_interval_s`` (0.5 s), and a text event waits for
  ``min_chars`` (48) unless ``max_wait_s`` (2 s) have passed since the last one;
- per execution, ``execution_rate`` (20) events/s shared by its running tasks: a task's interval is
  at least ``running tasks / execution_rate`` seconds, its count read again every ``refresh_s``. All
  of an execution's items share one partition (1,000 WCU/s), so 200 tasks streaming at once get an
  event every 10 s each and the task writes keep their room;
- text is redacted as it comes (``Redactor.stream``: a secret split across two emits is still found),
  so a chunk may wait for the words after it; what is left is written when the attempt ends. A
  text result that is the emitted text is recorded as the deltas redacted it (``finish``), so the
  deltas always add up to the result; shapes are found within the stream's window (every resolved
  secret value is found whatever the window).

Only the run that owns the attempt writes (``PartialText``'s claim). The emitter of an attempt whose
runner gave up on it (a timeout: its thread is abandoned and runs on) is closed under the same lock
its writes take, so no write of that thread lands after the runner records the outcome.

Not here: the event's shape (domain/events.py), the store's conditional write
(persistence/partialtext.py), when an attempt ends (orchestration/attempt.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from .persistence.partialtext import SNAPSHOT_TEXT_CHARS
from .redact import Redactor

MAX_DELTA_CHARS: Final = 16_384  # one event's delta at most; more text waiting goes in several


def utf16_len(text: str) -> int:
    """The text's length as JavaScript counts it (offsets are placed by web clients)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


@dataclass(frozen=True)
class Coalescing:
    min_interval_s: float = 0.5
    min_chars: int = 48
    max_wait_s: float = 2.0
    execution_rate: float = 20.0
    refresh_s: float = 5.0

    def interval(self, running_tasks: int) -> float:
        return max(self.min_interval_s, max(1, running_tasks) / self.execution_rate)


class ProgressWriter(Protocol):
    """Where an attempt's progress goes (the store, through ``AttemptProgress.writer``)."""

    def write(
        self, delta: str | None, offset: int, length: int, tail: str, progress: dict[str, Any] | None
    ) -> bool:
        """Write one event (and the text's tail for the snapshot); False: this run may not."""
        ...


class ProgressEmitter:
    """One attempt's text and progress, coalesced into writes. Thread-safe; inert once closed."""

    def __init__(
        self,
        writer: ProgressWriter,
        redactor: Callable[[], Redactor],
        running_tasks: Callable[[], int],
        rules: Coalescing = Coalescing(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._redactor = redactor  # called at the first text: the secrets resolved by then
        self._running = running_tasks
        self._rules = rules
        self._clock = clock
        self._lock = threading.Lock()
        self._stream: Any = None
        self.raw = ""  # the text as emitted: the runner compares the kind's result with it
        self._pending = ""  # redacted, not yet written
        self._written = ""  # redacted, written: its end is the snapshot's tail
        self._length = 0  # UTF-16 units written
        self._progress: dict[str, Any] | None = None
        self._last = -math.inf  # the first text is written as soon as it is shown
        self._interval = rules.interval(1)
        self._counted_at: float | None = None
        self.closed = False
        self.refused = False
        self.writes = 0

    def emit_text(self, text: str) -> None:
        with self._lock:
            if self.closed or not text:
                return
            if self._stream is None:
                self._stream = self._redactor().stream()
            self.raw += text
            self._pending += self._stream.feed(text)
            self._maybe_write()

    def progress(
        self, done: float | None = None, total: float | None = None, message: str | None = None
    ) -> None:
        fields = {"done": done, "total": total, "message": message}
        with self._lock:
            if self.closed:
                return
            self._progress = {k: v for k, v in fields.items() if v is not None}
            self._maybe_write()

    def finish(self) -> str:
        """The attempt succeeded: write what is held back; the whole text, redacted."""
        with self._lock:
            if not self.closed:
                if self._stream is not None:
                    self._pending += self._stream.close()
                if self._pending or self._progress:
                    self._write()
                self.closed = True
            return self._written + self._pending

    def abandon(self) -> None:
        """The runner gave up on the attempt: nothing more is written, whatever its thread does."""
        with self._lock:
            self.closed = True

    def _maybe_write(self) -> None:
        now = self._clock()
        if self._counted_at is None or now - self._counted_at >= self._rules.refresh_s:
            self._counted_at = now
            self._interval = self._rules.interval(self._running())
        since = now - self._last
        if since < self._interval:
            return
        if (
            len(self._pending) >= self._rules.min_chars
            or self._progress
            or (self._pending and since >= self._rules.max_wait_s)
        ):
            self._write()

    def _write(self) -> None:
        """Write the pending text (in pieces of MAX_DELTA_CHARS) and progress; closes on refusal."""
        self._last = self._clock()
        while not self.closed and (self._pending or self._progress is not None):
            delta, self._pending = self._pending[:MAX_DELTA_CHARS], self._pending[MAX_DELTA_CHARS:]
            written = self._written + delta
            ok = self._writer.write(
                delta or None,
                self._length,
                self._length + utf16_len(delta),
                written[-SNAPSHOT_TEXT_CHARS:],
                self._progress,
            )
            if not ok:
                self.refused = self.closed = True
                return
            self.writes += 1
            self._written, self._length, self._progress = written, self._length + utf16_len(delta), None
