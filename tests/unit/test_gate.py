"""The REST API's gate in isolation (chalicelib/http/gate.py): key parsing, digests, the token bucket,
the CORS allow-list; the settings that configure it. Over real sockets: tests/e2e/test_security.py."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.config import Settings, SettingsError
from chalicelib.domain.errors import ApiKeyInvalid, ApiKeyMissing, RateLimited
from chalicelib.http.errors import ErrorAnswer, answer_for
from chalicelib.http.gate import Gate, RateLimiter, key_digest, new_api_key, presented_key

BASE = {"DAGCAST_TABLE": "dagcast-test", "DAGCAST_AUTH": "off"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def test_keys_come_from_either_header():
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer   abc  "}) == "abc"
    assert presented_key({"x-api-key": " abc "}) == "abc"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None


def test_only_digests_are_configured_and_a_pasted_key_is_refused_without_echoing_it():
    key, digest = new_api_key()
    assert key_digest(key) == digest and len(digest) == 64
    assert settings(DAGCAST_API_KEYS=f"{digest}, ").api_keys == (digest,)
    with pytest.raises(SettingsError) as refused:
        settings(DAGCAST_API_KEYS=f"{digest},{key}")
    assert "DAGCAST_API_KEYS" in str(refused.value) and "entry 2" in str(refused.value)
    assert key not in str(refused.value) and "dagcast api-key" in str(refused.value)


def refusal(gate: Gate, headers: dict[str, str], client_ip: str) -> tuple[Exception, ErrorAnswer]:
    """What the gate raises for a request, and how the error map answers it."""
    with pytest.raises(Exception) as refused:
        gate.check(headers, client_ip)
    answer = answer_for(refused.value)
    assert answer is not None, refused.value
    return refused.value, answer


def test_the_gate_checks_keys_in_constant_time_against_every_digest():
    one, two = new_api_key(), new_api_key()
    gate = Gate(settings(DAGCAST_API_KEYS=f"{one[1]},{two[1]}"))
    gate.check({"authorization": f"Bearer {one[0]}"}, "1.2.3.4")  # passes: raises nothing
    gate.check({"x-api-key": two[0]}, "1.2.3.4")
    missing, answer = refusal(gate, {}, "1.2.3.4")
    assert (
        isinstance(missing, ApiKeyMissing) and answer.status == 401 and "WWW-Authenticate" in answer.headers
    )
    wrong, answer = refusal(gate, {"x-api-key": one[0] + "x"}, "1.2.3.4")
    assert isinstance(wrong, ApiKeyInvalid) and answer.status == 401 and "not valid" in answer.body["error"]
    assert "WWW-Authenticate" in answer.headers
    Gate(settings()).check({}, "1.2.3.4")  # no digests: open


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_the_rate_per_client():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    clock.now += 100
    assert [limiter.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refilled up to the burst only


def test_the_gate_refuses_with_429_and_retry_after():
    gate = Gate(settings(DAGCAST_API_RATE="0.5", DAGCAST_API_BURST="1"))
    gate.check({}, "9.9.9.9")
    refused, answer = refusal(gate, {}, "9.9.9.9")
    assert isinstance(refused, RateLimited) and answer.status == 429 and answer.headers["Retry-After"] == "2"
    assert "9.9.9.9" in answer.body["error"]
    assert Gate(settings()).limiter is None  # 0: no limit


@pytest.mark.parametrize(
    ("origins", "origin", "expected"),
    [
        ("https://a.example", "https://a.example", "https://a.example"),
        ("https://a.example", "https://evil.example", None),
        ("https://a.example", None, None),
        ("", "https://evil.example", "*"),  # no list: Chalice's '*' stays
        ("*", "https://evil.example", "*"),
    ],
)
def test_cors_allow_list(origins: str, origin: str | None, expected: str | None):
    headers: dict[str, Any] = {"Access-Control-Allow-Origin": "*", "Content-Type": "application/json"}
    Gate(settings(DAGCAST_CORS_ORIGINS=origins)).cors(origin, headers)
    assert headers.get("Access-Control-Allow-Origin") == expected
    if origins not in ("", "*"):
        assert headers["Vary"] == "Origin"
