"""Every task kind through the real state machine on moto, against real servers on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tests.support.plugins  # noqa: F401  (registers the python functions the jobs call)
from chalicelib.domain.dag import parse_job
from chalicelib.domain.errors import InvalidJob
from tests.functional.conftest import assert_gapless, by_type, echo, run_job
from tests.support.jobs import task
from tests.support.upstream import API_KEY, Upstream


def test_http_get_and_post_with_templates(services, upstream):
    body = {
        "tasks": [
            task(1, "http", {"url": f"{upstream}/weather"}),
            task(
                2,
                "http",
                {
                    "method": "POST",
                    "url": f"{upstream}/echo",
                    "headers": {"X-Test": "city={{1}}"},
                    "body": {"forecast": "{{1}}", "n": 3},
                },
                [1],
            ),
        ]
    }
    eid, events = run_job(services, body)
    assert_gapless(events, eid)
    done = by_type(events, "substep.completed")
    weather = {"status": 200, "body": {"city": "London", "celsius": 15}}
    assert done[1]["result"] == weather
    as_text = json.dumps(weather["body"])
    # {{1}} inside a JSON body and a header is task 1's result as JSON text
    assert done[2]["result"]["status"] == 201
    assert done[2]["result"]["body"]["got"] == {"forecast": json.dumps(weather), "n": 3}
    assert as_text in done[2]["result"]["body"]["x-test"]
    assert events[-1]["type"] == "execution.completed"


def test_http_non_2xx_fails_unless_allowed(services, upstream):
    body = {
        "failurePolicy": "continue",
        "tasks": [
            task(1, "http", {"url": f"{upstream}/status/503"}),
            task(2, "http", {"url": f"{upstream}/status/404", "allowStatus": [404]}),
        ],
    }
    _, events = run_job(services, body)
    failed = by_type(events, "substep.failed")
    assert failed[1]["error"] == f"GET {upstream}/status/503 answered 503: upstream trouble"
    assert by_type(events, "substep.completed")[2]["result"] == {"status": 404, "body": "upstream trouble"}
    assert events[-1]["type"] == "execution.failed"


def test_http_connection_refused_is_a_task_failure(services):
    _, events = run_job(services, {"tasks": [task(1, "http", {"url": "http://127.0.0.1:9/x"})]})
    error = by_type(events, "substep.failed")[1]["error"]
    assert error.startswith("GET http://127.0.0.1:9/x: ConnectError")


def test_python_registered_and_dotted_functions(services, monkeypatch):
    monkeypatch.setenv("DAGCAST_PYTHON_MODULES", "tests.support.plugins")
    body = {
        "tasks": [
            task(1, "python", {"function": "tests.support.plugins:double", "args": {"value": 21}}),
            task(2, "python", {"function": "tests.support.plugins.double", "args": {"value": 1}}),
            task(3, "python", {"function": "tests.sum_inputs", "args": {"offset": 100}}, [1, 2]),
        ]
    }
    _, events = run_job(services, body)
    done = by_type(events, "substep.completed")
    assert (done[1]["result"], done[2]["result"], done[3]["result"]) == (42, 2, 144)
    assert events[-1]["finalResult"] == 144


def test_python_functions_outside_the_allow_list_are_rejected_at_submission(monkeypatch):
    monkeypatch.delenv("DAGCAST_PYTHON_MODULES", raising=False)
    with pytest.raises(InvalidJob) as info:
        parse_job({"tasks": [task(1, "python", {"function": "os:system", "args": {"command": "true"}})]})
    assert [p.path for p in info.value.problems] == ["tasks[0].params"]
    assert "DAGCAST_PYTHON_MODULES" in info.value.problems[0].message


def _llm(tid: int, deps: list[int], key: dict[str, str], upstream: str) -> dict[str, Any]:
    return task(
        tid,
        "llm",
        {
            "baseUrl": f"{upstream}/v1",
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You summarise."},
                {"role": "user", "content": "Summarise {{1}}"},
            ],
            "apiKey": key,
            "temperature": 0.2,
        },
        deps,
    )


def test_llm_chat_completion_with_a_key_from_the_environment(services, upstream, monkeypatch):
    monkeypatch.setenv("TEST_LLM_API_KEY", API_KEY)
    Upstream.seen.clear()
    body = {"tasks": [echo(1, "the weather"), _llm(2, [1], {"env": "TEST_LLM_API_KEY"}, upstream)]}
    eid, events = run_job(services, body)
    assert events[-1]["finalResult"] == "summary of: Summarise the weather"
    call = next(c for c in Upstream.seen if c["path"] == "/v1/chat/completions")
    assert call["body"] == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You summarise."},
            {"role": "user", "content": "Summarise the weather"},
        ],
        "temperature": 0.2,
        "stream": True,  # issue 21: the llm kind streams by default (this server answers JSON)
    }
    # the key went to the model server and nowhere else
    stored = json.dumps(events) + json.dumps(services.orchestrator.snapshot(eid))
    assert API_KEY not in stored


def test_llm_missing_or_forbidden_keys_are_rejected_before_anything_starts(services, upstream, monkeypatch):
    monkeypatch.delenv("MISSING_API_KEY", raising=False)
    before = services.store.list_executions(1)
    with pytest.raises(InvalidJob) as info:
        parse_job(
            {
                "tasks": [
                    echo(1, "x"),
                    _llm(2, [1], {"env": "MISSING_API_KEY"}, upstream),
                    _llm(3, [1], {"env": "DAGCAST_STREAM_SECRET"}, upstream),
                    _llm(4, [1], {"env": "A_API_KEY", "ssm": "/x"}, upstream),
                ]
            }
        )
    problems = {p.path: p.message for p in info.value.problems}
    assert problems["tasks[1].params"] == "the environment variable MISSING_API_KEY is not set"
    assert problems["tasks[2].params"].startswith("env:DAGCAST_STREAM_SECRET is reserved for dagcast")
    assert problems["tasks[3].params.apiKey"] == "value error, give exactly one of env, ssm, secret"
    assert services.store.list_executions(1) == before


def test_lambda_kind_invokes_a_user_function(services, stack):
    def user_handler(event: dict[str, Any], context: Any) -> Any:
        if event.get("explode"):
            raise ValueError("the user function refused")
        return {"received": event}

    arn = stack.add_function("user-fn-kinds", user_handler)
    body = {
        "failurePolicy": "continue",
        "tasks": [
            echo(1, "hello"),
            task(2, "lambda", {"functionName": arn}, [1]),
            task(3, "lambda", {"functionName": "user-fn-kinds", "payload": {"say": "{{1}}!"}}, [1]),
            task(4, "lambda", {"functionName": "user-fn-kinds", "payload": {"explode": True}}),
        ],
    }
    _, events = run_job(services, body)
    done = by_type(events, "substep.completed")
    assert done[2]["result"] == {"received": {"inputs": {"1": "hello"}}}
    assert done[3]["result"] == {"received": {"say": "hello!"}}
    assert by_type(events, "substep.failed")[4]["error"] == "ValueError: the user function refused"
