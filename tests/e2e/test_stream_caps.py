"""The concurrent-stream caps hold across SSE server processes, as in on-demand Lambda.

Several uvicorn processes of the SSE app (``chalicelib.stream.app:app_factory``, what
infra/sse/run.sh starts) share one moto server, each serving one stream like a Lambda environment,
with stream leases on and disconnect detection off (``DAGCAST_SSE_DISCONNECT=off``: no disconnect
reaches a Lambda). Clients are told apart by ``X-Forwarded-For``, or by the request context the Web
Adapter writes (``x-amzn-request-context``) where a test sends one, as behind the function URL.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain import previews
from chalicelib.persistence.executions import DynamoStore
from tests.support import sse_servers as servers
from tests.support.sse_servers import moto_table

pytestmark = pytest.mark.e2e
TABLE = "dagcast-caps"


@pytest.fixture(scope="module")
def moto() -> Iterator[DynamoStore]:
    """A moto server of its own (a process) with the table; the store the test writes through."""
    with moto_table(TABLE, "caps-moto.log") as store:
        yield store


def sse_processes(store: DynamoStore, count: int, **settings: Any) -> Any:
    """``count`` SSE server processes (uvicorn, one app each) on the shared table: (process, base)."""
    return servers.sse_processes(store, count, log="caps-sse", **settings)


def new_execution(store: DynamoStore) -> str:
    eid = f"dag-exec_caps{uuid.uuid4().hex[:12]}"
    store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    return eid


def finish(store: DynamoStore, eid: str) -> None:
    store.append_event(
        eid,
        "execution.terminal",
        ev.execution_completed(store.get_meta(eid), 1, previews.preview('"ok"', "/r")),
    )


class Reply:
    """The head of one events request over a raw socket, the socket kept open (a held stream)."""

    def __init__(self, base: str, eid: str, ip: str, context: str = "") -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        extra = f"X-Amzn-Request-Context: {context}\r\n" if context else ""
        request = (
            f"GET /api/v1/dag-executions/{eid}/events HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\n"
            f"{extra}\r\n"
        )
        self.sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            assert chunk, f"{base} closed without an answer"
            data += chunk
        head, self.rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if self.status != 200:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def admitted(base: str, eid: str, ip: str, timeout: float = 20) -> tuple[Reply, float]:
    """Ask until a stream is admitted (the slot frees asynchronously): the reply, and when."""
    deadline = time.monotonic() + timeout
    while True:
        reply = Reply(base, eid, ip)
        if reply.status == 200:
            return reply, time.monotonic()
        assert reply.status == 429 and time.monotonic() < deadline, f"still refused after {timeout} s"
        time.sleep(0.2)  # the refusal's Retry-After is 5 s; a test need not wait that long


def test_the_caps_hold_across_processes_and_a_slot_frees_when_its_stream_ends(moto):
    with sse_processes(moto, 4, max_streams_per_execution=2, max_streams_per_ip=2) as procs:
        (_, p0), (_, p1), (_, p2), (_, p3) = procs
        e1, e2, e3 = new_execution(moto), new_execution(moto), new_execution(moto)
        held = [Reply(p0, e1, "10.0.0.1"), Reply(p1, e1, "10.0.0.2")]
        assert [r.status for r in held] == [200, 200]
        third = Reply(p2, e1, "10.0.0.3")  # the execution's third stream, on a third process
        assert third.status == 429 and third.headers["retry-after"] == "5"
        held.append(Reply(p2, e2, "10.0.0.1"))  # the client's second stream, on another process
        assert held[-1].status == 200
        over = Reply(p3, e3, "10.0.0.1")  # the client's third
        assert over.status == 429 and over.headers["retry-after"] == "5"
        # Each process holds at most one stream: only the shared count could refuse these two.
        finish(moto, e2)  # ends the client's stream on p2 the normal way: its slot is released
        reply, _ = admitted(p3, e3, "10.0.0.1")
        held.append(reply)
        for r in held:
            r.close()


def test_an_abandoned_stream_keeps_its_slot_until_its_lifetime_ends(moto):
    """No disconnect reaches the process: the stream runs on, renewing its lease, and its slot is
    free only when ``max_stream_seconds`` ends it. (Time is the behaviour under test.)"""
    lifetime, lease = 6.0, 1.5
    with sse_processes(
        moto, 2, max_streams_per_execution=1, max_stream_seconds=lifetime, stream_lease_seconds=lease
    ) as procs:
        (_, p0), (_, p1) = procs
        eid = new_execution(moto)
        viewer = Reply(p0, eid, "10.0.1.1")
        opened = time.monotonic()
        assert viewer.status == 200
        viewer.close()  # the tab is closed; the process is not told
        time.sleep(2 * lease)  # past the lease it took: only its renewals can keep the slot
        refused = Reply(p1, eid, "10.0.1.2")
        assert refused.status == 429
        refused_at = time.monotonic()
        late, freed_at = admitted(p1, eid, "10.0.1.2")
        late.close()
        assert refused_at - opened < lifetime  # (else the check above proved nothing)
        assert freed_at - opened >= lifetime - 0.5  # freed by the stream's end, not before


def test_a_dead_process_leaves_its_slot_until_the_lease_expires(moto):
    lease = 4.0
    with sse_processes(moto, 2, max_streams_per_execution=1, stream_lease_seconds=lease) as procs:
        (doomed, p0), (_, p1) = procs
        eid = new_execution(moto)
        viewer = Reply(p0, eid, "10.0.2.1")
        assert viewer.status == 200
        doomed.send_signal(signal.SIGKILL)  # no release: a crashed or killed environment
        doomed.wait(timeout=10)
        killed = time.monotonic()
        assert Reply(p1, eid, "10.0.2.2").status == 429
        late, freed_at = admitted(p1, eid, "10.0.2.2")
        viewer.close()
        late.close()
        assert freed_at - killed <= lease + 5  # within the lease (and the checks' pace)


def test_behind_the_adapter_a_client_cannot_take_more_streams_by_forging_forwarded_for(moto):
    """The Web Adapter's request context names the client (chalicelib/stream/client_ip.py): two
    streams from one source address, each claiming another X-Forwarded-For, are one client's."""
    context = json.dumps({"http": {"method": "GET", "sourceIp": "203.0.113.9"}})
    with sse_processes(moto, 2, max_streams_per_ip=1) as procs:
        (_, p0), (_, p1) = procs
        first = Reply(p0, new_execution(moto), "10.0.4.1", context)
        assert first.status == 200
        forged = Reply(p1, new_execution(moto), "10.0.4.2", context)  # another process, another XFF
        assert forged.status == 429 and forged.headers["retry-after"] == "5"
        other = Reply(p1, new_execution(moto), "10.0.4.1", json.dumps({"http": {"sourceIp": "203.0.113.10"}}))
        assert other.status == 200  # another source address is another client
        for r in (first, other):
            r.close()
