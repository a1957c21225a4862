"""The llm kind streaming from a real OpenAI-compatible server (tests/support/fake_openai.py, served
by uvicorn on 127.0.0.1, chunks with delays), through the state machine on moto: its text arrives
as substep.progress events whose deltas add up to the result; a provider failing mid-stream fails
the attempt, and the retry's text starts again under its own attempt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.progress import Coalescing
from tests.functional.conftest import assert_gapless, run_job
from tests.support.fake_openai import Provider, serve
from tests.support.jobs import task

KEY = "sk-stream-test-not-a-real-key-456"
WORDS = " ".join(f"w{n}" for n in range(20))
RECEIVED = "echo: " + "".join(f"w{n} " for n in range(15))  # the 16 chunks before the error
EAGER = Coalescing(min_interval_s=0.0, min_chars=1, max_wait_s=0.0)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with serve(Provider(KEY, delay=0.02)) as p:
        yield p


@pytest.fixture
def eager(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk its own event: what the coalescing would merge is what these tests look at."""
    monkeypatch.setattr(services.orchestrator._attempts, "coalescing", EAGER)
    monkeypatch.setenv("TEST_STREAM_API_KEY", KEY)


def _llm(url: str, message: str, **extra: Any) -> dict[str, Any]:
    params = {"baseUrl": url, "model": "m", "messages": [{"role": "user", "content": message}]}
    return task(1, "llm", {**params, "apiKey": {"env": "TEST_STREAM_API_KEY"}, **extra})


def _texts(events: list[dict[str, Any]]) -> dict[int, str]:
    """Each attempt's deltas concatenated, checking every offset is the text before it."""
    texts: dict[int, str] = {}
    for e in events:
        if e["type"] == "substep.progress" and "delta" in e:
            before = texts.get(e["attempt"], "")
            assert e["offset"] == len(before), (e, before)
            texts[e["attempt"]] = before + e["delta"]
    return texts


def test_llm_streams_its_text_as_progress_that_adds_up_to_the_result(services, provider, eager):
    message = "tell me about the river that runs past the old mill in the valley"
    eid, events = run_job(services, {"tasks": [_llm(provider.url, message)]})
    assert_gapless(events, eid)
    done = next(e for e in events if e["type"] == "substep.completed")
    progress = [e for e in events if e["type"] == "substep.progress"]
    assert len(progress) >= 3
    assert all(p["seq"] < done["seq"] for p in progress)
    assert _texts(events) == {1: done["result"]}
    assert done["result"] == f"echo: {message} "
    assert provider.requests[-1]["stream"] is True


def test_stream_false_asks_as_before_and_writes_no_progress(services, provider, eager):
    _, events = run_job(services, {"tasks": [_llm(provider.url, "short answer", stream=False)]})
    assert "stream" not in provider.requests[-1]
    assert not [e for e in events if e["type"] == "substep.progress"]
    assert events[-1]["finalResult"] == "echo: short answer "


def test_a_provider_error_mid_stream_fails_the_attempt_and_the_retry_starts_its_text_again(
    services, provider, eager
):
    retried = {**_llm(provider.url, WORDS + " FAIL_AFTER:16"), "retries": {"count": 1, "backoffSeconds": 0}}
    job = {"tasks": [retried]}
    _, events = run_job(services, job)
    failed = [e for e in events if e["type"] == "substep.failed"]
    assert [f["attempt"] for f in failed] == [1, 2]
    assert (
        f"the provider failed mid-stream after {len(RECEIVED)} characters: the model is overloaded"
        in failed[0]["error"]
    )
    assert failed[0]["willRetry"] is True and failed[1]["willRetry"] is False
    # each attempt's text starts at offset 0 (checked by _texts): a part of what came before the
    # error (redaction holds back the last words — and the API key's length — and a failed attempt's
    # held-back text is never written)
    texts = _texts(events)
    assert set(texts) == {1, 2}
    assert all(t and RECEIVED.startswith(t) for t in texts.values()), texts
    for attempt, fail in zip((1, 2), failed, strict=True):
        mine = [e for e in events if e["type"] == "substep.progress" and e["attempt"] == attempt]
        assert mine and all(e["seq"] < fail["seq"] for e in mine)


def test_a_dropped_stream_fails_with_what_it_received(services, provider, eager):
    _, events = run_job(services, {"tasks": [_llm(provider.url, "alpha beta gamma DROP_AFTER:2")]})
    failed = next(e for e in events if e["type"] == "substep.failed")
    assert "the stream broke after" in failed["error"] or "ended without [DONE]" in failed["error"]
    assert failed["reason"] == "error"
