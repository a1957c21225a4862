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
