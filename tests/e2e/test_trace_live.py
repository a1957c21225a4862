"""`dagcast trace`, `ls` and `show` as separate processes against a real `dagcast up`, over real
sockets: live to the end, through stream cuts (Last-Event-ID), in a pseudo-terminal too."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chalicelib.domain.model import TaskStatus
from dagcast.local.launch import DAGCAST
from tests.e2e.conftest import ROOT, start_server, stop_server
from tests.support.cli import dagcast
from tests.support.jobs import echo, sleep

pytestmark = pytest.mark.e2e

SEQ_LINE = re.compile(r"^\[\s*[\d.]+s\]\s+#(\d+) (\S+)")


def diamond(first: float = 2.0) -> dict[str, Any]:
    """1 → (2, 3) → 4; task 1 sleeps long enough for `dagcast trace` to start before it ends."""
    return {
        "originalRequest": "trace me",
        "tasks": [
            sleep(1, first),
            sleep(2, 1.0, [1]),
            echo(3, "three", [1]),
            echo(4, "{{3}} and four", [2, 3]),
        ],
    }


def submit(base: str, job: dict[str, Any]) -> str:
    reply = httpx.post(f"{base}/api/v1/execute-dag", json=job, timeout=30)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["executionId"])


def seqs(out: str) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(2)) for m in map(SEQ_LINE.match, out.splitlines()) if m]


def test_trace_plain_follows_a_running_job_to_its_end(server):
    eid = submit(server, diamond(first=3.0))
    done = dagcast("trace", eid, "--plain", "--url", server)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "execution.completed" in lines[-1] and "three and four" in lines[-1]
    got = seqs(done.stdout)
    assert got[0][1] == "execution.updated" and "snapshot: running" in lines[0]
    numbers = [n for n, _ in got]
    assert numbers == list(range(numbers[0], numbers[-1] + 1))  # the snapshot's seq, then every event once
    for tid in (1, 2, 3, 4):
        assert any(f"substep.completed    task {tid} in" in line for line in lines), done.stdout
    assert done.stderr == ""


def test_trace_json_and_a_finished_execution(server):
    eid = submit(server, diamond(first=3.0))  # long enough for the trace to attach while it runs
    live = dagcast("trace", eid, "--json", "--url", server)
    assert live.returncode == 0, live.stderr
    events = [json.loads(line) for line in live.stdout.splitlines()]
    assert events[0]["snapshot"] is True and events[-1]["type"] == "execution.completed"
    assert all(e["type"] != "heartbeat" for e in events)
    again = dagcast("trace", eid, "--plain", "--url", server)  # finished: the final snapshot, the end
    assert again.returncode == 0
    assert again.stdout.count("\n") == 1 and "snapshot: completed, 4/4 done" in again.stdout


def test_a_failed_execution_exits_1(server):
    eid = submit(
        server,
        {
            "tasks": [
                sleep(1, 3.0),  # long enough for the trace to attach while it runs, on a busy machine too
                {"id": 2, "action": "fail", "params": {"message": "boom"}, "dependencies": [1]},
            ]
        },
    )
    done = dagcast("trace", eid, "--plain", "--url", server)
    assert done.returncode == 1, done.stderr
    last = done.stdout.splitlines()[-1]
    assert "execution.failed" in last and "boom" in last, done.stdout
    assert "substep.failed       task 2: boom" in done.stdout
    again = dagcast("trace", eid, "--plain", "--url", server)  # attached after the end: the snapshot says why
    assert again.returncode == 1
    assert again.stdout.count("\n") == 1 and "snapshot: failed, 1/2 done" in again.stdout
    assert "boom" in again.stdout, again.stdout


def test_ls_and_show(server):
    eid = submit(server, diamond(first=0.2))
    assert dagcast("trace", eid, "--plain", "--url", server).returncode == 0
    listed = dagcast("ls", "--url", server, "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(eid))
    assert row.split()[1] == "completed" and "4/4" in row and "trace me" in row

    shown = dagcast("show", eid, "--url", server)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"{eid}  completed  trace me") and "result: three and four" in out
    for description in ("sleep 1", "sleep 2", "echo 3", "echo 4"):
        assert description in out
    history = out[out.index("\nevents\n") :].splitlines()[3:]
    assert [int(line.split()[0]) for line in history] == list(range(1, len(history) + 1))
    assert "execution.completed" in history[-1]

    since = dagcast("show", eid, "--url", server, "--since", "3", "--json")
    body = json.loads(since.stdout)
    assert body["execution"]["status"] == "completed"
    assert [e["seq"] for e in body["events"]] == list(range(4, len(history) + 1))


def wait_until_running(base: str, eid: str, task_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        execution = httpx.get(f"{base}/api/v1/dag-executions/{eid}", timeout=10).json()
        if any(t["taskId"] == task_id and t["status"] == TaskStatus.RUNNING for t in execution["tasks"]):
            return
        assert time.monotonic() < deadline, f"task {task_id} of {eid} did not start: {execution}"
        time.sleep(0.05)


def test_show_a_running_execution_stops_at_what_has_happened(server):
    eid = submit(server, {"tasks": [sleep(1, 6.0)]})
    wait_until_running(server, eid, 1)
    started = time.monotonic()
    shown = dagcast("show", eid, "--url", server, "--json")
    assert shown.returncode == 0, shown.stderr
    assert time.monotonic() - started < 5  # did not wait for the execution to end
    body = json.loads(shown.stdout)
    assert body["execution"]["status"] == "running"
    assert [e["seq"] for e in body["events"]] == list(range(1, body["execution"]["seq"] + 1))


def test_unknown_ids_and_no_api_are_one_line_errors(server):
    for command in ("trace", "show"):
        missing = dagcast(command, "dag-exec_nope", "--url", server)
        assert missing.returncode == 2
        assert missing.stderr.startswith("dagcast: no execution with id 'dag-exec_nope'")
        assert "Traceback" not in missing.stderr
    nobody = dagcast("ls", "--url", "http://127.0.0.1:9")
    assert nobody.returncode == 2 and nobody.stderr.startswith("dagcast: no dagcast API answers at")


def test_a_bad_token_is_replaced_by_a_fresh_one(server):
    eid = submit(server, diamond(first=0.5))
    done = dagcast("trace", eid, "--plain", "--url", server, "--token", "v1.not-a-real-token")
    assert done.returncode == 0, done.stderr
    assert "got a fresh one" in done.stderr and "execution.completed" in done.stdout


@pytest.fixture(scope="module")
def cutting_server() -> Iterator[str]:
    """Streams end after 1 s (clients are told to wait 0.2 s before reconnecting), heartbeats every
    0.3 s: a client must resume again and again."""
    proc, base = start_server(
        "trace-cuts",
        "--max-stream-seconds",
        "1",
        "--heartbeat-seconds",
        "0.3",
        env={"DAGCAST_RETRY_MS": "200"},
    )
    yield base
    stop_server(proc)


def test_streams_cut_every_second_lose_nothing(cutting_server):
    job = {
        "tasks": [
            sleep(1, 1.5),
            sleep(2, 1.5, [1]),
            sleep(3, 1.0, [1]),
            echo(4, "a", [2]),
            sleep(5, 1.2, [3, 4]),
            echo(6, "end", [5]),
        ]
    }
    eid = submit(cutting_server, job)
    done = dagcast("trace", eid, "--plain", "--url", cutting_server)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("resuming after #") >= 3  # it was cut, and resumed each time
    got = seqs(done.stdout)
    numbers = [n for n, _ in got]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), done.stdout  # no gap, no repeat
    assert got[-1][1] == "execution.completed"
    # every event after the snapshot, exactly as stored (the whole history, read in one go)
    full = dagcast("show", eid, "--url", cutting_server, "--json")
    events = json.loads(full.stdout)["events"]
    stored = [(e["seq"], e["type"]) for e in events]
    assert got[1:] == [s for s in stored if s[0] > numbers[0]]
    completed = {e["taskId"]: e["seq"] for e in events if e["type"] == "substep.completed"}
    assert sorted(completed) == list(range(1, 7))  # every task's completion is in the log
    # and the trace printed each one after its snapshot (a CLI slow to start under load — it
    # imports boto3 — can connect after task 1's 1.5 s: its completion is then in the snapshot)
    for tid, seq in completed.items():
        printed = any(f"substep.completed    task {tid} in" in line for line in done.stdout.splitlines())
        assert printed == (seq > numbers[0]), (tid, seq, numbers[0])


def run_in_pty(*args: str, columns: int = 100, rows: int = 40, timeout: float = 60) -> tuple[int, str]:
    """``dagcast …`` with a pseudo-terminal as stdout (so it draws the live view); its output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGCAST_")}
    env.update(TERM="xterm-256color", DAGCAST_CONFIG=str(ROOT / "test-artifacts" / "no-dagcast-config.json"))
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([str(DAGCAST), *args], cwd=ROOT, env=env, stdout=slave, stderr=slave, stdin=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace")


def plain_text(terminal_output: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal_output).replace("\r", "")


def test_the_live_view_in_a_terminal(server):
    eid = submit(server, diamond(first=1.5))
    code, output = run_in_pty("trace", eid, "--url", server)
    assert code == 0, output
    text = plain_text(output)
    assert "● live" in text  # a frame drawn while it ran …
    # … with a sleeping task spinning (task 1, or task 2 when the CLI took over 1.5 s to start)
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] [12] sleep 1", text), text
    final = text[text.rindex(eid) :]  # … and the final frame, printed once at the end
    assert "completed" in final.splitlines()[0] and "4/4 tasks  100%" in final
    for tid in (1, 2, 3, 4):
        assert re.search(rf"✔ {tid} ", final), final
    assert "╭─ result" in final and "three and four" in final
    assert all(len(line) <= 100 for line in final.splitlines())


def test_run_trace_without_a_terminal_prints_lines(server, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps(diamond(first=0.3)))
    done = dagcast("run", str(job), "--trace", "--url", server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("execution dag-exec_") and "snapshot:" in done.stdout
    assert "execution.completed" in done.stdout.splitlines()[-1]
    as_json = dagcast("run", str(job), "--json", "--url", server)
    assert as_json.returncode == 0 and as_json.stderr.startswith("execution dag-exec_")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[0]["type"] == "execution.created" and events[-1]["type"] == "execution.completed"
