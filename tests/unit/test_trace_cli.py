"""Where `dagcast trace/ls/show` go (flags › environment › config file › default), and what they
print for a scripted API — including the errors, which are one line, never a stack trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from chalicelib.domain.events import (
    EXECUTION_COMPLETED,
    EXECUTION_CREATED,
    EXECUTION_UPDATED,
    SUBSTEP_COMPLETED,
    SUBSTEP_STARTED,
)
from dagcast import cli
from dagcast.client import Api, CliError, Target, load_config, resolve_target, stream_access

EID = "dag-exec_0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def no_config(tmp_path, monkeypatch):
    """No test reads the developer's own ~/.config/dagcast/config.json or environment."""
    monkeypatch.setenv("DAGCAST_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("DAGCAST_API_URL", raising=False)


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    monkeypatch.setenv("DAGCAST_CONFIG", str(path))
    return path


# ------------------------------------------------------------------------------------ precedence


def test_the_default_is_the_local_stack():
    assert resolve_target(None, None, None) == Target("http://127.0.0.1:8000", "default", None, None)


def test_flag_beats_environment_beats_config(tmp_path, monkeypatch):
    path = write_config(
        tmp_path,
        monkeypatch,
        {"url": "https://api.example.com/api/", "eventsUrl": "https://sse.example.com/"},
    )
    from_config = resolve_target(None, None, None)
    assert (from_config.api, from_config.api_from, from_config.events) == (
        "https://api.example.com/api",
        str(path),
        "https://sse.example.com",
    )
    monkeypatch.setenv("DAGCAST_API_URL", "http://10.0.0.5:8000")
    from_env = resolve_target(None, None, None)
    # the config's eventsUrl belongs to the config's url: not used with another API
    assert (from_env.api, from_env.api_from, from_env.events) == (
        "http://10.0.0.5:8000",
        "$DAGCAST_API_URL",
        None,
    )
    from_flag = resolve_target("http://127.0.0.1:9000/", "http://127.0.0.1:9001", "tok")
    assert from_flag == Target("http://127.0.0.1:9000", "--url", "http://127.0.0.1:9001", "tok")


def test_the_config_path_follows_xdg(monkeypatch, tmp_path):
    from dagcast.client import config_path

    assert config_path({"DAGCAST_CONFIG": "/x/y.json"}) == Path("/x/y.json")
    assert config_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/dagcast/config.json")
    assert config_path({}) == Path.home() / ".config" / "dagcast" / "config.json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1]", "must be a JSON object"),
        ({"url": 5}, "url must be a string"),
        ({"url": "ftp://x"}, "must be an http:// or https:// URL"),
        ({"url": "http://x", "token": "t"}, r"unknown key\(s\) token"),
    ],
)
def test_a_broken_config_file_is_an_error_that_names_it(tmp_path, monkeypatch, body, message):
    path = write_config(tmp_path, monkeypatch, body)
    with pytest.raises(CliError, match=message) as raised:
        load_config(path)
    assert str(path) in str(raised.value)


def test_bad_urls_in_flags_are_refused():
    with pytest.raises(CliError, match="--url must be an http"):
        resolve_target("localhost:8000", None, None)
    with pytest.raises(CliError, match="--events-url must be an http"):
        resolve_target(None, "sse.example.com", None)


def api_answering(routes: dict[tuple[str, str], httpx.Response]) -> Api:
    def handle(request: httpx.Request) -> httpx.Response:
        return routes.get((request.method, request.url.path), httpx.Response(404, json={"error": "no route"}))

    return Api("http://api.test", httpx.Client(transport=httpx.MockTransport(handle)))


def test_where_the_stream_is_taken_from():
    token_path = ("POST", f"/api/v1/dag-executions/{EID}/stream-token")
    answered = f"https://sse.example.com/api/v1/dag-executions/{EID}/events"
    api = api_answering(
        {token_path: httpx.Response(200, json={"eventsUrl": answered + "?token=T", "streamToken": "T"})}
    )
    plain = Target("http://api.test", "default", None, None)
    assert stream_access(api, plain, EID).__dict__ == {"url": answered, "token": "T"}
    forced = Target("http://api.test", "--url", "http://127.0.0.1:9001", "mine")
    assert stream_access(api, forced, EID).__dict__ == {
        "url": f"http://127.0.0.1:9001/api/v1/dag-executions/{EID}/events",
        "token": "mine",
    }
    auth_off = api_answering({})
    assert stream_access(auth_off, plain, EID).__dict__ == {
        "url": f"http://api.test/api/v1/dag-executions/{EID}/events",
        "token": None,
    }


