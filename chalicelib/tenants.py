"""Tenants (docs/security.md#tenants): who a request is, what its jobs may name, how much it may use.

An API key belongs to a tenant (http/gate.py resolves it); executions and webhooks belong to the
tenant that created them. This module holds the stage's per-tenant policy (``DAGCAST_TENANTS``,
JSON: ``{"acme": {...}, "*": {...}}``, where ``"*"`` is every tenant not named) and the check of a
job's capabilities against it:

- ``llmKeys``: the ``llm`` key references (``env:NAME``, ``ssm:/path``, ``secret:name``; fnmatch
  patterns) its jobs may name; ``lambdaFunctions``: the ``lambda`` function names;
  ``pythonModules``: the modules of ``python`` functions (``module:attr``). Unset: not restricted
  beyond the stage's global rules (kinds.py), as before tenants existed.
- A reference another tenant's list names explicitly, and this tenant's does not, is refused even
  where the global rules would allow it: ``env:*_API_KEY`` must not let tenant A send tenant B's
  key to a ``baseUrl`` of A's choosing.
- Capabilities are checked at submit, on the job as sent: a ``{{N}}`` template in a capability
  field would only be known at run time, so it is refused while any tenant has a list.

Quotas are numbers here; persistence/quotas.py counts them and orchestration/release.py holds
tasks for ``maxRunningTasks``. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .domain.dag import Job
from .domain.errors import InvalidJob, Problem

DEFAULT_TENANT: Final = "default"
ANY_TENANT: Final = "*"
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class TenantPolicy(BaseModel):
    """One tenant's quotas (0: no limit) and capability lists (None: not restricted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maxRunningExecutions: int = Field(default=200, ge=0)
    maxRunningTasks: int = Field(default=1000, ge=0)
    maxStreams: int = Field(default=500, ge=0)
    submitsPerSecond: int = Field(default=50, ge=0)
    llmKeys: tuple[str, ...] | None = None
    lambdaFunctions: tuple[str, ...] | None = None
    pythonModules: tuple[str, ...] | None = None


def tenant_problem(tenant: str) -> str | None:
    if not TENANT_ID.fullmatch(tenant):
        return f"a tenant id is 1-63 characters a-z 0-9 _ - (starting with a letter or digit), got {tenant!r}"
    return None


def parse_policies(raw: str) -> dict[str, TenantPolicy]:
    """``DAGCAST_TENANTS`` → the policies; ValueError says what is wrong (never a key: none are here)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError('a JSON object: {"<tenant>": {"maxRunningTasks": 20, ...}, "*": {...}}')
    out = {}
    for tenant, body in data.items():
        problem = tenant_problem(tenant) if tenant != ANY_TENANT else None
        if problem:
            raise ValueError(problem)
        try:
            out[tenant] = TenantPolicy.model_validate(body)
        except ValidationError as exc:
            raise ValueError(f"{tenant}: {exc.errors(include_url=False)[0]['msg']}") from None
    return out


class Tenants:
    """The stage's policies, looked up by tenant."""

    def __init__(self, policies: Mapping[str, TenantPolicy] | None = None) -> None:
        self._policies = dict(policies or {})
        self._fallback = self._policies.get(ANY_TENANT, TenantPolicy())

    def policy(self, tenant: str) -> TenantPolicy:
        return self._policies.get(tenant, self._fallback)

    @property
    def restricts_capabilities(self) -> bool:
        return any(
            p.llmKeys is not None or p.lambdaFunctions is not None or p.pythonModules is not None
            for p in self._policies.values()
        )

    def check_job(self, job: Job, tenant: str) -> None:
        """InvalidJob (400) naming each task field that names what ``tenant`` may not use."""
        if not self.restricts_capabilities:
            return
        problems = [
            Problem(path, message)
            for path, capability, value in _capabilities(job)
            for message in [self._refusal(tenant, capability, value)]
            if message
        ]
        if problems:
            raise InvalidJob(problems)

    def _refusal(self, tenant: str, capability: str, value: str) -> str | None:
        if "{{" in value:
            return f"{capability} may not be a {{{{N}}}} template: capabilities are checked at submit"
        own = getattr(self.policy(tenant), capability)
        if own is not None:
            if not _allowed(capability, value, own):
                return f"{value!r} is not in tenant {tenant!r}'s {capability} ({', '.join(own) or 'none'})"
            return None
        for other, policy in self._policies.items():
            listed = getattr(policy, capability)
            if other not in (tenant, ANY_TENANT) and listed and _allowed(capability, value, listed):
                return (
                    f"{value!r} belongs to another tenant ({capability}); tenant {tenant!r} may not name it"
                )
        return None


def _allowed(capability: str, value: str, patterns: tuple[str, ...]) -> bool:
    if capability == "pythonModules":
        module = value.partition(":")[0] if ":" in value else value.rpartition(".")[0]
        return any(module == m or module.startswith(m + ".") for m in patterns)
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _key_ref(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    for kind in ("env", "ssm", "secret"):
        if isinstance(raw.get(kind), str) and raw[kind]:
            return f"{kind}:{raw[kind]}"
    return ""


def _capabilities(job: Job) -> Iterator[tuple[str, str, str]]:
    """(path, capability, value) of every capability a job's tasks name."""
    for i, task in enumerate(job.tasks):
        params = task.params
        if task.action == "llm":
            yield f"tasks[{i}].params.apiKey", "llmKeys", _key_ref(params.get("apiKey"))
        elif task.action == "lambda":
            yield f"tasks[{i}].params.functionName", "lambdaFunctions", str(params.get("functionName", ""))
        elif task.action == "python":
            function = str(params.get("function", ""))
            if ":" in function or "." in function:  # a registered name (no module) is the stage's own
                yield f"tasks[{i}].params.function", "pythonModules", function
