"""The DAG job: its model, its validation and its ordering.

No AWS calls of its own (a kind's submission check may read a parameter). A job is accepted only
when every problem is absent; when it is not, *every* problem is reported with the path of the
offending field (``tasks[2].params.seconds``) so that one round trip is enough to fix a job.

Deliberately not here: what each kind does (see ``kinds``) and storing them (see ``persistence``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ..kinds import KINDS, MAX_TIMEOUT_SECONDS, ApprovalParams
from .errors import InvalidJob, Problem
from .model import APPROVAL_ACTION, DEFAULT_TIMEOUT_SECONDS, MAX_DECISION_SECONDS, FailurePolicy
from .templates import refs_in_value

MAX_TASKS = 1000
MAX_RETRIES = 10
MAX_EXECUTION_SECONDS = 86_400
MAX_TAGS = 20
MAX_TAG_CHARS = 64
# The characters of a tag: no "#", which separates the list index's key parts (persistence/keys.py).
TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_METADATA_BYTES = 4_096  # of its canonical JSON (metadata_json), UTF-8


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """Run a failed task again up to ``count`` times, waiting backoffSeconds × backoffRate^(n-1)."""

    count: int = Field(ge=0, le=MAX_RETRIES)
    backoffSeconds: float = Field(default=1.0, ge=0, le=3600)
    backoffRate: float = Field(default=2.0, ge=1, le=10)
    maxBackoffSeconds: float = Field(default=300.0, ge=0, le=3600)

    def wait_seconds(self, attempt: int) -> int:
        """Whole seconds to wait after failed attempt ``attempt`` (Step Functions' Wait is whole)."""
        raw = self.backoffSeconds * self.backoffRate ** (attempt - 1)
        return round(min(raw, self.maxBackoffSeconds))


class Task(_Strict):
    id: int = Field(ge=0, le=2**53)
    description: str = Field(default="", max_length=2_000)
    action: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[int] = Field(default_factory=list, max_length=MAX_TASKS)
    retries: RetryPolicy = RetryPolicy(count=0)
    timeoutSeconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=MAX_TIMEOUT_SECONDS)

    @field_validator("retries", mode="before")
    @classmethod
    def _count_only(cls, value: Any) -> Any:
        """``"retries": 3`` is short for ``{"count": 3}`` (so its errors read ``retries.count``)."""
        return {"count": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retries


class Job(_Strict):
    originalRequest: str = Field(default="", max_length=100_000)
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)
    # Not strict: a JSON body holds the policy as a string, which names the member.
    failurePolicy: FailurePolicy = Field(default=FailurePolicy.FAIL_FAST, strict=False)
    maxConcurrency: int | None = Field(default=None, ge=1, le=MAX_TASKS)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=MAX_EXECUTION_SECONDS)
    resultTask: int | None = None
    # Labels to find executions by (GET /api/v1/dag-executions?tag=): a list keyed by each one.
    tags: list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    # The caller's own JSON object, stored and shown as given (redacted); dagcast never reads it.
    metadata: dict[str, Any] | None = None

    @field_validator("tags")
    @classmethod
    def _once_each(cls, tags: list[str]) -> list[str]:
        """A tag given twice is one tag (one list item per tag), in the order first given."""
        return list(dict.fromkeys(tags))

    @field_validator("metadata")
    @classmethod
    def _small(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        if metadata is not None and len(metadata_json(metadata).encode()) > MAX_METADATA_BYTES:
            raise PydanticCustomError("too_large", f"is larger than {MAX_METADATA_BYTES} bytes as JSON")
        return metadata


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Metadata's canonical JSON: what its size limit counts and what the store keeps."""
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def parse_job(body: object) -> Job:
    """Validate a decoded JSON body and return the job, or raise InvalidJob listing every problem."""
    problems: list[Problem] = []
    job: Job | None = None
    try:
        job = Job.model_validate(body)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(graph_problems(body))
    kind_problems = _kind_problems(body)
    covered = {p.path for p in kind_problems}
    problems = [p for p in problems if p.path not in covered] + kind_problems
    if job is not None and not problems:
        problems.extend(approval_problems(job))
    if job is not None:
        ids = {t.id for t in job.tasks}
        if job.resultTask is not None and job.resultTask not in ids:
            problems.append(Problem("resultTask", f"unknown task id {job.resultTask}; no task has this id"))
    if problems or job is None:
        raise InvalidJob(_dedupe(problems))
    return job


def decision_seconds(job: Job) -> int:
    """How long the job's approvals may wait for their decisions, together: the execution's
    deadline is this much later (a person's time is not the job's running time)."""
    approvals = [t for t in job.tasks if t.action == APPROVAL_ACTION]
    return sum(ApprovalParams.model_validate(t.params).timeoutSeconds for t in approvals)


def approval_problems(job: Job) -> list[Problem]:
    """An approval is decided once (no retries); a job's approvals wait a week at most in all."""
    problems = [
        Problem(f"tasks[{i}].retries", "an approval is decided once; retries do not apply")
        for i, t in enumerate(job.tasks)
        if t.action == APPROVAL_ACTION and t.retries.count
    ]
    total = decision_seconds(job)
    if total > MAX_DECISION_SECONDS:
        problems.append(
            Problem(
                "tasks",
                f"the approvals' timeoutSeconds add up to {total}s; together they may wait at most "
                f"{MAX_DECISION_SECONDS}s (7 days)",
            )
        )
    return problems


def _kind_problems(body: object) -> list[Problem]:
    """Each task's params against its kind's model, then the kind's own checks (keys exist…).

    Read tolerantly from the raw body, like ``graph_problems``, so every task is checked even
    when another field of the job is wrong."""
    tasks = body.get("tasks") if isinstance(body, Mapping) else None
    if not isinstance(tasks, list):
        return []
    known = ", ".join(sorted(KINDS))
    problems: list[Problem] = []
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            continue
        action = task.get("action")
        if "action" not in task:
            problems.append(Problem(f"tasks[{i}].action", f"is required; one of: {known}"))
            continue
        if not isinstance(action, str):
            continue  # the model reports the type
        kind = KINDS.get(action)
        if kind is None:
            problems.append(
                Problem(
                    f"tasks[{i}].action", f"unknown action {json.dumps(action)}; expected one of: {known}"
                )
            )
            continue
        raw = task.get("params", {})
        if not isinstance(raw, Mapping):
            continue  # the model reports the type
        try:
            params = kind.params.model_validate(raw)
        except ValidationError as exc:
            for p in _pydantic_problems(exc):
                path = f"tasks[{i}].params" + ("" if p.path == "(body)" else "." + p.path)
                problems.append(Problem(path, p.message))
            continue
        if kind.check is not None:
            problems.extend(Problem(f"tasks[{i}].params", m) for m in kind.check(params))
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _format_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(body)"


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "model_type" and loc == []:
            problems.append(Problem("(body)", "the body must be a JSON object with 'tasks'"))
            continue
        if kind == "extra_forbidden":
            problems.append(Problem(_format_path(loc), "is not a known field"))
            continue
        if kind == "too_short" and loc == ["tasks"]:
            problems.append(Problem("tasks", "a job needs at least one task"))
            continue
        if kind == "missing":
            problems.append(Problem(_format_path(loc), "is required"))
            continue
        given = err.get("input")
        suffix = ""
        if kind.endswith("_type") and not isinstance(given, dict | list):
            suffix = f" (got {json.dumps(given, default=str)[:80]})"
        msg = str(err["msg"]).replace("instance of RetryPolicy", "retry policy object")
        problems.append(Problem(_format_path(loc), f"{msg[:1].lower()}{msg[1:]}{suffix}"))
    return problems


def graph_problems(body: object) -> list[Problem]:
    """Problems of the task graph itself, read tolerantly from the raw body.

    Runs even when some fields have the wrong type, so a job with a bad param *and* a cycle
    reports both at once.
    """
    if not isinstance(body, Mapping):
        return []
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        return []
    problems: list[Problem] = []
    index: dict[int, int] = {}  # task id → position in tasks
    for i, task in enumerate(tasks):
        tid = task.get("id") if isinstance(task, Mapping) else None
        if not _is_int(tid):
            continue
        assert isinstance(tid, int)
        if tid in index:
            problems.append(
                Problem(f"tasks[{i}].id", f"duplicate task id {tid} (also used by tasks[{index[tid]}])")
            )
        else:
            index[tid] = i
    deps: dict[int, list[int]] = {tid: [] for tid in index}
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            continue
        tid = task.get("id")
        raw = task.get("dependencies", [])
        if not isinstance(raw, list):
            continue
        seen: set[int] = set()
        for j, dep in enumerate(raw):
            if not _is_int(dep):
                continue
            assert isinstance(dep, int)
            path = f"tasks[{i}].dependencies[{j}]"
            if dep in seen:
                problems.append(Problem(path, f"task {dep} is listed twice"))
                continue
            seen.add(dep)
            if dep not in index:
                problems.append(Problem(path, f"unknown task id {dep}; no task has this id"))
            elif _is_int(tid) and index.get(tid) == i:  # type: ignore[arg-type]
                deps[tid].append(dep)  # type: ignore[index]
    for cycle in find_cycles(deps):
        first = cycle[0]
        problems.append(
            Problem(
                f"tasks[{index[first]}].dependencies",
                "dependency cycle: " + " → ".join(str(t) for t in cycle),
            )
        )
    if not any(p.message.startswith("dependency cycle") for p in problems):
        problems.extend(_template_problems(tasks, index, deps))
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _template_problems(
    tasks: list[Any], index: Mapping[int, int], deps: Mapping[int, list[int]]
) -> list[Problem]:
    problems = []
    for tid, i in index.items():
        params = tasks[i].get("params")
        if not isinstance(params, Mapping):
            continue
        ancestors = _ancestors(tid, deps)
        seen: set[tuple[str, int]] = set()
        for path, ref in refs_in_value(dict(params)):
            if ref in ancestors or (path, ref) in seen:
                continue
            seen.add((path, ref))
            problems.append(
                Problem(
                    f"tasks[{i}].params{path}",
                    f"{{{{{ref}}}}} refers to task {ref}, which task {tid} does not depend on "
                    f"(add {ref} to its dependencies)",
                )
            )
    return problems


def _ancestors(tid: int, deps: Mapping[int, list[int]]) -> set[int]:
    out: set[int] = set()
    stack = list(deps.get(tid, []))
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack.extend(deps.get(d, []))
    return out


def find_cycles(deps: Mapping[int, Sequence[int]]) -> list[list[int]]:
    """One cycle per strongly connected component that has one, as ``[a, b, …, a]``.

    Iterative (a 1,000-task chain must not hit the recursion limit) and deterministic.
    """
    color: dict[int, int] = {}  # 0/absent white, 1 on stack, 2 done
    cycles: list[list[int]] = []
    in_reported: set[int] = set()
    for start in sorted(deps):
        if color.get(start):
            continue
        path: list[int] = []
        stack: list[tuple[int, Iterator[int]]] = []
        color[start] = 1
        path.append(start)
        stack.append((start, iter(sorted(deps.get(start, [])))))
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                color[node] = 2
                continue
            state = color.get(nxt, 0)
            if state == 0:
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(deps.get(nxt, [])))))
            elif state == 1:
                cyc = path[path.index(nxt) :]
                if not in_reported.intersection(cyc):
                    in_reported.update(cyc)
                    # Report in dependency order reversed: "1 → 2" reads "1 needs 2".
                    cycles.append([*cyc, nxt])
    return cycles


def topological_order(job: Job) -> list[int]:
    """Task ids so that every task comes after its dependencies; ties keep the job's order."""
    position = {t.id: i for i, t in enumerate(job.tasks)}
    remaining = {t.id: len(t.dependencies) for t in job.tasks}
    dependents = dependents_of(job)
    ready = sorted((tid for tid, n in remaining.items() if n == 0), key=position.__getitem__)
    order: list[int] = []
    while ready:
        tid = ready.pop(0)
        order.append(tid)
        newly = []
        for d in dependents[tid]:
            remaining[d] -= 1
            if remaining[d] == 0:
                newly.append(d)
        ready = sorted([*ready, *newly], key=position.__getitem__)
    return order


def dependents_of(job: Job) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {t.id: [] for t in job.tasks}
    for t in job.tasks:
        for d in t.dependencies:
            out[d].append(t.id)
    return out


def sinks(job: Job) -> list[int]:
    """Tasks nothing depends on: their results make the execution's final result."""
    deps = dependents_of(job)
    return [t.id for t in job.tasks if not deps[t.id]]
