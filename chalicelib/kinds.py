"""Task kinds: what a task does. One ``Kind`` per ``action``: a pydantic model for its ``params``
(validated when the job is submitted) and a function that runs it.

A kind's ``run(params, inputs, ctx)`` gets its validated params with every ``{{N}}`` already
replaced by task N's result, the results of the task's dependencies (``inputs``, keyed by task id)
and a ``RunContext`` (remaining time, the task's ids); it returns a JSON-serialisable result or
raises ``TaskFailed``. Anything else it raises fails the task too (with the exception's type).

Add your own kind (docs/jobs.md, "Your own kind")::

    from chalicelib.kinds import Kind, register_kind
    register_kind(Kind("shout", ShoutParams, lambda p, inputs, ctx: p.text.upper()))

in a module listed in ``DAGCAST_PLUGINS``. Python functions for the ``python`` kind are registered
with ``@register_function("name")`` the same way.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# TaskFailed is part of the kind author's API (docs/jobs.md: `from chalicelib.kinds import TaskFailed`).
from .domain.errors import TaskFailed as TaskFailed
from .domain.model import APPROVAL_ACTION, MAX_DECISION_SECONDS
from .domain.templates import render_value
from .progress import ProgressEmitter
from .redact import Redactor
from .references import DEFAULT_KEY_PATTERNS as DEFAULT_KEY_PATTERNS
from .references import RESERVED_KEY_REFS as RESERVED_KEY_REFS
from .references import KeyRef as KeyRef
from .references import key_patterns as key_patterns
from .references import resolve_key as resolve_key

# An attempt runs inside one run_task invocation (Lambda's limit: 900 s); 60 s are kept for
# recording its outcome, so an attempt that times out is still recorded by the same invocation.
MAX_TIMEOUT_SECONDS = 840
MAX_SLEEP_SECONDS = MAX_TIMEOUT_SECONDS


class _Params(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class RunContext:
    execution_id: str
    task_id: int
    attempt: int
    deadline: float  # time.monotonic() by which the task must be done
    # Every secret the attempt resolved: the runner redacts them from all the attempt writes.
    secrets: set[str] = field(default_factory=set)
    # Where emit_text / progress go (the runner sets it); None: nowhere (a kind run outside a task).
    output: ProgressEmitter | None = None

    def emit_text(self, text: str) -> None:
        """Append ``text`` to the attempt's live output (``substep.progress`` events, coalesced).
        A kind whose result is this text returns it whole as well: the deltas add up to it."""
        if self.output is not None:
            self.output.emit_text(text)

    def progress(
        self, done: float | None = None, total: float | None = None, message: str | None = None
    ) -> None:
        """Say how far the attempt is (``done`` of ``total``, a message); coalesced with the text."""
        if self.output is not None:
            self.output.progress(done, total, message)

    def remaining(self) -> float:
        return max(0.1, self.deadline - time.monotonic())

    def keep(self, secret: str) -> str:
        """``secret``, remembered so that no result, error or log line of this attempt shows it."""
        self.secrets.add(secret)
        return secret

    def resolve(self, key: KeyRef) -> str:
        """The referenced secret's value (kept); TaskFailed if it cannot be read or is not allowed."""
        try:
            return self.keep(resolve_key(key))
        except LookupError as exc:
            raise TaskFailed(str(exc)) from None


Runner = Callable[[Any, Mapping[int, Any], RunContext], Any]
Checker = Callable[[Any], list[str]]


@dataclass(frozen=True)
class Kind:
    name: str
    params: type[BaseModel]
    run: Runner
    # Extra checks at submission (e.g. "this API key exists"); each string is one problem.
    check: Checker | None = None


KINDS: dict[str, Kind] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}


def register_kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def register_function(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make ``fn`` callable from jobs as ``{"action": "python", "params": {"function": name}}``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = fn
        return fn

    return deco


def load_plugins(modules: Sequence[str]) -> None:
    """Import the modules named in DAGCAST_PLUGINS (they register kinds and functions)."""
    for name in modules:
        importlib.import_module(name)


# ---------------------------------------------------------------------------------------- built-ins


class SleepParams(_Params):
    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS)


class EchoParams(_Params):
    text: str = Field(max_length=100_000)
    # Emit the text a word at a time over this many seconds (ctx.emit_text): live output for the
    # demo and tests with no model, key or network. 0 returns the text at once, as before.
    streamSeconds: float = Field(default=0, ge=0, le=MAX_SLEEP_SECONDS)