# ------------------------------------------------------------------------------- the commands


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "--limit", "0"],
        ["ls", "--limit", "x"],
        ["show", EID, "--since", "-1"],
        ["trace", "--plain", "--json"],
        ["show"],
        ["show", ""],
        ["show", "  "],
        ["trace", ""],
    ],
)
def test_bad_flags_exit_2_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "usage: dagcast" in err
    if "" in [a.strip() for a in argv]:
        assert "an execution id cannot be empty" in err


def test_a_broken_config_stops_every_command_before_any_request(tmp_path, monkeypatch, capsys):
    write_config(tmp_path, monkeypatch, "{")
    assert cli.main(["ls"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


TASKS: list[dict[str, Any]] = [
    {
        "taskId": 1,
        "description": "fetch",
        "action": "sleep",
        "dependencies": [],
        "status": "completed",
        "attempt": 1,
        "durationMs": 1000,
        "result": "slept 1s",
    },
    {
        "taskId": 2,
        "description": "summarise",
        "action": "echo",
        "dependencies": [1],
        "status": "completed",
        "attempt": 1,
        "durationMs": 30,
        "result": "done",
    },
]
EXECUTION: dict[str, Any] = {
    "executionId": EID,
    "status": "completed",
    "originalRequest": "two steps",
    "createdAt": 1_795_657_000_000,
    "totalTasks": 2,
    "completedTasks": 2,
    "failedTasks": 0,
    "skippedTasks": 0,
    "runningTasks": 0,
    "waitingTasks": 0,
    "durationMs": 1_200,
    "failurePolicy": "failFast",
    "finalResult": "done",
    "seq": 8,
}
HISTORY: list[dict[str, Any]] = [
    {
        "type": EXECUTION_CREATED,
        "seq": 1,
        "timestamp": 1_795_657_000_000,
        "totalTasks": 2,
        "originalRequest": "two steps",
    },
    {
        "type": SUBSTEP_STARTED,
        "seq": 2,
        "timestamp": 1_795_657_000_100,
        "taskId": 1,
        "description": "fetch",
        "attempt": 1,
    },
    {
        "type": SUBSTEP_COMPLETED,
        "seq": 3,
        "timestamp": 1_795_657_001_100,
        "taskId": 1,
        "durationMs": 1000,
        "attempt": 1,
        "result": "slept 1s",
    },
    {
        "type": EXECUTION_UPDATED,
        "seq": 4,
        "timestamp": 1_795_657_001_110,
        "status": "running",
        "totalTasks": 2,
        "completedTasks": 1,
        "failedTasks": 0,
        "runningTasks": 0,
        "waitingTasks": 1,
    },
    {
        "type": SUBSTEP_STARTED,
        "seq": 5,
        "timestamp": 1_795_657_001_120,
        "taskId": 2,
        "description": "summarise",
        "attempt": 1,
    },
    {
        "type": SUBSTEP_COMPLETED,
        "seq": 6,
        "timestamp": 1_795_657_001_150,
        "taskId": 2,
        "durationMs": 30,
        "attempt": 1,
        "result": "done",
    },
    {
        "type": EXECUTION_UPDATED,
        "seq": 7,
        "timestamp": 1_795_657_001_160,
        "status": "running",
        "totalTasks": 2,
        "completedTasks": 2,
        "failedTasks": 0,
        "runningTasks": 0,
        "waitingTasks": 0,
    },
    {
        "type": EXECUTION_COMPLETED,
        "seq": 8,
        "timestamp": 1_795_657_001_200,
        "status": "completed",
        "totalTasks": 2,
        "completedTasks": 2,
        "failedTasks": 0,
        "durationMs": 1200,
        "finalResult": "done",
    },
]


class FakeApi:
    """The local API and SSE app, as far as these commands use them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        if path == "/api/v1/dag-executions":
            return httpx.Response(
                200, json={"executions": [{k: v for k, v in EXECUTION.items() if k != "seq"}]}
            )
        if path == f"/api/v1/dag-executions/{EID}" and method == "GET":
            return httpx.Response(200, json={**EXECUTION, "tasks": TASKS})
        if path == f"/api/v1/dag-executions/{EID}/stream-token":
            url = f"http://sse.test/api/v1/dag-executions/{EID}/events"
            return httpx.Response(200, json={"eventsUrl": f"{url}?token=T", "streamToken": "T"})
        if path == f"/api/v1/dag-executions/{EID}/events":
            after = request.headers.get("last-event-id")
            if after is None:
                body = {**EXECUTION, "tasks": TASKS, "type": EXECUTION_UPDATED, "snapshot": True}
                return sse([body])
            if int(after) >= 8:
                return httpx.Response(204)
            return sse([e for e in HISTORY if e["seq"] > int(after)])
        return httpx.Response(404, json={"error": f"no execution with id '{path.split('/')[4]}'"})


def sse(events: list[dict[str, Any]]) -> httpx.Response:
    body = b"".join(f"event: {e['type']}\nid: {e['seq']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


@pytest.fixture
def fake(monkeypatch) -> FakeApi:
    api = FakeApi()
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(api), **kw))
    return api


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_is_a_table_of_recent_executions(fake, capsys):
    code, out, _ = run(capsys, "ls", "--limit", "5")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split() == ["execution", "status", "created", "tasks", "duration", "request"]
    assert row.split()[:2] == [EID, "completed"] and "2/2" in row and "1.20s" in row and "two steps" in row
    assert fake.requests[0].url.params["limit"] == "5"
    code, out, _ = run(capsys, "ls", "--json")
    assert json.loads(out)["executions"][0]["executionId"] == EID


def test_show_prints_the_tasks_and_the_history(fake, capsys):
    code, out, _ = run(capsys, "show", EID)
    assert code == 0
    assert out.startswith(f"{EID}  completed  two steps")
    assert "result: done" in out
    tasks = out[out.index("tasks\n") :]
    assert tasks.splitlines()[1].split() == [
        "id",
        "level",
        "description",
        "action",
        "deps",
        "status",
        "attempt",
        "duration",
        "result",
        "/",
        "error",
    ]
    assert tasks.splitlines()[3].split() == [
        "2",
        "1",
        "summarise",
        "echo",
        "1",
        "completed",
        "1",
        "30ms",
        "done",
    ]
    events = out[out.index("events\n") :].splitlines()
    assert [line.split()[0] for line in events[2:]] == [str(s) for s in range(1, 9)]
    assert "execution.completed" in events[-1] and "in 1200 ms → done" in events[-1]
    stream = [r for r in fake.requests if r.url.path.endswith("/events")]
    assert [r.headers.get("last-event-id") for r in stream] == ["0"]  # history from the start, once


def test_show_since_only_asks_for_the_rest(fake, capsys):
    code, out, _ = run(capsys, "show", EID, "--since", "6")
    assert code == 0 and "events after #6" in out
    assert [line.split()[0] for line in out[out.index("events after #6") :].splitlines()[2:]] == ["7", "8"]
    code, out, _ = run(capsys, "show", EID, "--since", "8")
    assert "no events after #8" in out
    code, out, _ = run(capsys, "show", EID, "--json")
    body = json.loads(out)
    assert body["execution"]["executionId"] == EID and [e["seq"] for e in body["events"]] == list(range(1, 9))


def test_an_unknown_id_is_a_clear_error(fake, capsys):
    for command in ("show", "trace"):
        code, _, err = run(capsys, command, "dag-exec_nope", "--url", "http://api.test")
        assert code == 2
        assert (
            err
            == "dagcast: no execution with id 'dag-exec_nope' at http://api.test (dagcast ls lists the recent ones)\n"
        )


def test_trace_plain_and_json_of_a_finished_execution(fake, capsys):
    code, out, err = run(capsys, "trace", EID, "--plain")
    assert code == 0 and err == ""
    assert out.split()[2:5] == ["#8", "execution.updated", "snapshot:"]
    assert "snapshot: completed, 2/2 done, 2 tasks; in 1200 ms → done" in out
    code, out, err = run(capsys, "trace", "--json")
    assert code == 0 and json.loads(out)["snapshot"] is True
    assert err == f"dagcast: tracing the newest execution, {EID}\n"
