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
    assert Settings.from_env(env).stream_secret == "s" * 48
    with pytest.raises(SettingsError, match="cannot read DAGCAST_STREAM_SECRET_NAME='dagcast/nope'"):
        Settings.from_env({**env, "DAGCAST_STREAM_SECRET_NAME": "dagcast/nope"})
