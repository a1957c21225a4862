"""The DAG job: its model, its validation and its ordering.

Pure functions only — no AWS, no I/O. A job is accepted only when every problem is absent; when it
is not, *every* problem is reported with the path of the offending field (``tasks[2].params.seconds``)
so that one round trip is enough to fix a job.

Deliberately not here: running tasks (see ``actions``) and storing them (see ``store``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_TASKS = 1000
MAX_SLEEP_SECONDS = 900
TEMPLATE_REF = re.compile(r"\{\{\s*(\d+)\s*\}\}")
ACTIONS = ("sleep", "echo", "fail")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SleepParams(_Strict):
    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS)


class EchoParams(_Strict):
    text: str = Field(max_length=100_000)


class FailParams(_Strict):
    message: str = Field(default="task failed", max_length=10_000)


class _TaskBase(_Strict):
    id: int = Field(ge=0, le=2**53)
    description: str = Field(default="", max_length=2_000)
    dependencies: list[int] = Field(default_factory=list, max_length=MAX_TASKS)


class SleepTask(_TaskBase):
    action: Literal["sleep"]
    params: SleepParams


class EchoTask(_TaskBase):
    action: Literal["echo"]
    params: EchoParams


class FailTask(_TaskBase):
    action: Literal["fail"]
    params: FailParams = FailParams()


Task = Annotated[SleepTask | EchoTask | FailTask, Field(discriminator="action")]


class Job(_Strict):
    originalRequest: str = Field(default="", max_length=100_000)
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidJob(ValueError):
    """A job that cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


def parse_job(body: object) -> Job:
    """Validate a decoded JSON body and return the job, or raise InvalidJob listing every problem."""
    problems: list[Problem] = []
    job: Job | None = None
    try:
        job = Job.model_validate(body)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(graph_problems(body))
    if problems or job is None:
        raise InvalidJob(_dedupe(problems))
    return job


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
        # A discriminated union puts the tag in the location: tasks.0.sleep.params → tasks[0].params
        if len(loc) >= 3 and loc[0] == "tasks" and loc[2] in ACTIONS:
            del loc[2]
        kind = err["type"]
        if kind == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            problems.append(
                Problem(
                    _format_path([*loc, "action"]),
                    f"unknown action {json.dumps(tag)}; expected one of: {', '.join(ACTIONS)}",
                )
            )
            continue
        if kind == "union_tag_not_found":
            problems.append(
                Problem(_format_path([*loc, "action"]), f"is required; one of: {', '.join(ACTIONS)}")
            )
            continue
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
        problems.append(Problem(_format_path(loc), f"{err['msg'].lower()}{suffix}"))
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
        task = tasks[i]
        params = task.get("params")
        if task.get("action") != "echo" or not isinstance(params, Mapping):
            continue
        text = params.get("text")
        if not isinstance(text, str):
            continue
        ancestors = _ancestors(tid, deps)
        for ref in sorted({int(m) for m in TEMPLATE_REF.findall(text)}):
            if ref not in ancestors:
                problems.append(
                    Problem(
                        f"tasks[{i}].params.text",
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


def render_template(text: str, results: Mapping[int, Any]) -> str:
    """Replace ``{{N}}`` by task N's result (strings as-is, anything else as JSON)."""

    def sub(match: re.Match[str]) -> str:
        value = results[int(match.group(1))]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return TEMPLATE_REF.sub(sub, text)


def template_refs(text: str) -> list[int]:
    return sorted({int(m) for m in TEMPLATE_REF.findall(text)})
