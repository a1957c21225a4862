"""Settings, read from the environment once per cold start (never at import time)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .domain.previews import MIN_EVENT_PREVIEW_CHARS, RESULT_PREVIEW_CHARS
from .tenants import Tenants, parse_policies

ASL_PATH = Path(__file__).resolve().parent.parent / "infra" / "statemachine" / "dag.asl.json"
# ASL substitution → the Chalice lambda_function whose ARN it takes (template.yaml passes the same).
ASL_FUNCTIONS = {
    "RegisterFunctionArn": "register_task",
    "RunFunctionArn": "run_task",
    "RecordFailureFunctionArn": "record_failure",
    "FinalizeFunctionArn": "finalize",
}
ASL_SUBSTITUTIONS = tuple(ASL_FUNCTIONS)


class SettingsError(RuntimeError):
    pass


_ENV = {
    "table_name": "DAGCAST_TABLE",
    "state_machine_arn": "DAGCAST_STATE_MACHINE_ARN",
    "public_url": "DAGCAST_PUBLIC_URL",
    "events_url": "DAGCAST_EVENTS_URL",
    "heartbeat_seconds": "DAGCAST_HEARTBEAT_SECONDS",
    "poll_seconds": "DAGCAST_POLL_SECONDS",
    "idle_poll_seconds": "DAGCAST_IDLE_POLL_SECONDS",
    "max_stream_seconds": "DAGCAST_MAX_STREAM_SECONDS",
    "sse_profile": "DAGCAST_SSE_PROFILE",
    "poll_backoff": "DAGCAST_POLL_BACKOFF",
    "poll_hold_seconds": "DAGCAST_POLL_HOLD_SECONDS",
    "eventual_reads": "DAGCAST_SSE_EVENTUAL_READS",
    "retry_ms": "DAGCAST_RETRY_MS",
    "subscriber_buffer": "DAGCAST_SUBSCRIBER_BUFFER",
    "send_timeout_seconds": "DAGCAST_SEND_TIMEOUT_SECONDS",
    "hub": "DAGCAST_SSE_HUB",
    "auth": "DAGCAST_AUTH",
    "stream_secret": "DAGCAST_STREAM_SECRET",
    "stream_secret_name": "DAGCAST_STREAM_SECRET_NAME",
    "token_ttl_seconds": "DAGCAST_TOKEN_TTL_SECONDS",
    "cors_origins": "DAGCAST_CORS_ORIGINS",
    "api_keys": "DAGCAST_API_KEYS",
    "api_rate": "DAGCAST_API_RATE",
    "api_burst": "DAGCAST_API_BURST",
    "api_key_store": "DAGCAST_API_KEY_STORE",
    "api_key_cache_seconds": "DAGCAST_API_KEY_CACHE_SECONDS",
    "tenants": "DAGCAST_TENANTS",
    "max_streams_per_ip": "DAGCAST_MAX_STREAMS_PER_IP",
    "max_streams_per_execution": "DAGCAST_MAX_STREAMS_PER_EXECUTION",
    "stream_leases": "DAGCAST_STREAM_LEASES",
    "stream_lease_seconds": "DAGCAST_STREAM_LEASE_SECONDS",
    "sse_disconnect": "DAGCAST_SSE_DISCONNECT",
    "trust_proxy": "DAGCAST_TRUST_PROXY",
    "redact_keys": "DAGCAST_REDACT_KEYS",
    "event_preview_chars": "DAGCAST_EVENT_PREVIEW_CHARS",
    "plugins": "DAGCAST_PLUGINS",
    "event_bus": "DAGCAST_EVENT_BUS",
    "event_bus_progress": "DAGCAST_EVENT_BUS_PROGRESS",
    "webhook_kms_key": "DAGCAST_WEBHOOK_KMS_KEY",
    "webhook_allow_http": "DAGCAST_WEBHOOK_ALLOW_HTTP",
    "webhook_allowed_hosts": "DAGCAST_WEBHOOK_ALLOWED_HOSTS",
    "webhook_timeout_seconds": "DAGCAST_WEBHOOK_TIMEOUT_SECONDS",
    "webhook_max_attempts": "DAGCAST_WEBHOOK_MAX_ATTEMPTS",
    "webhook_backoff_seconds": "DAGCAST_WEBHOOK_BACKOFF_SECONDS",
    "webhook_backoff_max_seconds": "DAGCAST_WEBHOOK_BACKOFF_MAX_SECONDS",
    "webhook_inline_seconds": "DAGCAST_WEBHOOK_INLINE_SECONDS",
    "webhook_sweep_seconds": "DAGCAST_WEBHOOK_SWEEP_SECONDS",
    "webhook_retention_days": "DAGCAST_WEBHOOK_RETENTION_DAYS",
    "execution_ceiling_seconds": "DAGCAST_EXECUTION_CEILING_SECONDS",
    "retention_days": "DAGCAST_RETENTION_DAYS",
}
_LISTS = {"cors_origins", "api_keys", "redact_keys", "plugins", "webhook_allowed_hosts"}

SseProfile = Literal["on-demand", "managed-instances"]
# What an SSE process is, and the stream settings that fit it unless set one by one (docs/sse.md,
# "What a viewer costs"). managed-instances: one process serves many viewers (Lambda Managed
# Instances, and the local stack), the hub shares each execution's polls among them — the settings
# as they always were. on-demand: one viewer per process (a standard Lambda environment serves one
# request at a time), so every poll is paid per viewer: back off from the first empty poll, and end
# streams sooner, because a closed tab gives no signal and keeps polling until its stream ends.
SSE_PROFILES: dict[str, dict[str, float]] = {
    "managed-instances": {
        "poll_seconds": 0.05,
        "idle_poll_seconds": 2.0,
        "poll_hold_seconds": 3.0,
        "max_stream_seconds": 840.0,
    },
    "on-demand": {
        "poll_seconds": 0.2,
        "idle_poll_seconds": 2.0,
        "poll_hold_seconds": 0.0,
        "max_stream_seconds": 120.0,
    },
}

_DEFAULT_PROFILE = SSE_PROFILES["managed-instances"]  # the fields' defaults: one copy of the values


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=3)
    state_machine_arn: str = ""
    # Base URLs put into the 202 response; empty means "relative to this API".
    public_url: str = ""
    events_url: str = ""
    # The deadline of a job that sets no timeoutSeconds (docs/jobs.md#timeouts). At most a job's own
    # limit (86,400 s): the state machine's TimeoutSeconds backstop (26 h) is above both.
    execution_ceiling_seconds: int = Field(default=86_400, ge=60, le=86_400)
    # How long an execution is kept after its deadline: every item of it expires then (DynamoDB
    # TTL; persistence/expiry.py, docs/operations.md#retention). Applies to executions created after
    # it is set.
    retention_days: int = Field(default=30, ge=1, le=3650)
    # --- the SSE stream (docs/sse.md) ---
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Unset: on-demand inside a Lambda (AWS_LAMBDA_FUNCTION_NAME is set), else managed-instances.
    # The four settings below it default to the profile's values (SSE_PROFILES).
    sse_profile: SseProfile = "managed-instances"
    # between polls while events come
    poll_seconds: float = Field(default=_DEFAULT_PROFILE["poll_seconds"], gt=0)
    # the ceiling of the back-off when quiet
    idle_poll_seconds: float = Field(default=_DEFAULT_PROFILE["idle_poll_seconds"], gt=0)
    # stay at poll_seconds this long after an event
    poll_hold_seconds: float = Field(default=_DEFAULT_PROFILE["poll_hold_seconds"], ge=0)
    # under Lambda's 900 s limit
    max_stream_seconds: float = Field(default=_DEFAULT_PROFILE["max_stream_seconds"], gt=0)
    poll_backoff: float = Field(default=2.0, ge=1)  # the interval's growth per empty poll
    # The feed's polls read eventually consistent (half the RCU); a gap is read again consistently.
    eventual_reads: bool = True
    retry_ms: int = Field(default=2000, ge=0)  # the reconnection delay sent to clients (retry:)
    subscriber_buffer: int = Field(default=1000, ge=1)  # events queued per client before it is cut
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    hub: bool = True
    auth: bool = True
    stream_secret: str = ""
    # Deployed: the Secrets Manager secret holding the stream secret (template.yaml's StreamSecret),
    # when DAGCAST_STREAM_SECRET itself is not set: read by stream_key() when a token is first issued
    # or checked, not at cold start (the task functions never need it), and cached.
    stream_secret_name: str = ""
    token_ttl_seconds: int = Field(default=3600, ge=10)
    cors_origins: tuple[str, ...] = ()
    # --- the REST API's gate (chalicelib/http/gate.py, docs/security.md) ---
    # SHA-256 digests (hex) of the API keys, each tenant ``default``, or ``<tenant>:<digest>`` (the
    # local stack's `dagcast up --api-key acme=KEY`); empty, and no key store: the API is open.
    api_keys: tuple[str, ...] = ()
    # Keys registered in the table (`dagcast api-key --tenant T --stage S`): a key not in
    # DAGCAST_API_KEYS is looked up there, and the answer (a tenant, or "no such key") kept this
    # long per process, so a revoked key stops working within api_key_cache_seconds.
    api_key_store: bool = False
    api_key_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Per-tenant quotas and capabilities (chalicelib/tenants.py), JSON; empty: the defaults for all.
    tenants: str = ""
    # Requests/s per client IP, sustained; 0 (the default; the local stack): no limit. The stages in
    # .chalice/config.json set it.
    api_rate: float = Field(default=0.0, ge=0)
    api_burst: int = Field(default=100, ge=1)  # requests per client IP at once
    # Concurrent streams per client IP and per execution (docs/sse.md#limits). Counted in this
    # process always; across processes too with stream_leases (a slot item per open stream, see
    # persistence/streamleases.py) — what makes them hold in Lambda, where each stream is a process.
    # A stream whose client vanished keeps its slot until max_stream_seconds (no disconnect signal
    # reaches a Lambda), so the per-IP cap leaves room for a client's abandoned reconnects.
    max_streams_per_ip: int = Field(default=50, ge=1)
    max_streams_per_execution: int = Field(default=5000, ge=1)
    # Off by default: one process (the local stack) counts exactly without them; template.yaml
    # turns them on for the SSE function.
    stream_leases: bool = False
    # How long a slot outlives a process that died without releasing it; renewed every third of it.
    stream_lease_seconds: float = Field(default=60.0, ge=0.5)
    # Watch for the client's disconnect (ends its stream at once). In Lambda no disconnect reaches
    # the function whatever this says; off, the local server behaves the same way.
    sse_disconnect: bool = True
    trust_proxy: bool = False
    redact_keys: tuple[str, ...] = ()
    # How much of a result's JSON an event carries (task views always carry up to 16,384). Every
    # viewer reads every event, so a stage with many viewers cuts them short (docs/sse.md).
    event_preview_chars: int = Field(
        default=RESULT_PREVIEW_CHARS, ge=MIN_EVENT_PREVIEW_CHARS, le=RESULT_PREVIEW_CHARS
    )
    # Modules imported at start-up: they register task kinds and python functions (docs/jobs.md).
    plugins: tuple[str, ...] = ()
    # --- fan-out (docs/webhooks.md) ---
    event_bus: str = ""  # EventBridge bus name or ARN; empty: EventBridge off
    # substep.progress to EventBridge too: off by default (many small events, each a PutEvents entry)
    event_bus_progress: bool = False
    webhook_kms_key: str = ""  # KMS key that encrypts webhook secrets; empty: webhooks off
    webhook_allow_http: bool = False  # plain http:// endpoints (the local stack turns it on)
    webhook_allowed_hosts: tuple[str, ...] = ()  # fnmatch patterns; empty: any host
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    webhook_max_attempts: int = Field(default=12, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=2.0, gt=0)  # first retry; doubles each time
    webhook_backoff_max_seconds: float = Field(default=1800.0, gt=0)
    webhook_inline_seconds: float = Field(default=10.0, ge=0)  # delivery time inside the stream handler
    webhook_sweep_seconds: float = Field(default=50.0, ge=0)  # the retry function's time per run
    webhook_retention_days: int = Field(default=14, ge=1)  # deliveries expire (DynamoDB TTL) after

    @field_validator("api_keys")
    @classmethod
    def _digests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for n, entry in enumerate(value, 1):
            if not re.fullmatch(r"([a-z0-9][a-z0-9_-]{0,62}:)?[0-9a-f]{64}", entry):
                raise ValueError(  # the entry is not shown: it may be a key pasted by mistake
                    f"entry {n} is not a SHA-256 hex digest (or <tenant>:<digest>): list the digests of "
                    "the keys, never the keys (`dagcast api-key` makes a key and prints its digest)"
                )
        return value

    @field_validator("tenants")
    @classmethod
    def _tenant_policies(cls, value: str) -> str:
        parse_policies(value)  # ValueError names the tenant and the field
        return value

    def tenant_policies(self) -> Tenants:
        return Tenants(parse_policies(self.tenants))

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict):
            profile = SSE_PROFILES.get(str(values.get("sse_profile", "managed-instances")), {})
            values = {**profile, **values}
        return values

    @model_validator(mode="after")
    def _secret_when_auth(self) -> Settings:
        if self.auth and len(self.stream_secret) < 16 and not self.stream_secret_name:
            raise ValueError("DAGCAST_STREAM_SECRET must be set (16+ characters) while DAGCAST_AUTH is on")
        return self

    def stream_key(self) -> str:
        """The stream-token key: DAGCAST_STREAM_SECRET, else the secret DAGCAST_STREAM_SECRET_NAME
        names (powertools keeps it 5 minutes; the signer that holds it, for the process)."""
        if self.stream_secret or not self.stream_secret_name:
            return self.stream_secret
        secret = _read_secret(self.stream_secret_name)
        if len(secret) < 16:
            raise SettingsError(
                f"DAGCAST_STREAM_SECRET_NAME={self.stream_secret_name!r}: under 16 characters"
            )
        return secret

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in _ENV.items():
            if var in env:
                raw = env[var]
                values[field] = (
                    tuple(x.strip() for x in raw.split(",") if x.strip()) if field in _LISTS else raw
                )
        if "sse_profile" not in values and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            values["sse_profile"] = "on-demand"  # a standard Lambda environment: one viewer at a time
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            lines = []
            for e in exc.errors(include_url=False):
                where = _ENV.get(str(e["loc"][0]), "") if e["loc"] else ""
                lines.append(f"{where}: {e['msg']}" if where else str(e["msg"]))
            raise SettingsError("invalid dagcast settings: " + "; ".join(lines)) from exc


def _read_secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    try:
        return str(parameters.get_secret(name, max_age=300))
    except Exception as exc:  # the message names the secret and what failed, never its value
        raise SettingsError(
            f"cannot read DAGCAST_STREAM_SECRET_NAME={name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def render_definition(arns: Mapping[str, str], path: Path = ASL_PATH) -> str:
    """The ASL with ``${Name}`` substituted, as SAM's DefinitionSubstitutions would do."""
    text = path.read_text()
    for name in ASL_SUBSTITUTIONS:
        text = text.replace("${" + name + "}", arns[name])
    if "${" in text:
        raise SettingsError(f"unsubstituted placeholder left in {path.name}")
    return text
