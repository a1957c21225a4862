"""substep.progress through the state machine on moto: a python function opting in to ``ctx``, the
snapshot showing a running task's text, and only the run that claimed the attempt writing."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chalicelib.kinds import register_function
from chalicelib.orchestration.streaming import StoreWriter
from chalicelib.progress import Coalescing
from tests.functional.conftest import assert_gapless, wait_for_end
from tests.support.jobs import task

GATE = threading.Event()
FIRST = "partial words arrive here while it runs "
REST = "and the rest comes after the gate opens "


@register_function("tests.stream_then_wait")
def _stream_then_wait(inputs: dict[int, Any], ctx: Any) -> str:
    ctx.emit_text(FIRST)
    ctx.progress(1, 2, "half way")
    GATE.wait(30)
    ctx.emit_text(REST)
    return FIRST + REST


@pytest.fixture
def eager(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        services.orchestrator._attempts, "coalescing", Coalescing(min_interval_s=0, min_chars=1, max_wait_s=0)
    )


def _running_text(services: Any, eid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = services.orchestrator.snapshot(eid)["tasks"][0]
        if "text" in view:
            return dict(view)
        time.sleep(0.1)
    raise AssertionError("the snapshot never showed the running task's text")


def test_a_running_tasks_text_is_in_the_snapshot_and_only_its_run_may_write(services, eager):
    from chalicelib.domain.dag import parse_job

    GATE.clear()
    job = {"tasks": [task(1, "python", {"function": "tests.stream_then_wait"})]}
    eid = services.orchestrator.submit(parse_job(job))
    try:
        view = _running_text(services, eid)
        assert view["status"] == "running"
        assert FIRST.startswith(view["text"]) and view["text"]
        assert view["textOffset"] == 0 and view["textLength"] == len(view["text"])
        # a duplicate invocation of the same attempt (another run) is refused: nothing is written
        assert StoreWriter(services.store, eid, 1, 1).write("dup", 0, 3, "dup", None) is False
    finally:
        GATE.set()
    events = wait_for_end(services, eid)
    assert_gapless(events, eid)
    done = next(e for e in events if e["type"] == "substep.completed")
    deltas = [e for e in events if e["type"] == "substep.progress" and "delta" in e]
    assert "".join(e["delta"] for e in deltas) == done["result"] == FIRST + REST
    assert all(e["delta"] != "dup" for e in deltas)
    assert any(e.get("progress") == {"done": 1.0, "total": 2.0, "message": "half way"} for e in events)
    # after the attempt ended, no run may write
    assert StoreWriter(services.store, eid, 1, 1).write("late", 0, 4, "late", None) is False
    assert "text" not in services.orchestrator.snapshot(eid)["tasks"][0]


def test_echo_with_stream_seconds_emits_its_text_progressively(services, eager):
    """The demo's streaming task (examples/research-report.json): words as progress, then the text."""
    from tests.functional.conftest import run_job

    text = "# Report\n\nMild and grey, light rain on Tuesday; drier at the weekend."
    _, events = run_job(services, {"tasks": [task(1, "echo", {"text": text, "streamSeconds": 0.6})]})
    progress = [e for e in events if e["type"] == "substep.progress"]
    done = next(e for e in events if e["type"] == "substep.completed")
    assert len(progress) >= 3 and all(p["seq"] < done["seq"] for p in progress)
    assert [p["offset"] for p in progress] == [
        sum(len(q["delta"]) for q in progress[:i]) for i in range(len(progress))
    ]
    assert "".join(p["delta"] for p in progress) == done["result"] == text
    _, plain = run_job(services, {"tasks": [task(1, "echo", {"text": text})]})
    assert not [e for e in plain if e["type"] == "substep.progress"]  # without it: as before
