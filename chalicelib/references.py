"""Secret references: where a task's secret is (``{"env"}``, ``{"ssm"}``, ``{"secret"}``), which
references a stage allows, and reading one.

A reference is resolved only inside the task that uses it, and every value resolved is handed to
the attempt's redactor (``RunContext.keep``), so it is removed from whatever the task writes. Not
here: which params may hold a reference (the kinds, chalicelib/kinds.py).
"""

from __future__ import annotations

import fnmatch
import os

from pydantic import BaseModel, ConfigDict, Field, model_validator


class KeyRef(BaseModel):
    """Where a secret is: an environment variable, an SSM parameter or a Secrets Manager secret."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ssm: str | None = Field(default=None, min_length=1, max_length=2048)
    secret: str | None = Field(default=None, min_length=1, max_length=2048)

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyRef:
        if sum(1 for v in (self.env, self.ssm, self.secret) if v) != 1:
            raise ValueError("give exactly one of env, ssm, secret")
        return self

    @property
    def ref(self) -> str:
        if self.env:
            return f"env:{self.env}"
        if self.ssm:
            return f"ssm:{self.ssm}"
        return f"secret:{self.secret}"


DEFAULT_KEY_PATTERNS = ("env:*_API_KEY", "ssm:/dagcast/*", "secret:dagcast/*")


def key_patterns() -> tuple[str, ...]:
    raw = os.environ.get("DAGCAST_LLM_KEYS")
    if raw is None:
        return DEFAULT_KEY_PATTERNS
    return tuple(p.strip() for p in raw.split(",") if p.strip())


# dagcast's own secrets are never task keys, whatever DAGCAST_LLM_KEYS allows: a job could otherwise
# send the stream-token key to a URL of its choosing.
RESERVED_KEY_REFS = ("env:DAGCAST_*", "secret:dagcast-internal/*", "ssm:/dagcast-internal/*")


def resolve_key(key: KeyRef) -> str:
    """The key's value; LookupError says what is missing. Never logged, never stored."""
    if any(fnmatch.fnmatchcase(key.ref, p) for p in RESERVED_KEY_REFS):
        raise LookupError(f"{key.ref} is reserved for dagcast's own secrets; it is never a task key")
    if not any(fnmatch.fnmatchcase(key.ref, p) for p in key_patterns()):
        raise LookupError(
            f"{key.ref} is not an allowed key reference (DAGCAST_LLM_KEYS: {', '.join(key_patterns())})"
        )
    if key.env:
        value = os.environ.get(key.env, "")
        if not value:
            raise LookupError(f"the environment variable {key.env} is not set")
        return value
    return _parameter(key.ref)


def _parameter(ref: str) -> str:
    """powertools caches each value for 5 minutes, so a rotated key is picked up within 5 minutes."""
    from aws_lambda_powertools.utilities import parameters

    kind, _, name = ref.partition(":")
    try:
        if kind == "ssm":
            value = parameters.get_parameter(name, decrypt=True, max_age=300)
        else:
            value = parameters.get_secret(name, max_age=300)
    except Exception as exc:  # powertools wraps the AWS error
        raise LookupError(f"{ref} cannot be read: {exc}") from None
    return str(value)
