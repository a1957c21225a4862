"""dagcast.local.launch: what the e2e tests, `make soak` and users' own tests start `dagcast up` with."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagcast.local.launch import start_dagcast_up

pytestmark = pytest.mark.e2e


def test_a_stack_that_exits_at_once_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "up.log"
    with pytest.raises(RuntimeError) as raised:
        start_dagcast_up(["--backend", "nowhere"], log=log, timeout=30)
    message = str(raised.value)
    assert message.startswith("dagcast up exited with 2:")
    assert "nowhere" in message  # the log's tail: argparse's complaint about the backend
    assert "nowhere" in log.read_text()
