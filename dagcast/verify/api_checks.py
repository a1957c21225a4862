"""The checks that go through dagcast's own front doors: the REST API (API Gateway → the API
Lambda) and the event stream (the SSE function's URL: live, resumed with ``Last-Event-ID``,
gzip). They share one small job, submitted once; each check reads what it needs of it.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from chalicelib.domain.events import TERMINAL_TYPES
from chalicelib.domain.model import ExecutionStatus

from ..client import Api, CliError, EventStream, StreamAccess
from .report import Result, failed, passed, skipped

# Long enough that viewers connect while it runs (the live check), short enough to wait for.
JOB: dict[str, Any] = {
    "tasks": [
        {"id": 1, "description": "verify: wait", "action": "sleep", "params": {"seconds": 3},
         "dependencies": []},
        {"id": 2, "description": "verify: echo", "action": "echo", "params": {"text": "dagcast verify"},
         "dependencies": [1]},
    ]
}  # fmt: skip


@dataclass
class Run:
    """The verify job as the checks saw it."""

    execution_id: str = ""
    access: StreamAccess | None = None
    viewers: list[list[dict[str, Any]]] = field(default_factory=list)  # what each live viewer got
    errors: list[str] = field(default_factory=list)

    @property
    def terminal_seq(self) -> int | None:
        for events in self.viewers:
            if events and events[-1].get("type") in TERMINAL_TYPES:
                return int(events[-1]["seq"])
        return None


def submit(api: Api, run: Run) -> Result:
    try:
        body = api.json("POST", "/api/v1/execute-dag", json=JOB)
        run.execution_id = str(body["executionId"])
        url = httpx.URL(str(body["eventsUrl"]))
    except (CliError, KeyError) as exc:
        return failed("rest-api submit", f"POST /api/v1/execute-dag: {exc}")
    run.access = StreamAccess(str(url.copy_remove_param("token")), url.params.get("token"))
    return passed("rest-api submit", f"202 {run.execution_id}")


def events_url_check(run: Run, events_url: str) -> Result:
    """The API hands out the stack's function URL (the second chalice deploy wired it)."""
    assert run.access is not None
    if not events_url:
        return skipped("sse function url", "the stack has no EventsUrl output")
    if not run.access.url.startswith(events_url.rstrip("/") + "/"):
        return failed("sse function url", f"the API hands out {run.access.url}, the stack's is {events_url}")
    return passed("sse function url", f"the API hands out the stack's EventsUrl ({events_url})")


def watch_live(client: httpx.Client, run: Run, viewers: int) -> list[threading.Thread]:
    """``viewers`` streams from a snapshot, each in a thread, reading to the terminal event."""
    assert run.access is not None
    access = run.access

    def view(into: list[dict[str, Any]]) -> None:
        try:
            into.extend(
                e for e in EventStream(client, access, max_attempts=3) if e.get("type") != "heartbeat"
            )
        except CliError as exc:
            run.errors.append(str(exc))

    run.viewers = [[] for _ in range(viewers)]
    threads = [threading.Thread(target=view, args=(events,), daemon=True) for events in run.viewers]
    for t in threads:
        t.start()
    return threads


def live_check(run: Run, threads: list[threading.Thread], timeout: float) -> Result:
    for t in threads:
        t.join(timeout)
    if run.errors or any(t.is_alive() for t in threads):
        return failed("sse live", "; ".join(run.errors) or f"no terminal event within {timeout:g}s")
    for events in run.viewers:
        snapshot, after = events[0], events[1:]
        seqs = [int(e["seq"]) for e in after]
        if snapshot.get("status") != ExecutionStatus.RUNNING or not after:
            return failed("sse live", "the job had ended before a viewer connected: nothing streamed live")
        if seqs != list(range(int(snapshot["seq"]) + 1, seqs[-1] + 1)):
            return failed("sse live", f"a viewer's seqs have gaps or repeats: {seqs}")
    counts = {len(v) - 1 for v in run.viewers}
    return passed(
        "sse live", f"{len(run.viewers)} viewers, {'/'.join(map(str, sorted(counts)))} live events each"
    )


def rest_check(api: Api, run: Run) -> Result:
    try:
        view = api.execution(run.execution_id)
        api.json("GET", f"/api/v1/dag-executions/{run.execution_id}/result")
    except CliError as exc:
        return failed("rest-api read", str(exc))
    if view.get("status") != ExecutionStatus.COMPLETED:
        return failed("rest-api read", f"the job ended {view.get('status')!r}, not completed")
    return passed("rest-api read", "GET execution: completed; GET result: 200")


def resume_check(client: httpx.Client, run: Run) -> Result:
    """A stream resumed with ``Last-Event-ID`` replays exactly what came after it."""
    last, access = run.terminal_seq, run.access
    if last is None or access is None:
        return skipped("sse resume", "no live stream reached the terminal event")
    since = max(0, last - 2)
    try:
        got = [int(e["seq"]) for e in EventStream(client, access, since=since, max_attempts=3) if "seq" in e]
    except CliError as exc:
        return failed("sse resume", str(exc))
    if got != list(range(since + 1, last + 1)):
        return failed("sse resume", f"Last-Event-ID {since} replayed seqs {got}, not {since + 1}..{last}")
    return passed("sse resume", f"Last-Event-ID {since} → seqs {since + 1}..{last}, nothing lost or repeated")


def gzip_check(client: httpx.Client, run: Run) -> Result:
    """The stream compressed for a client that asks (Accept-Encoding: gzip), decodable to the end."""
    last, access = run.terminal_seq, run.access
    if last is None or access is None:
        return skipped("sse gzip", "no live stream reached the terminal event")
    params = {"token": access.token} if access.token else {}
    headers = {"Last-Event-ID": "0", "Accept-Encoding": "gzip"}
    try:
        with client.stream("GET", access.url, params=params, headers=headers) as response:
            encoding = response.headers.get("content-encoding", "")
            raw = b"".join(response.iter_raw())
    except httpx.HTTPError as exc:
        return failed("sse gzip", f"{type(exc).__name__}: {exc}")
    if encoding != "gzip":
        return failed("sse gzip", f"asked for gzip, got Content-Encoding {encoding or 'none'!r}")
    try:
        text = zlib.decompress(raw, 16 + zlib.MAX_WBITS).decode()
    except zlib.error as exc:
        return failed("sse gzip", f"not a complete gzip stream: {exc}")
    ids = [ln for ln in text.splitlines() if ln.startswith("id:")]
    if len(ids) != last:
        return failed("sse gzip", f"{len(ids)} events decoded, {last} written")
    return passed("sse gzip", f"{len(raw)} bytes gzip → {len(text)} bytes, {last} events")
