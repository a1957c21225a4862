"""Settings read from AWS: the stream secret from Secrets Manager (the functional stack's moto);
the offline settings tests are tests/unit/test_config.py."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.config import Settings, SettingsError


def test_the_stream_secret_can_come_from_secrets_manager(stack):
    # The stack's moto, not a mock_aws() of its own: that would reset the stack's backends.
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="dagcast/test/stream-secret", SecretString="s" * 48)
    env = {"DAGCAST_TABLE": "tbl", "DAGCAST_STREAM_SECRET_NAME": "dagcast/test/stream-secret"}
    assert Settings.from_env(env).stream_key() == "s" * 48
    missing = Settings.from_env({**env, "DAGCAST_STREAM_SECRET_NAME": "dagcast/nope"})  # not read yet
    with pytest.raises(SettingsError, match="cannot read DAGCAST_STREAM_SECRET_NAME='dagcast/nope'"):
        missing.stream_key()


def test_the_stream_secret_is_read_when_a_token_is_first_needed_and_once(stack, monkeypatch):
    """A cold start read it for every function (each is given DAGCAST_STREAM_SECRET_NAME) though
    only the API and the SSE function use it: now the task functions never read it, and those
    that do read it once per process."""
    from chalicelib import config
    from chalicelib.factory import build_services

    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="dagcast/test/lazy-secret", SecretString="k" * 48)
    reads: list[str] = []
    real = config._read_secret

    def counted(name: str) -> str:
        reads.append(name)
        return real(name)

    monkeypatch.setattr(config, "_read_secret", counted)
    env = {"DAGCAST_TABLE": "tbl", "DAGCAST_STREAM_SECRET_NAME": "dagcast/test/lazy-secret"}
    services = build_services(Settings.from_env(env))
    assert services.orchestrator is not None  # what the task functions use
    assert reads == []
    assert services.signer is not None and services.signer is services.signer  # built once
    assert reads == ["dagcast/test/lazy-secret"]
