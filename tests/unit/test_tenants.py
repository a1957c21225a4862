"""Tenants in isolation (chalicelib/tenants.py, docs/security.md#tenants): the stage's policies, the
capability check of a job, an API key's tenant at the gate (and the key store's cache), the stream
token's tenant, the per-tenant stream count, a webhook that only matches its tenant's executions.
With the stack: tests/functional/test_tenants.py; over real sockets: tests/e2e/test_tenants.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from chalicelib.config import Settings, SettingsError
from chalicelib.domain.dag import Job
from chalicelib.domain.errors import ApiKeyInvalid, InvalidJob, QuotaExceeded, TooManyStreams
from chalicelib.http.errors import answer_for
from chalicelib.http.gate import Gate, new_api_key
from chalicelib.stream.auth import TokenSigner
from chalicelib.stream.limits import Limits
from chalicelib.tenants import DEFAULT_TENANT, Tenants, parse_policies
from chalicelib.webhooks.models import Hook
from dagcast.cli.stack import tenant_key_entry

BASE = {"DAGCAST_TABLE": "dagcast-test", "DAGCAST_AUTH": "off"}
POLICIES = {
    "acme": {
        "llmKeys": ["ssm:/dagcast/acme/*"],
        "lambdaFunctions": ["acme-*"],
        "pythonModules": ["acme_jobs"],
    },
    "globex": {"llmKeys": ["ssm:/dagcast/globex/*"]},
}


def job(*tasks: tuple[str, dict[str, object]]) -> Job:
    """A job as parse_job would give it, without the kinds' own checks (which may read SSM)."""
    return Job.model_validate(
        {"tasks": [{"id": i, "action": a, "params": p} for i, (a, p) in enumerate(tasks, 1)]}
    )


def llm(ref: dict[str, str]) -> tuple[str, dict[str, object]]:
    return "llm", {"apiKey": ref}


def test_a_job_naming_another_tenants_key_function_or_module_is_refused_at_submit():
    tenants = Tenants(parse_policies(json.dumps(POLICIES)))
    tenants.check_job(job(llm({"ssm": "/dagcast/acme/openai"})), "acme")  # its own: accepted
    with pytest.raises(InvalidJob) as refused:
        tenants.check_job(job(llm({"ssm": "/dagcast/acme/openai"})), "globex")
    (problem,) = refused.value.problems
    assert problem.path == "tasks[0].params.apiKey" and "globex" in problem.message
    assert answer_for(refused.value).status == 400  # type: ignore[union-attr]
    # a tenant without a list of its own may name what nobody claims, never what another claims
    tenants.check_job(job(llm({"env": "OPENAI_API_KEY"})), "initech")
    with pytest.raises(InvalidJob, match="another tenant"):
        tenants.check_job(job(llm({"ssm": "/dagcast/globex/key"})), DEFAULT_TENANT)
    with pytest.raises(InvalidJob, match="acme"):
        tenants.check_job(job(llm({"env": "OPENAI_API_KEY"})), "acme")  # not on acme's own list
    with pytest.raises(InvalidJob) as refused:
        tenants.check_job(
            job(("lambda", {"functionName": "acme-resize"}), ("python", {"function": "acme_jobs.x:run"})),
            "globex",
        )
    assert [p.path for p in refused.value.problems] == [
        "tasks[0].params.functionName",
        "tasks[1].params.function",
    ]
    tenants.check_job(job(("python", {"function": "acme_jobs.sub:run"})), "acme")
    with pytest.raises(InvalidJob, match="template"):
        tenants.check_job(job(("lambda", {"functionName": "{{1}}"})), "acme")


def test_without_capability_lists_every_job_passes_as_before():
    Tenants().check_job(job(("lambda", {"functionName": "{{1}}"}), llm({"env": "X_API_KEY"})), "anyone")


def test_the_policies_are_a_stage_setting_checked_at_start():
    s = Settings.from_env(
        {**BASE, "DAGCAST_TENANTS": '{"acme": {"maxRunningTasks": 20}, "*": {"maxStreams": 7}}'}
    )
    tenants = s.tenant_policies()
    assert tenants.policy("acme").maxRunningTasks == 20 and tenants.policy("acme").maxStreams == 500
    assert tenants.policy("globex").maxStreams == 7 and tenants.policy("globex").maxRunningTasks == 1000
    for bad in ('{"Acme!": {}}', '{"acme": {"maxRunningTasks": -1}}', '{"acme": {"nope": 1}}', "[1]", "{"):
        with pytest.raises(SettingsError, match="DAGCAST_TENANTS"):
            Settings.from_env({**BASE, "DAGCAST_TENANTS": bad})


