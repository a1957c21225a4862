"""`dagcast ls/show/trace` against a port nothing listens on: a real refused connection is one line
and exit 2, never a stack trace (the commands against a scripted API are tests/unit/test_trace_cli.py)."""

from __future__ import annotations

import socket

import pytest

from dagcast import cli

EID = "dag-exec_0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def no_config(tmp_path, monkeypatch):
    """No test reads the developer's own ~/.config/dagcast/config.json or environment."""
    monkeypatch.setenv("DAGCAST_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("DAGCAST_API_URL", raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["ls"], ["show", EID], ["trace", EID], ["trace"]])
def test_an_unreachable_api_is_one_line_and_exit_2(capsys, command):
    url = f"http://127.0.0.1:{closed_port()}"
    assert cli.main([*command, "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dagcast: no dagcast API answers at {url}") and "Traceback" not in err
