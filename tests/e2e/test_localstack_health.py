"""Finding LocalStack over real sockets, without a LocalStack: nothing listening, a fake health
endpoint missing a service, something else on the port (what the backend sends and builds is
tests/unit/test_localstack.py and tests/functional/test_localstack_provision.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dagcast.local.launch import free_port
from dagcast.local.localstack import connection
from dagcast.local.localstack.errors import LocalStackError


@pytest.fixture
def fake_health() -> Iterator[tuple[str, dict[str, Any]]]:
    """An HTTP server answering /_localstack/health with whatever the test puts in the dict."""
    answer: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200 if self.path == "/_localstack/health" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()


def test_when_nothing_answers_the_error_names_the_endpoint_and_how_to_start_localstack():
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LocalStackError) as caught:
        connection.check_health(endpoint, timeout=2)
    message = str(caught.value)
    assert f"no LocalStack answers at {endpoint}" in message
    assert f"GET {endpoint}/_localstack/health" in message
    assert "localstack start" in message and "LOCALSTACK_ENDPOINT" in message
    assert "Docker" in message and "LOCALSTACK_AUTH_TOKEN" in message


def test_a_localstack_without_a_needed_service_is_refused_by_name(fake_health):
    endpoint, answer = fake_health
    answer.update(
        {
            "version": "2026.9.0",
            "services": {s: "available" for s in connection.REQUIRED_SERVICES if s != "lambda"},
        }
    )
    answer["services"]["stepfunctions"] = "disabled"
    with pytest.raises(LocalStackError, match=r"lambda \(missing\), stepfunctions \(disabled\)"):
        connection.check_health(endpoint)
    answer["services"].update({"lambda": "running", "stepfunctions": "available"})
    assert connection.check_health(endpoint)["version"] == "2026.9.0"


def test_something_else_on_the_port_is_not_taken_for_localstack(fake_health):
    endpoint, answer = fake_health
    answer["hello"] = "world"
    with pytest.raises(LocalStackError, match="is not a LocalStack"):
        connection.check_health(endpoint)


def test_up_with_the_localstack_backend_exits_2_when_none_answers(monkeypatch, capsys):
    from dagcast.cli import main

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LOCALSTACK_ENDPOINT", endpoint)
    assert main(["up", "--backend", "localstack", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert f"no LocalStack answers at {endpoint}" in err and "localstack start" in err
