from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import ASL_SUBSTITUTIONS, Settings, SettingsError, render_definition


def test_definition_is_fully_substituted_and_valid_json():
    arns = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in ASL_SUBSTITUTIONS}
    definition = json.loads(render_definition(arns))
    text = json.dumps(definition)
    assert "${" not in text
    for arn in arns.values():
        assert arn in text
    assert definition["QueryLanguage"] == "JSONPath"


def test_every_state_transition_targets_an_existing_state():
    definition = json.loads(render_definition({n: "arn" for n in ASL_SUBSTITUTIONS}))

    def check(states: dict[str, Any]) -> None:
        for name, state in states.items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])]
            for target in filter(None, targets):
                assert target in states, f"{name} → {target}"
            if "ItemProcessor" in state:
                check(state["ItemProcessor"]["States"])

    check(definition["States"])


def test_settings_from_env_and_clear_errors():
    base = {"DAGCAST_TABLE": "tbl", "DAGCAST_AUTH": "off"}
    s = Settings.from_env(
        {
            **base,
            "DAGCAST_HEARTBEAT_SECONDS": "2.5",
            "DAGCAST_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert s.table_name == "tbl" and s.heartbeat_seconds == 2.5
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert s.auth is False
    with pytest.raises(SettingsError, match="DAGCAST_TABLE"):
        Settings.from_env({"DAGCAST_AUTH": "off"})
    with pytest.raises(SettingsError, match="DAGCAST_HEARTBEAT_SECONDS"):
        Settings.from_env({**base, "DAGCAST_HEARTBEAT_SECONDS": "-1"})


def test_auth_is_on_by_default_and_needs_a_secret():
    with pytest.raises(SettingsError, match="DAGCAST_STREAM_SECRET must be set"):
        Settings.from_env({"DAGCAST_TABLE": "tbl"})
    assert Settings.from_env({"DAGCAST_TABLE": "tbl", "DAGCAST_STREAM_SECRET": "x" * 16}).auth is True


@pytest.mark.parametrize(
    "ref", [{"env": "DAGCAST_STREAM_SECRET"}, {"secret": "dagcast-internal/dev/stream-secret"}]
)
def test_dagcasts_own_secrets_are_never_task_keys_whatever_the_allow_list(monkeypatch, ref):
    from chalicelib.kinds import KeyRef, resolve_key

    monkeypatch.setenv("DAGCAST_LLM_KEYS", "env:*,secret:*")  # even an allow-everything list
    monkeypatch.setenv("DAGCAST_STREAM_SECRET", "x" * 32)
    with pytest.raises(LookupError, match="reserved for dagcast's own secrets"):
        resolve_key(KeyRef.model_validate(ref))


_STREAM = ("poll_seconds", "idle_poll_seconds", "poll_hold_seconds", "max_stream_seconds")


def _stream_settings(s: Settings) -> tuple[float, ...]:
    return tuple(getattr(s, name) for name in _STREAM)


def test_the_sse_profile_chooses_the_stream_defaults():
    base = {"DAGCAST_TABLE": "tbl", "DAGCAST_AUTH": "off"}
    managed = Settings.from_env(base)
    assert managed.sse_profile == "managed-instances"  # the local stack: one process, many viewers
    assert _stream_settings(managed) == (0.05, 2.0, 3.0, 840.0)  # as they always were
    on_demand = Settings.from_env({**base, "DAGCAST_SSE_PROFILE": "on-demand"})
    assert _stream_settings(on_demand) == (0.2, 2.0, 0.0, 120.0)
    assert on_demand.eventual_reads and managed.eventual_reads
    assert on_demand.poll_backoff == managed.poll_backoff == 2.0


def test_a_setting_given_wins_over_its_profiles_default():
    s = Settings.from_env(
        {
            "DAGCAST_TABLE": "tbl",
            "DAGCAST_AUTH": "off",
            "DAGCAST_SSE_PROFILE": "on-demand",
            "DAGCAST_MAX_STREAM_SECONDS": "300",
            "DAGCAST_SSE_EVENTUAL_READS": "off",
        }
    )
    assert s.max_stream_seconds == 300.0 and s.poll_seconds == 0.2 and not s.eventual_reads


def test_inside_a_lambda_the_profile_is_on_demand_unless_set():
    base = {"DAGCAST_TABLE": "tbl", "DAGCAST_AUTH": "off", "AWS_LAMBDA_FUNCTION_NAME": "dagcast-dev-sse"}
    assert Settings.from_env(base).sse_profile == "on-demand"
    assert Settings.from_env(base).max_stream_seconds == 120.0
    told = Settings.from_env({**base, "DAGCAST_SSE_PROFILE": "managed-instances"})
    assert told.sse_profile == "managed-instances" and told.max_stream_seconds == 840.0


def test_an_unknown_profile_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="DAGCAST_SSE_PROFILE"):
        Settings.from_env({"DAGCAST_TABLE": "tbl", "DAGCAST_AUTH": "off", "DAGCAST_SSE_PROFILE": "lambda"})


def test_the_event_preview_is_16384_characters_unless_a_stage_cuts_it_shorter():
    base = {"DAGCAST_TABLE": "tbl", "DAGCAST_AUTH": "off"}
    assert Settings.from_env(base).event_preview_chars == 16_384
    assert Settings.from_env({**base, "DAGCAST_EVENT_PREVIEW_CHARS": "1024"}).event_preview_chars == 1024
    for outside in ("255", "16385"):  # longer than views would break v1's "whole up to 16,384"
        with pytest.raises(SettingsError, match="DAGCAST_EVENT_PREVIEW_CHARS"):
            Settings.from_env({**base, "DAGCAST_EVENT_PREVIEW_CHARS": outside})