class FailParams(_Params):
    message: str = Field(default="task failed", max_length=10_000)


def _sleep(p: SleepParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    time.sleep(p.seconds)
    return f"slept {p.seconds:g}s"


register_kind(Kind("sleep", SleepParams, _sleep))


def _echo(p: EchoParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    if p.streamSeconds > 0:
        pieces = re.findall(r"\S+\s*|\s+", p.text)  # a word and its spaces: together, the text
        pause = p.streamSeconds / max(1, len(pieces))
        for piece in pieces:
            time.sleep(min(pause, ctx.remaining()))
            ctx.emit_text(piece)
    return p.text  # the emitted text whole: its deltas add up to it (docs/events.md)


register_kind(Kind("echo", EchoParams, _echo))


def _fail(p: FailParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    raise TaskFailed(p.message)


register_kind(Kind("fail", FailParams, _fail))

# --------------------------------------------------------------------------------------------- http


class HttpParams(_Params):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(pattern=r"^https?://", max_length=8_000)
    # A credential is a reference, resolved when the task runs: the task item never holds it.
    headers: dict[str, str | KeyRef] = Field(default_factory=dict)
    body: Any = None  # a string is sent as is; anything else as JSON
    timeoutSeconds: float = Field(default=30, gt=0, le=MAX_TIMEOUT_SECONDS)
    allowStatus: list[int] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _no_literal_credentials(self) -> HttpParams:
        shapes = Redactor()
        for name, value in self.headers.items():
            if isinstance(value, str) and (shapes.is_sensitive(name) or shapes.text(value) != value):
                raise ValueError(
                    f"header {name!r} carries a credential: give it as a reference, e.g. "
                    f'{{"{name}": {{"env": "MY_API_KEY"}}}} (or {{"ssm": ...}}, {{"secret": ...}}), '
                    "never literally: task params are stored as given (docs/jobs.md)"
                )
        return self


def _http_headers(p: HttpParams, ctx: RunContext) -> dict[str, str]:
    return {k: (ctx.resolve(v) if isinstance(v, KeyRef) else v) for k, v in p.headers.items()}


def _check_http(p: HttpParams) -> list[str]:
    """At submission: every header reference is allowed and can be read."""
    problems = []
    for name, value in p.headers.items():
        if isinstance(value, KeyRef):
            try:
                resolve_key(value)
            except LookupError as exc:
                problems.append(f"header {name!r}: {exc}")
    return problems


def _http(p: HttpParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    import httpx

    kwargs: dict[str, Any] = {"headers": _http_headers(p, ctx)}
    if isinstance(p.body, str):
        kwargs["content"] = p.body.encode()
    elif p.body is not None:
        kwargs["json"] = p.body
    try:
        r = httpx.request(p.method, p.url, timeout=min(p.timeoutSeconds, ctx.remaining()), **kwargs)
    except httpx.TimeoutException:
        raise TaskFailed(f"{p.method} {p.url}: no response within {p.timeoutSeconds:g}s") from None
    except httpx.HTTPError as exc:
        raise TaskFailed(f"{p.method} {p.url}: {type(exc).__name__}: {exc}") from None
    body = _decode(r)
    if not (200 <= r.status_code < 300 or r.status_code in p.allowStatus):
        raise TaskFailed(f"{p.method} {p.url} answered {r.status_code}: {str(body)[:500]}")
    return {"status": r.status_code, "body": body}


def _decode(r: Any) -> Any:
    if "json" in r.headers.get("content-type", ""):
        try:
            return r.json()
        except ValueError:
            pass
    return r.text


register_kind(Kind("http", HttpParams, _http, _check_http))

# ------------------------------------------------------------------------------------------- python


class PythonParams(_Params):
    function: str = Field(min_length=1, max_length=300)
    args: dict[str, Any] = Field(default_factory=dict)


def allowed_modules() -> tuple[str, ...]:
    raw = os.environ.get("DAGCAST_PYTHON_MODULES", "")
    return tuple(m.strip() for m in raw.split(",") if m.strip())


def resolve_function(name: str) -> Callable[..., Any]:
    """A registered function, or ``module:attr`` / ``module.attr`` from an allowed module."""
    if name in FUNCTIONS:
        return FUNCTIONS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise LookupError(f"no registered function {name!r} (registered: {', '.join(sorted(FUNCTIONS))})")
    if not any(module == m or module.startswith(m + ".") for m in allowed_modules()):
        raise LookupError(
            f"{name!r} is neither a registered function nor in a module allowed by DAGCAST_PYTHON_MODULES"
        )
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"cannot import {name!r}: {exc}") from None
    if not callable(fn):
        raise LookupError(f"{name!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _python(p: PythonParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    try:
        fn = resolve_function(p.function)
    except LookupError as exc:
        raise TaskFailed(str(exc)) from None
    if _takes_ctx(fn):  # opted in: ctx.emit_text / ctx.progress (docs/jobs.md)
        if "ctx" in p.args:
            raise TaskFailed(f"{p.function} takes ctx itself: args must not name 'ctx'")
        return fn(dict(inputs), ctx=ctx, **p.args)
    return fn(dict(inputs), **p.args)


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    """Whether the function has a parameter named ``ctx`` (it then gets the RunContext)."""
    import inspect

    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _lookup_check(lookup: Callable[[Any], object]) -> Checker:
    """A submission check that runs ``lookup(params)`` and reports its LookupError as the problem."""

    def check(params: Any) -> list[str]:
        try:
            lookup(params)
        except LookupError as exc:
            return [str(exc)]
        return []

    return check


_check_python = _lookup_check(lambda p: resolve_function(p.function))


register_kind(Kind("python", PythonParams, _python, _check_python))

# ------------------------------------------------------------------------------------------- lambda


class LambdaParams(_Params):
    functionName: str = Field(min_length=1, max_length=170)
    payload: Any = None  # default: {"inputs": {"<taskId>": result, ...}}


def _lambda(p: LambdaParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    import boto3
    from botocore.config import Config

    payload = p.payload if p.payload is not None else {"inputs": {str(k): v for k, v in inputs.items()}}
    # Wait as long as the attempt may last, and never invoke twice: the task's own retries decide.
    config = Config(
        read_timeout=max(1, int(ctx.remaining()) + 1), connect_timeout=10, retries={"total_max_attempts": 1}
    )
    out = boto3.client("lambda", config=config).invoke(
        FunctionName=p.functionName, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
    )
    raw = out["Payload"].read()
    result = json.loads(raw) if raw else None
    if out.get("FunctionError"):
        if isinstance(result, dict):
            raise TaskFailed(f"{result.get('errorType', 'Error')}: {result.get('errorMessage', '')}")
        raise TaskFailed(f"{p.functionName} failed: {raw[:300]!r}")
    return result


register_kind(Kind("lambda", LambdaParams, _lambda))


# --------------------------------------------------------------------------------------- approval

DEFAULT_DECISION_SECONDS = 86_400


class ApprovalParams(_Params):
    """A person decides (POST …/tasks/{taskId}/decision): ``prompt`` is what they are asked,
    ``timeoutSeconds`` how long the task waits for them (its own limit, not an attempt's)."""

    prompt: str = Field(default="", max_length=2_000)
    timeoutSeconds: int = Field(default=DEFAULT_DECISION_SECONDS, ge=1, le=MAX_DECISION_SECONDS)


def _approval(p: ApprovalParams, inputs: Mapping[int, Any], ctx: RunContext) -> Any:
    # The engine parks an approval on its decision instead of running it (orchestration/decisions.py).
    raise TaskFailed("an approval task is decided by a person, not run")


register_kind(Kind(APPROVAL_ACTION, ApprovalParams, _approval))


# ------------------------------------------------------------------------------------------- public


def render_params(params: Mapping[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    """``params`` with ``{{N}}`` replaced in every string (keys untouched)."""
    return dict(render_value(dict(params), results))


def run_kind(
    action: str,
    params: Mapping[str, Any],
    inputs: Mapping[int, Any],
    results: Mapping[int, Any],
    ctx: RunContext,
) -> Any:
    kind = KINDS.get(action)
    if kind is None:
        raise TaskFailed(f"unknown action {action!r}; known: {', '.join(sorted(KINDS))}")
    model = kind.params.model_validate(render_params(params, results))
    return kind.run(model, inputs, ctx)


# The llm kind lives in its own module (it streams); importing it registers it.
from . import llm as _llm  # noqa: E402,F401

__all__ = [
    "KINDS",
    "Kind",
    "RunContext",
    "TaskFailed",
    "register_function",
    "register_kind",
]
