"""What `dagcast verify` found: one result per check — passed, failed, or skipped with the reason
— and how they are printed. Figures (cold start, RCU per viewer) are results too: measured, or
skipped saying why not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Result:
    check: str  # e.g. "rest-api", "sse-live", "alarm ExecutionsFailedAlarm"
    outcome: Outcome
    detail: str


def passed(check: str, detail: str) -> Result:
    return Result(check, Outcome.PASS, detail)


def failed(check: str, detail: str) -> Result:
    return Result(check, Outcome.FAIL, detail)


def skipped(check: str, reason: str) -> Result:
    return Result(check, Outcome.SKIP, reason)


def line(result: Result) -> str:
    return f"{result.outcome.value.upper():<5} {result.check:<28} {result.detail}"


def summary(results: Iterable[Result]) -> str:
    counts = {o: 0 for o in Outcome}
    for r in results:
        counts[r.outcome] += 1
    return ", ".join(f"{n} {o.value}" for o, n in counts.items())