def test_a_key_belongs_to_a_tenant_and_a_plain_digest_to_default():
    one, two = new_api_key(), new_api_key()
    gate = Gate(Settings.from_env({**BASE, "DAGCAST_API_KEYS": f"{one[1]},acme:{two[1]}"}))
    assert gate.check({"x-api-key": one[0]}, "1.1.1.1") == DEFAULT_TENANT
    assert gate.check({"x-api-key": two[0]}, "1.1.1.1") == "acme"
    assert Gate(Settings.from_env(BASE)).check({}, "1.1.1.1") == DEFAULT_TENANT  # open: default
    assert tenant_key_entry("globex=" + one[0]) == f"globex:{one[1]}"
    assert tenant_key_entry(one[0]) == one[1]


class Registry:
    """The key store as the gate sees it (persistence/apikeys.py is the real one, tested on moto)."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.reads = 0

    def tenant_of(self, digest):
        self.reads += 1
        return self.keys.get(digest)


def test_a_registered_key_is_cached_and_a_revoked_one_stops_within_the_cache_time():
    key, digest = new_api_key()
    now = [1000.0]
    registry = Registry()
    registry.keys[digest] = "acme"
    settings = Settings.from_env(
        {**BASE, "DAGCAST_API_KEY_STORE": "1", "DAGCAST_API_KEY_CACHE_SECONDS": "60"}
    )
    gate = Gate(settings, registry, clock=lambda: now[0])  # type: ignore[arg-type]
    assert gate.keys_required
    assert gate.check({"x-api-key": key}, "ip") == "acme"
    assert gate.check({"x-api-key": key}, "ip") == "acme" and registry.reads == 1  # cached
    del registry.keys[digest]  # revoked
    now[0] += 59
    assert gate.check({"x-api-key": key}, "ip") == "acme"  # still within the cache time
    now[0] += 2
    with pytest.raises(ApiKeyInvalid):
        gate.check({"x-api-key": key}, "ip")


def test_a_stream_token_carries_its_tenant_and_an_old_one_is_defaults():
    signer = TokenSigner("s" * 32)
    assert signer.verify(signer.issue("dag-exec_1", tenant="acme").token, "dag-exec_1") == "acme"
    old = TokenSigner("s" * 32)
    payload = base64.urlsafe_b64encode(json.dumps({"x": "e", "exp": int(time.time()) + 60}).encode())
    payload_s = payload.rstrip(b"=").decode()
    sig = hmac.new(b"s" * 32, f"v1.{payload_s}".encode(), hashlib.sha256).digest()
    token = f"v1.{payload_s}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert old.verify(token, "e") == DEFAULT_TENANT


def test_a_tenant_at_its_stream_quota_is_refused_by_name_and_others_are_not():
    limits = Limits(per_ip=100, per_execution=100)
    limits.acquire("1.1.1.1", "e1", ("acme", 2))
    limits.acquire("2.2.2.2", "e2", ("acme", 2))
    with pytest.raises(TooManyStreams, match=r"acme.*maxStreams") as refused:
        limits.acquire("3.3.3.3", "e3", ("acme", 2))
    answer = answer_for(refused.value)
    assert answer is not None and answer.status == 429 and answer.headers["Retry-After"] == "5"
    limits.acquire("3.3.3.3", "e3", ("globex", 2))  # another tenant's streams are not counted
    limits.release("1.1.1.1", "e1", "acme")
    limits.acquire("3.3.3.3", "e3", ("acme", 2))


def test_a_quota_refusal_is_429_with_retry_after_naming_the_quota():
    answer = answer_for(QuotaExceeded("acme", "maxRunningExecutions", 10, 5))
    assert answer is not None and answer.status == 429 and answer.headers == {"Retry-After": "5"}
    assert "maxRunningExecutions" in answer.body["error"] and "acme" in answer.body["error"]


def test_a_webhook_matches_only_its_own_tenants_executions():
    hook = Hook("wh_1", "https://x", None, None, b"", 0, tenant="acme")
    event = {"type": "execution.created", "executionId": "e"}
    assert hook.matches(event, "acme") and not hook.matches(event, "globex")
    assert not hook.matches(event)  # an execution of tenant default
    assert Hook("wh_2", "https://x", None, None, b"", 0).matches(event)  # an old hook: default's
