"""Finding LocalStack: its endpoint, whether it can run dagcast, and boto3 sessions that reach it.

Nothing here creates a resource (provision.py does) or builds code (package.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from ..lambdas import REGION
from .errors import LocalStackError

DEFAULT_ENDPOINT = "http://localhost:4566"
ENDPOINT_VARIABLE = "LOCALSTACK_ENDPOINT"

# Services `up` uses; LocalStack's health endpoint must list each as usable.
REQUIRED_SERVICES = ("dynamodb", "dynamodbstreams", "iam", "kms", "lambda", "sqs", "stepfunctions", "sts")
# LocalStack's words for a service it can serve (its health endpoint's, not dagcast statuses).
USABLE_STATES = ("available", "running", "starting", "stopped")
START_HINT = (
    "start it with `localstack start -d` (needs Docker, and LOCALSTACK_AUTH_TOKEN for current "
    f"LocalStack images; docs/local-mode.md#localstack), or set {ENDPOINT_VARIABLE} to where it runs"
)


def endpoint_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT).strip().rstrip("/")


def check_health(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """LocalStack's ``/_localstack/health`` answer; ``LocalStackError`` if it is not usable for dagcast."""
    url = f"{endpoint}/_localstack/health"
    try:
        reply = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LocalStackError(
            f"no LocalStack answers at {endpoint} (GET {url}: {type(exc).__name__}: {exc}); {START_HINT}"
        ) from exc
    if reply.status_code != 200:
        raise LocalStackError(
            f"{endpoint} is not a LocalStack: GET {url} answered {reply.status_code}; {START_HINT}"
        )
    try:
        health: dict[str, Any] = reply.json()
        services: dict[str, str] = health["services"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStackError(f"{endpoint} is not a LocalStack: GET {url} gave no service list") from exc
    unusable = {s: services.get(s, "missing") for s in REQUIRED_SERVICES}
    # LocalStack starts an "available" (or "stopped") service on its first call.
    unusable = {s: state for s, state in unusable.items() if state not in USABLE_STATES}
    if unusable:
        listed = ", ".join(f"{s} ({state})" for s, state in sorted(unusable.items()))
        raise LocalStackError(
            f"LocalStack at {endpoint} cannot run dagcast: {listed}; dagcast needs "
            f"{', '.join(REQUIRED_SERVICES)} (leave SERVICES unset, or list them all)"
        )
    return health


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def localstack_session(endpoint: str, region: str = REGION) -> Any:
    """A ``localstack_client`` session whose every client talks to ``endpoint``.

    localstack-client resolves its endpoints once, preferring ``$AWS_ENDPOINT_URL`` over
    ``$LOCALSTACK_HOST``: it is set to ``endpoint`` while the session is made, whatever the
    environment says. Credentials ``test``/``test`` put everything in LocalStack's default account
    000000000000.
    """
    from localstack_client.session import Session

    with _environment(AWS_ENDPOINT_URL=endpoint):
        return Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
