"""Records real event streams from `dagcast up` as the fixtures of the JS client's tests
(clients/js/test/fixtures/*.sse): ``python -m tests.support.record_streams`` (`make fixtures`).

Each job is recorded three ways, as the bytes the stream sent (text/event-stream, uncompressed):

- ``NAME.live.sse``: a connect while it runs (no resume point): the snapshot, then every event
  live, heartbeats included, to the end;
- ``NAME.history.sse``: after the end, ``?lastEventId=0``: every event from the first;
- ``NAME.final.sse``: after the end, a fresh connect: the final snapshot only.

The node tests (clients/js/test/fold.test.js) fold each and check that the three agree. Run it
again when an event changes (the recordings are of what the server sends, so they go stale with it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from dagcast.local.launch import start_dagcast_up, stop_dagcast_up
from tests.support.jobs import echo, fail, sleep, task

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "clients" / "js" / "test" / "fixtures"

JOBS: dict[str, dict[str, Any]] = {
    "completed": {
        "originalRequest": "A diamond: two branches, then one step that uses both results",
        "tasks": [
            sleep(1, 0.3),
            sleep(2, 0.8, [1]),
            echo(3, "fast", [1]),
            echo(4, "slow: {{2}}, fast: {{3}}", [2, 3]),
        ],
    },
    "failed": {
        "originalRequest": "A task that fails twice (one retry), and one that is skipped",
        "failurePolicy": "failFast",
        "tasks": [
            {**fail(1, "boom"), "retries": {"count": 1, "backoffSeconds": 1}},
            sleep(2, 3),
            task(3, "echo", {"text": "never"}, [1]),
        ],
    },
}


def record(base: str, name: str, job: dict[str, Any]) -> None:
    reply = httpx.post(f"{base}/api/v1/execute-dag", json=job, timeout=30)
    reply.raise_for_status()
    url = reply.json()["eventsUrl"]
    time.sleep(0.2)  # the recording should start mid-run: a snapshot with something in it
    write(name, "live", read_all(url, {}))
    write(name, "history", read_all(url, {"lastEventId": "0"}))
    write(name, "final", read_all(url, {}))


def read_all(url: str, params: dict[str, str]) -> str:
    """The stream's text until the server ends it (the terminal event, or a finished snapshot)."""
    with httpx.stream("GET", url, params=params, timeout=60) as response:
        response.raise_for_status()
        return "".join(response.iter_text())


def write(name: str, how: str, text: str) -> None:
    path = FIXTURES / f"{name}.{how}.sse"
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)} ({text.count(chr(10) + chr(10))} messages)")


def main() -> int:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    log = ROOT / "test-artifacts" / "dagcast-up-record-streams.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # No auth: the recordings carry no token; heartbeats every half second so the live ones have some.
    proc, base = start_dagcast_up(["--no-auth"], log=log, env={"DAGCAST_HEARTBEAT_SECONDS": "0.5"}, cwd=ROOT)
    try:
        for name, job in JOBS.items():
            record(base, name, job)
    finally:
        stop_dagcast_up(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
