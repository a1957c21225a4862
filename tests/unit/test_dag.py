"""Job validation: every problem is reported, with its path, in one answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.dag import (
    MAX_TASKS,
    find_cycles,
    parse_job,
    sinks,
    topological_order,
)
from chalicelib.domain.errors import InvalidJob
from chalicelib.domain.templates import render_template


def task(tid: Any, action: str = "sleep", deps: list[Any] | None = None, **params: Any) -> dict[str, Any]:
    if not params:
        params = {"seconds": 0} if action == "sleep" else {"text": "x"} if action == "echo" else {}
    return {
        "id": tid,
        "description": f"task {tid}",
        "action": action,
        "params": params,
        "dependencies": deps or [],
    }


def problems(body: Any) -> dict[str, str]:
    with pytest.raises(InvalidJob) as info:
        parse_job(body)
    return {p.path: p.message for p in info.value.problems}


def test_a_valid_job_parses():
    job = parse_job({"originalRequest": "q", "tasks": [task(1), task(2, "echo", [1], text="{{1}}!")]})
    assert [t.id for t in job.tasks] == [1, 2]
    assert job.tasks[1].params == {"text": "{{1}}!"}


def test_no_tasks():
    assert problems({"tasks": []}) == {"tasks": "a job needs at least one task"}
    assert problems({"originalRequest": "x"}) == {"tasks": "is required"}


def test_body_must_be_an_object():
    assert problems([1, 2]) == {"(body)": "the body must be a JSON object with 'tasks'"}


def test_cycle_is_named():
    found = problems({"tasks": [task(1, deps=[3]), task(2, deps=[1]), task(3, deps=[2])]})
    assert found == {"tasks[0].dependencies": "dependency cycle: 1 → 3 → 2 → 1"}


def test_self_dependency_is_a_cycle():
    assert problems({"tasks": [task(7, deps=[7])]}) == {"tasks[0].dependencies": "dependency cycle: 7 → 7"}


def test_unknown_dependency_and_duplicate_id():
    found = problems({"tasks": [task(1), task(1), task(2, deps=[9])]})
    assert found == {
        "tasks[1].id": "duplicate task id 1 (also used by tasks[0])",
        "tasks[2].dependencies[0]": "unknown task id 9; no task has this id",
    }


def test_unknown_action_and_missing_action():
    found = problems({"tasks": [{"id": 1, "action": "teleport", "params": {}}, {"id": 2, "params": {}}]})
    assert found == {
        "tasks[0].action": 'unknown action "teleport"; expected one of: approval, echo, fail, http, lambda, llm, python, sleep',
        "tasks[1].action": "is required; one of: approval, echo, fail, http, lambda, llm, python, sleep",
    }


def test_wrong_param_types_are_reported_with_their_path():
    found = problems(
        {
            "tasks": [
                task(1, seconds="5"),
                task(2, "echo", text=42),
                {"id": "3", "action": "fail", "params": {"message": "m"}},
                task(4, seconds=-1),
            ]
        }
    )
    assert found["tasks[0].params.seconds"].startswith("input should be a valid number")
    assert found["tasks[1].params.text"].startswith("input should be a valid string")
    assert found["tasks[2].id"].startswith("input should be a valid integer")
    assert found["tasks[3].params.seconds"].startswith("input should be greater than or equal to 0")


def test_unknown_fields_are_rejected():
    found = problems({"tasks": [dict(task(1), colour="red")], "priority": 1})
    assert found == {"tasks[0].colour": "is not a known field", "priority": "is not a known field"}


def test_every_problem_at_once_type_errors_and_graph_errors():
    found = problems({"tasks": [task(1, deps=[2], seconds="x"), task(2, deps=[1]), task(3, "nope")]})
    assert set(found) == {"tasks[0].params.seconds", "tasks[2].action", "tasks[0].dependencies"}
    assert found["tasks[0].dependencies"] == "dependency cycle: 1 → 2 → 1"


def test_template_must_reference_an_ancestor():
    found = problems({"tasks": [task(1), task(2), task(3, "echo", [1], text="{{1}} and {{2}}")]})
    assert found == {
        "tasks[2].params.text": "{{2}} refers to task 2, which task 3 does not depend on (add 2 to its dependencies)"
    }
    # a transitive ancestor is fine: its result exists before the task starts
    parse_job({"tasks": [task(1), task(2, deps=[1]), task(3, "echo", [2], text="{{1}}")]})


def test_bool_is_not_an_int_id():
    assert "tasks[0].id" in problems({"tasks": [task(True)]})


def test_too_many_tasks():
    found = problems({"tasks": [task(i) for i in range(MAX_TASKS + 1)]})
    assert list(found) == ["tasks"]


def test_topological_order_keeps_job_order_on_ties():
    job = parse_job({"tasks": [task(5, deps=[9]), task(9), task(2), task(7, deps=[5, 2])]})
    assert topological_order(job) == [9, 5, 2, 7]  # 5 comes before 2 in the job once it is ready
    assert sinks(job) == [7]


def test_long_chain_does_not_recurse():
    deps = {i: [i + 1] for i in range(5000)}
    deps[5000] = [0]
    assert find_cycles(deps)[0][:3] == [0, 1, 2]


def test_render_template():
    assert render_template("a {{1}} b {{ 2 }}", {1: "x", 2: {"k": [1]}}) == 'a x b {"k": [1]}'


def test_retries_count_shorthand_is_bounded_like_the_object_form():
    def with_retries(value: Any) -> dict[str, Any]:
        return {"tasks": [{**task(1), "retries": value}]}

    assert parse_job(with_retries(3)).tasks[0].retry_policy.count == 3
    assert parse_job(with_retries({"count": 2, "backoffSeconds": 0})).tasks[0].retry_policy.count == 2
    assert problems(with_retries(11)) == {
        "tasks[0].retries.count": "input should be less than or equal to 10"
    }
    assert problems(with_retries(-1)) == {
        "tasks[0].retries.count": "input should be greater than or equal to 0"
    }
    assert problems(with_retries(True)) == {
        "tasks[0].retries": "input should be a valid dictionary or retry policy object (got true)"
    }
    assert problems(with_retries({"count": 1, "backoffRate": 0})) == {
        "tasks[0].retries.backoffRate": "input should be greater than or equal to 1"
    }


def test_enum_messages_keep_the_values_case():
    assert problems({"tasks": [task(1)], "failurePolicy": "stop"}) == {
        "failurePolicy": "input should be 'failFast' or 'continue'"
    }


def test_an_attempt_leaves_time_to_record_it_within_lambdas_limit():
    assert problems({"tasks": [{**task(1), "timeoutSeconds": 900}]}) == {
        "tasks[0].timeoutSeconds": "input should be less than or equal to 840"
    }


def test_an_approval_takes_no_retries_and_a_jobs_approvals_wait_a_week_at_most():
    approval = {"id": 1, "action": "approval", "params": {"prompt": "ok?", "timeoutSeconds": 400_000}}
    second = {**approval, "id": 2, "retries": 2, "dependencies": [1], "params": {}}
    assert problems({"tasks": [approval, second]}) == {
        "tasks[1].retries": "an approval is decided once; retries do not apply",
    }
    assert problems({"tasks": [approval, {**second, "retries": 0, "params": approval["params"]}]}) == {
        "tasks": "the approvals' timeoutSeconds add up to 800000s; together they may wait at most "
        "604800s (7 days)",
    }
    assert "tasks[0].params.timeoutSeconds" in problems(
        {"tasks": [{**approval, "params": {"timeoutSeconds": 604_801}}]}
    )


def test_the_deadline_of_a_job_with_approvals_adds_their_waits():
    from chalicelib.orchestration.submission import execution_fields, state_machine_input

    job = parse_job(
        {
            "timeoutSeconds": 60,
            "tasks": [{"id": 1, "action": "approval", "params": {"timeoutSeconds": 3_600}}],
        }
    )
    assert execution_fields(job, 0, 86_400)["deadlineAt"] == (60 + 3_600) * 1000
    assert json.loads(state_machine_input("e", job, 86_400))["deadlineSeconds"] == 3_660


def test_the_demo_job_has_a_task_that_streams_its_text():
    """`make demo` shows live text with no network or key: examples/research-report.json's report
    task is an echo with streamSeconds (docs/events.md, README's tour)."""
    from pathlib import Path

    body = json.loads((Path(__file__).parents[2] / "examples" / "research-report.json").read_text())
    job = parse_job(body)
    streaming = [
        t for t in body["tasks"] if t["action"] == "echo" and t["params"].get("streamSeconds", 0) > 0
    ]
    assert len(streaming) == 1 and len(job.tasks) == 5
    assert len(streaming[0]["params"]["text"]) > 200  # long enough to arrive in several events
