"""Settings, read from the environment once per cold start (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ASL_PATH = Path(__file__).resolve().parent.parent / "infra" / "statemachine" / "dag.asl.json"
ASL_SUBSTITUTIONS = (
    "RegisterFunctionArn",
    "RunFunctionArn",
    "RecordFailureFunctionArn",
    "FinalizeFunctionArn",
)


class SettingsError(RuntimeError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=3)
    state_machine_arn: str = ""
    # Base URLs put into the 202 response; empty means "relative to this API".
    public_url: str = ""
    events_url: str = ""
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    poll_seconds: float = Field(default=0.25, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        names = {
            "table_name": "DAGCAST_TABLE",
            "state_machine_arn": "DAGCAST_STATE_MACHINE_ARN",
            "public_url": "DAGCAST_PUBLIC_URL",
            "events_url": "DAGCAST_EVENTS_URL",
            "heartbeat_seconds": "DAGCAST_HEARTBEAT_SECONDS",
            "poll_seconds": "DAGCAST_POLL_SECONDS",
        }
        values: dict[str, Any] = {field: env[var] for field, var in names.items() if var in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            lines = [f"{names[str(e['loc'][0])]}: {e['msg']}" for e in exc.errors(include_url=False)]
            raise SettingsError("invalid dagcast settings: " + "; ".join(lines)) from exc


def render_definition(arns: Mapping[str, str], path: Path = ASL_PATH) -> str:
    """The ASL with ``${Name}`` substituted, as SAM's DefinitionSubstitutions would do."""
    text = path.read_text()
    for name in ASL_SUBSTITUTIONS:
        text = text.replace("${" + name + "}", arns[name])
    if "${" in text:
        raise SettingsError(f"unsubstituted placeholder left in {path.name}")
    return text
