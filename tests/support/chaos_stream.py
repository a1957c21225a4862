"""The SSE part of the chaos suite (issue 8): many real SSE clients watch one long execution while
their connections are cut at random points — by the clients, by the server, by restarts of the
server — and the stream poller is restarted mid-execution. Every client must end with the
execution's seqs 1..N, each exactly once, in order; the fan-out must see each event exactly once.

    python -m tests.support.chaos_stream [--clients 200] [--tasks 360] [--width 3] [--server-restarts 3]
                                 [--poller-restarts 2] [--server-cuts 12] [--seed 1]

What runs, in this process, on a started ``MotoStack`` (moto as AWS, the real handlers, the real
state machine, the stack's stream poller) — all but the clients, which get a process of their own
(``_watch``: among moto's threads their event loop spent its time waiting for the GIL):

- the real front (``dagcast.local.server.create_app``: REST API + SSE) under uvicorn in a thread on a
  127.0.0.1 port. ``SseServer.restart()`` stops it the way ``dagcast up`` stops (uvicorn's graceful
  shutdown, then the open streams are cancelled) and starts a fresh app ON THE SAME PORT, as a restarted
  process would; ``SseServer.abort_streams()`` aborts random open event streams from the server's side
  (the TCP transport is dropped mid-write: the client may get half a frame). The app's own
  ``max_stream_seconds`` is short too, so the server also ends streams cleanly all the time;
- N clients (asyncio + httpx, real sockets) that read the stream from ``?since=0`` with a spec-exact
  SSE parser over raw bytes and, like a browser's EventSource, reconnect with ``Last-Event-ID`` = the
  last id they dispatched — after their own random cuts (after a random number of bytes, possibly
  inside a frame or a UTF-8 character, or a random time), after a server-side end or abort, and after
  a restart (retrying refused connections until the server is back). Some join late (they read the
  history first), some fetch their own token (POST stream-token), some send it as a Bearer header.
  Half end at the terminal event; the other half behave like a browser that is never closed: they
  reconnect once more and must get 204. Heartbeats and snapshot frames are not log events. Clients
  never deduplicate: whatever they receive is counted;
- the fan-out handler wrapped to record, per execution, the seqs of the records it acknowledged;
  ``stack.poller.stop()`` + ``stack.start_poller()`` restart the poller mid-execution (it resumes
  after its file checkpoint).

``run_stream_chaos`` returns a ``StreamChaosReport``; the short version runs in `make test`
(tests/functional/test_chaos_stream.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import queue
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from chalicelib.config import Settings
from chalicelib.domain import events as ev
from dagcast.local.lambdas import FANOUT
from tests.support.fanout import fanned_out
from tests.support.jobs import echo

if TYPE_CHECKING:
    import uvicorn

    from chalicelib.persistence.executions import DynamoStore
    from dagcast.local.moto.stack import MotoStack

Log = Callable[[str], None]


# --- the job -------------------------------------------------------------------------------------


def chains_job(tasks: int, width: int) -> dict[str, Any]:
    """``width`` parallel chains of echo tasks, ``tasks`` in all: ~3 events per task (started,
    completed, a progress ``execution.updated`` — fewer when two finish at once) + created + end.
    The texts carry multi-byte UTF-8, so that byte-level cuts can fall inside a character."""
    width = max(1, min(width, tasks))
    body: list[dict[str, Any]] = []
    for tid in range(1, tasks + 1):
        deps = [tid - width] if tid > width else []
        body.append(echo(tid, f"task {tid} · café ✓ {'ü' * (tid % 7)}", deps))
    return {"originalRequest": f"SSE chaos: {tasks} tasks in {width} chains", "tasks": body}


# --- the SSE parser (the WHATWG "event stream interpretation", over raw bytes) -------------------


@dataclass(frozen=True)
class Message:
    type: str
    data: str
    last_id: str  # the EventSource's "last event ID string" after this message


class SseParser:
    """Bytes in, dispatched messages out. Lines end with LF or CRLF (a lone CR inside a line ends it
    too; a stream of CR-only line ends — not what dagcast sends — would wait for an LF). A line is
    decoded only once complete, so a cut inside a frame or a UTF-8 sequence never dispatches
    anything. ``last_id`` starts as the EventSource's last event ID (it survives reconnects, as in a
    browser), and moves only when a message is dispatched."""

    def __init__(self, last_id: str = "") -> None:
        self.last_id_buffer = last_id
        self.last_id = last_id
        self.retry_ms: int | None = None
        self._pending = b""
        self._event = ""
        self._data: list[str] = []
        self._first = True

    def feed(self, chunk: bytes) -> list[Message]:
        out: list[Message] = []
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()  # no LF yet: incomplete (a trailing CR waits for a possible LF)
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            for part in raw.split(b"\r"):  # lone CRs end lines too
                message = self._line(part.decode("utf-8", errors="replace"))
                if message is not None:
                    out.append(message)
        return out

    def _line(self, line: str) -> Message | None:
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if line == "":
            self.last_id = self.last_id_buffer
            data, kind = self._data, self._event or "message"
            self._data, self._event = [], ""
            if not data:
                return None
            return Message(kind, "\n".join(data), self.last_id)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None


# --- the fan-out, recorded -----------------------------------------------------------------------


class FanoutRecorder:
    """Wraps the fan-out handler; records per execution the event seqs of the records the poller
    will acknowledge (those before the first ``batchItemFailures`` entry; none if it raised)."""

    def __init__(self, real: Callable[[dict[str, Any], Any], Any]) -> None:
        self.real = real
        self.delivered: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def __call__(self, batch: dict[str, Any], context: Any) -> Any:
        response = self.real(batch, context)
        failed = {str(f.get("itemIdentifier")) for f in (response or {}).get("batchItemFailures", [])}
        with self._lock:
            for record in batch["Records"]:
                if record["dynamodb"]["SequenceNumber"] in failed:
                    break
                keys = record["dynamodb"]["Keys"]
                pk, sk = keys["PK"]["S"], keys["SK"]["S"]
                if pk.startswith("EXEC#") and sk.startswith("EVT#"):
                    self.delivered.setdefault(pk[5:], []).append(int(sk[4:]))
        return response

    def seqs(self, execution_id: str) -> list[int]:
        with self._lock:
            return list(self.delivered.get(execution_id, []))


def restart_poller(stack: MotoStack, handler: Callable[[dict[str, Any], Any], Any] | None = None) -> float:
    """Stop the stack's stream poller and start a new one (it resumes after its file checkpoint),
    optionally with another fan-out handler. Returns the seconds it took."""
    t0 = time.monotonic()
    assert stack.poller is not None, "the stack has no stream poller"
    stack.poller.stop()
    if handler is not None:
        stack.handlers[FANOUT] = handler
    stack.start_poller()
    return time.monotonic() - t0


@contextlib.contextmanager
def recorded_fanout(stack: MotoStack) -> Iterator[FanoutRecorder]:
    real = stack.handlers[FANOUT]
    recorder = FanoutRecorder(real)
    restart_poller(stack, recorder)
    try:
        yield recorder
    finally:
        restart_poller(stack, real)


# --- the server ----------------------------------------------------------------------------------


def _is_event_stream(connection: Any) -> bool:
    scope = getattr(connection, "scope", None)
    transport = getattr(connection, "transport", None)
    return (
        isinstance(scope, dict)
        and str(scope.get("path", "")).endswith("/events")
        and transport is not None
        and not transport.is_closing()
    )


class SseServer:
    """The real front (REST API + SSE) under uvicorn in a thread; restartable on the same port."""

    def __init__(self, stack: MotoStack, settings: Settings, port: int = 0, grace_seconds: int = 1) -> None:
        self.stack = stack
        self.settings = settings
        self.port = port
        self.grace_seconds = grace_seconds
        self.starts = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> uvicorn.Server:
        """A uvicorn server with a fresh app (what a restarted process has), not yet serving."""
        import uvicorn

        from dagcast.local.server import create_app

        config = uvicorn.Config(
            create_app(self.stack, self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="critical",  # the streams cancelled by each restart would log a traceback each
            access_log=False,
            backlog=4096,
            timeout_graceful_shutdown=self.grace_seconds,
        )
        config.load()
        return uvicorn.Server(config)

    def start(self, prepared: uvicorn.Server | None = None, timeout: float = 30) -> None:
        server = prepared or self._prepare()
        config = server.config
        loop_ready = threading.Event()

        def run() -> None:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                self._loop = runner.get_loop()
                loop_ready.set()
                runner.run(server.serve())

        self._server = server
        self._thread = threading.Thread(target=run, name=f"sse-server-{self.starts}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the SSE server did not start on port {self.port}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SSE server did not start within {timeout} s")
            time.sleep(0.01)
        loop_ready.wait()
        if self.port == 0:
            self.port = int(server.servers[0].sockets[0].getsockname()[1])
        self.starts += 1

    def __enter__(self) -> SseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_loop(self, fn: Callable[[], int]) -> int:
        async def call() -> int:
            return fn()

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def open_streams(self) -> list[Any]:
        assert self._server is not None
        return [c for c in self._server.server_state.connections if _is_event_stream(c)]

    def abort_streams(self, rng: random.Random, share: float) -> int:
        """Abort ``share`` of the open event streams (at least one) from the server's side: their TCP
        transports are dropped at once, whatever is half written. Returns how many."""

        def abort() -> int:
            streams = self.open_streams()
            chosen = rng.sample(streams, min(len(streams), max(1, round(share * len(streams)))))
            for connection in chosen:
                connection.transport.abort()
            return len(chosen)

        return self._on_loop(abort)

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop, as on Ctrl-C: no new connections; open streams are cancelled after
        ``grace_seconds``. Returns how many streams were open; raises if the server hangs."""
        assert self._server is not None and self._thread is not None
        open_streams = self._on_loop(lambda: len(self.open_streams()))
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the SSE server did not stop within {timeout} s (hung on shutdown)")
        return open_streams

    def restart(self) -> tuple[int, float, float]:
        """Stop, then start again on the same port: (streams cut, seconds to stop, to start)."""
        prepared = self._prepare()  # built while the old one still serves: the downtime is uvicorn's
        t0 = time.monotonic()
        cut = self.stop()
        t1 = time.monotonic()
        self.start(prepared)
        return cut, t1 - t0, time.monotonic() - t1


# --- the clients ---------------------------------------------------------------------------------


@dataclass
class ClientResult:
    index: int
    mode: str  # "terminal": stops at the terminal event; "browser": stops at the 204 after it
    seqs: list[int] = field(default_factory=list)
    connects: int = 0  # HTTP responses received (any status)
    client_cuts: int = 0  # connections this client cut itself
    server_ends: int = 0  # streams the server ended cleanly before this client was done
    broken: int = 0  # streams that broke (reset, aborted, cancelled by a restart)
    refused: int = 0  # connection attempts that failed (the server was down)
    errors: Counter[str] = field(default_factory=Counter)  # broken / refused, by exception
    waits: list[float] = field(default_factory=list)  # request sent → response headers, seconds
    retried_status: int = 0  # 429 / 5xx answers, retried
    heartbeats: int = 0
    snapshots: int = 0
    ended_by: str = ""  # "terminal", "204" or what went wrong
    ended_at: float = 0.0  # time.time()
    problems: list[str] = field(default_factory=list)


@dataclass
class _Shared:
    base: str
    execution_id: str
    token: str
    events_path: str
    progress: int = 0  # the highest seq any client has received
    deadline: float = 0.0


class ChaosClient:
    """One EventSource-like client: reads, cuts at random, reconnects with Last-Event-ID, records."""

    def __init__(
        self,
        index: int,
        shared: _Shared,
        http: httpx.AsyncClient,
        rng: random.Random,
        *,
        mode: str,
        start_at_seq: int,
        own_token: bool,
        bearer: bool,
        cut_rate: float,
        cut_mean_bytes: int,
        cut_max_seconds: float,
    ) -> None:
        self.result = ClientResult(index, mode)
        self.shared = shared
        self.http = http
        self.rng = rng
        self.start_at_seq = start_at_seq
        self.own_token = own_token
        self.bearer = bearer
        self.cut_rate = cut_rate
        self.cut_mean_bytes = cut_mean_bytes
        self.cut_max_seconds = cut_max_seconds
        self.last_id = ""
        self.retry_ms = 100
        self.token = shared.token
        self.saw_terminal = False
        self.state = "new"  # late, token, connecting, streaming, pause, done (for the progress log)

    def _problem(self, text: str) -> None:
        if len(self.result.problems) < 20:
            self.result.problems.append(text)

    async def run(self) -> ClientResult:
        s = self.shared
        self.state = "late"
        while s.progress < self.start_at_seq and time.monotonic() < s.deadline:
            await asyncio.sleep(0.05)  # a late joiner: comes in mid-execution, reads the history
        if self.own_token:
            self.state = "token"
            await self._fetch_token()
        failures = 0
        while not self.result.ended_by:
            if time.monotonic() > s.deadline:
                self.result.ended_by = "deadline"
                self._problem(f"not done by the deadline; last id {self.last_id!r}")
                break
            self.state = "connecting"
            outcome = await self._connect_once()
            self.result.ended_at = time.time()
            self.state = "pause"
            if outcome in ("refused", "broken", "status"):
                failures += 1
                await asyncio.sleep(min(1.0, 0.05 * failures) * (0.5 + self.rng.random()))
            else:
                failures = 0
                if not self.result.ended_by:
                    await asyncio.sleep(self.rng.random() * self.retry_ms / 1000)
        self.state = "done"
        return self.result

    async def _fetch_token(self) -> None:
        url = f"{self.shared.base}/api/v1/dag-executions/{self.shared.execution_id}/stream-token"
        while time.monotonic() < self.shared.deadline:
            try:
                reply = await self.http.post(url)
            except httpx.HTTPError:
                await asyncio.sleep(0.1)  # the server is restarting
                continue
            if reply.status_code == 200:
                self.token = str(reply.json()["streamToken"])
                return
            if reply.status_code < 500:
                self._problem(f"POST stream-token answered {reply.status_code}: {reply.text[:200]}")
                return
            await asyncio.sleep(0.1)

    def _plan_cut(self) -> tuple[int | None, float | None]:
        """Where this connection will be cut by the client: after a number of bytes, after a time,
        or not at all (it runs until the server ends it)."""
        r = self.rng.random()
        if r < self.cut_rate / 2:
            return self.rng.randint(1, 2 * self.cut_mean_bytes), None
        if r < self.cut_rate:
            return None, self.rng.uniform(0.01, self.cut_max_seconds)
        return None, None

    async def _connect_once(self) -> str:
        s = self.shared
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        headers["Accept-Encoding"] = "identity"  # the raw bytes are parsed and cut (httpx asks for gzip)
        params = {"since": "0"}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            params["token"] = self.token
        budget, seconds = self._plan_cut()
        cut = False
        asked = time.monotonic()
        try:
            async with (
                asyncio.timeout(seconds),
                self.http.stream("GET", f"{s.base}{s.events_path}", params=params, headers=headers) as r,
            ):
                self.result.connects += 1
                self.result.waits.append(time.monotonic() - asked)
                if r.status_code == 204:
                    if not self.saw_terminal:
                        self._problem(f"204 before the terminal event (last id {self.last_id!r})")
                    self.result.ended_by = "204"
                    return "done"
                if r.status_code == 429 or r.status_code >= 500:
                    await r.aread()
                    self.result.retried_status += 1
                    return "status"
                if r.status_code != 200:
                    await r.aread()
                    self._problem(f"answered {r.status_code}: {r.text[:200]}")
                    self.result.ended_by = f"status {r.status_code}"
                    return "done"
                if self.saw_terminal:
                    # Last-Event-ID is the terminal event: the contract is 204 (docs/sse.md).
                    self._problem(f"a 200 stream after the terminal event (Last-Event-ID {self.last_id})")
                parser = SseParser(self.last_id)
                received = 0
                self.state = "streaming"
                async for chunk in r.aiter_raw():
                    if budget is not None and received + len(chunk) >= budget:
                        chunk, cut = chunk[: budget - received], True
                    received += len(chunk)
                    for message in parser.feed(chunk):
                        self._on_message(message)
                        if self.result.ended_by:
                            return "done"
                    self.last_id = parser.last_id
                    if parser.retry_ms is not None:
                        self.retry_ms = parser.retry_ms
                    if cut:
                        self.result.client_cuts += 1
                        return "cut"
                self.result.server_ends += 1  # the server ended the stream: reconnect
                return "ended"
        except TimeoutError:
            self.result.client_cuts += 1  # this client's timed cut (the stream is closed by now)
            return "cut"
        except httpx.ConnectError as exc:
            self.result.refused += 1
            self.result.errors[type(exc).__name__] += 1
            return "refused"
        except (httpx.TransportError, OSError) as exc:  # reset, aborted, cut mid-body, read timeout
            self.result.broken += 1
            self.result.errors[type(exc).__name__] += 1
            return "broken"

    def _on_message(self, message: Message) -> None:
        self.last_id = message.last_id
        if message.type == ev.HEARTBEAT:
            self.result.heartbeats += 1
            return
        try:
            data = json.loads(message.data)
        except ValueError:
            self._problem(f"not JSON: {message.data[:120]!r}")
            return
        if message.type == ev.EXECUTION_UPDATED and data.get("snapshot"):
            self.result.snapshots += 1  # not a log event (and never sent on a resume)
            return
        if not message.last_id.isdigit():
            self._problem(f"{message.type} without a numeric id: {message.last_id!r}")
            return
        seq = int(message.last_id)
        if data.get("seq") != seq or data.get("type") != message.type:
            self._problem(f"id {seq} / event {message.type} carried seq {data.get('seq')} {data.get('type')}")
        if data.get("executionId") != self.shared.execution_id:
            self._problem(f"seq {seq} of another execution: {data.get('executionId')}")
        self.result.seqs.append(seq)
        if seq > self.shared.progress:
            self.shared.progress = seq
        if message.type in ev.TERMINAL_TYPES:
            self.saw_terminal = True
            if self.result.mode == "terminal":
                self.result.ended_by = "terminal"


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # "server restart", "poller restart", "server cut"
    at_seq: int  # the highest seq any client had received when it was injected
    detail: str = ""


@dataclass
class StreamChaosReport:
    execution_id: str
    events: int  # N: the execution's log, seq 1..N
    terminal: str
    clients: list[ClientResult]
    faults: list[Fault]
    fanout_seqs: list[int]
    seconds: float  # submit → every client done
    execution_seconds: float = 0.0  # execution.created → its terminal event (the log's timestamps)
    ended_at: float = 0.0  # the terminal event's timestamp (time.time())
    stored_problems: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(len(c.seqs) for c in self.clients)

    @property
    def client_cuts(self) -> int:
        return sum(c.client_cuts for c in self.clients)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.faults if f.kind == kind)

    @property
    def server_cut_streams(self) -> int:
        return sum(int(f.detail) for f in self.faults if f.kind == "server cut")

    @property
    def faults_injected(self) -> int:
        return (
            self.client_cuts
            + self.server_cut_streams
            + self.count("server restart")
            + self.count("poller restart")
        )

    @property
    def lost(self) -> int:
        """Over all clients: seqs in 1..N a client never received."""
        expected = set(range(1, self.events + 1))
        return sum(len(expected - set(c.seqs)) for c in self.clients)

    @property
    def duplicated(self) -> int:
        """Over all clients: receipts of a seq the client already had."""
        return sum(len(c.seqs) - len(set(c.seqs)) for c in self.clients)

    @property
    def exact_clients(self) -> int:
        """Clients whose received seqs are exactly 1..N in order."""
        expected = list(range(1, self.events + 1))
        return sum(1 for c in self.clients if c.seqs == expected)

    @property
    def fanout_lost(self) -> int:
        return len(set(range(1, self.events + 1)) - set(self.fanout_seqs))

    @property
    def fanout_duplicated(self) -> int:
        return len(self.fanout_seqs) - len(set(self.fanout_seqs))

    @property
    def problems(self) -> list[str]:
        out = list(self.stored_problems)
        expected = list(range(1, self.events + 1))
        for c in self.clients:
            out += [f"client {c.index}: {p}" for p in c.problems]
            if c.seqs != expected:
                missing = sorted(set(expected) - set(c.seqs))
                twice = sorted(k for k, n in Counter(c.seqs).items() if n > 1)
                out.append(
                    f"client {c.index} ({c.mode}): {len(c.seqs)} events, missing {missing[:10]}, "
                    f"twice {twice[:10]}, in order: {c.seqs == sorted(c.seqs)}"
                )
            if c.ended_by not in ("terminal", "204"):
                out.append(f"client {c.index}: ended by {c.ended_by or 'nothing'}")
            elif c.ended_by != {"terminal": "terminal", "browser": "204"}[c.mode]:
                out.append(f"client {c.index} ({c.mode}) ended by {c.ended_by}")
        if self.fanout_seqs != expected:
            out.append(
                f"fan-out: {len(self.fanout_seqs)} deliveries of {self.events} events, "
                f"lost {self.fanout_lost}, duplicated {self.fanout_duplicated}"
            )
        for f in self.faults:
            if f.kind in ("server restart", "poller restart") and f.at_seq >= self.events:
                out.append(f"{f.kind} after the end of the execution (at seq {f.at_seq})")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        restarts = [f for f in self.faults if f.kind == "server restart"]
        pollers = [f for f in self.faults if f.kind == "poller restart"]
        cuts = [f for f in self.faults if f.kind == "server cut"]
        n = len(self.clients)
        ends = Counter(c.ended_by for c in self.clients)
        errors: Counter[str] = Counter()
        for c in self.clients:
            errors.update(c.errors)

        waits = sorted(w for c in self.clients for w in c.waits)

        def pct(p: float) -> float:
            return waits[min(len(waits) - 1, int(p * len(waits)))] if waits else 0.0

        def total(name: str) -> int:
            return sum(int(getattr(c, name)) for c in self.clients)

        return [
            f"  execution {self.execution_id}: {self.events} events, {self.terminal} in "
            f"{self.execution_seconds:.1f} s; every client done {self.seconds:.1f} s after submitting, the "
            f"last {max((c.ended_at for c in self.clients), default=0) - self.ended_at:.1f} s after the end",
            f"  clients: {n} ({sum(c.mode == 'browser' for c in self.clients)} browser-like, reconnecting "
            f"after the end until 204); {total('connects')} connections; ended by the terminal event "
            f"{ends['terminal']}, by 204 {ends['204']}; the server answered a connection in "
            f"p50 {pct(0.5) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, max {pct(1.0):.1f} s",
            f"  client cuts: {self.client_cuts} (after random bytes or time); server cuts: "
            f"{self.server_cut_streams} streams aborted in {len(cuts)} rounds",
            "  server restarts: "
            + (", ".join(f"at seq {f.at_seq} ({f.detail})" for f in restarts) if restarts else "none"),
            "  poller restarts: "
            + (", ".join(f"at seq {f.at_seq} ({f.detail})" for f in pollers) if pollers else "none"),
            f"  streams ended by the server (max stream time, end): {total('server_ends')}; broken: "
            f"{total('broken')}; refused connects: {total('refused')}; by exception: "
            + (", ".join(f"{k} {v}" for k, v in errors.most_common()) or "none")
            + f"; 429/5xx: {total('retried_status')}; "
            f"heartbeats: {total('heartbeats')}; snapshots: {total('snapshots')}",
            f"  every client got seq 1..{self.events} exactly once, in order: {self.exact_clients}/{n}",
            f"  fan-out: {len(self.fanout_seqs)} deliveries of {self.events} events, lost "
            f"{self.fanout_lost}, duplicated {self.fanout_duplicated}",
            f"faults injected: {self.faults_injected} (client cuts {self.client_cuts}, server cuts "
            f"{self.server_cut_streams}, server restarts {len(restarts)}, poller restarts {len(pollers)}); "
            f"events checked: {self.received + len(self.fanout_seqs)} ({self.received} received by the "
            f"clients + {len(self.fanout_seqs)} fan-out deliveries); lost: {self.lost + self.fanout_lost}; "
            f"duplicated: {self.duplicated + self.fanout_duplicated}",
        ]


# --- the run -------------------------------------------------------------------------------------


@dataclass
class StreamChaosConfig:
    clients: int = 200
    tasks: int = 360  # ~2.8 events per task in 3 chains: ~1,000 events
    width: int = 3  # parallel chains
    server_restarts: int = 3
    poller_restarts: int = 2
    server_cuts: int = 12  # rounds of server-side aborts, each of ``server_cut_share`` of the streams
    server_cut_share: float = 0.1
    cut_rate: float = 0.7  # share of connections the client cuts itself
    cut_mean_bytes: int = 12_000
    cut_max_seconds: float = 3.0
    late_share: float = 0.15  # clients that join mid-execution
    browser_share: float = 0.5  # clients that stop only at the 204 after the end
    own_token_share: float = 0.25  # clients that POST stream-token for their own token
    bearer_share: float = 0.5  # clients that send the token as Authorization: Bearer
    heartbeat_seconds: float = 1.0
    max_stream_seconds: float = 4.0
    retry_ms: int = 100
    grace_seconds: int = 1  # the server's graceful shutdown before open streams are cancelled
    seed: int = 1
    timeout_seconds: float = 900.0

    @property
    def expected_events(self) -> int:
        """A low estimate of N (progress events coalesce when tasks finish together), for placing
        the faults before the end."""
        return max(10, int(2.5 * self.tasks))


def _schedule(rng: random.Random, config: StreamChaosConfig) -> list[tuple[int, str]]:
    """(seq, fault) pairs, spread over the first 80 % of the expected events."""
    n = config.expected_events

    def at() -> int:
        return rng.randint(max(2, n // 10), max(3, n * 8 // 10))

    plan = [(at(), "server restart") for _ in range(config.server_restarts)]
    plan += [(at(), "poller restart") for _ in range(config.poller_restarts)]
    plan += [(at(), "server cut") for _ in range(config.server_cuts)]
    return sorted(plan)


def read_log(store: DynamoStore, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while page := store.events_after(execution_id, events[-1]["seq"] if events else 0):
        events += page
    return events


STATES = ("new", "late", "token", "connecting", "streaming", "pause", "done")


@dataclass(frozen=True)
class _ClientSpec:
    seed: int
    mode: str
    start_at_seq: int
    own_token: bool
    bearer: bool


def _client_spec(config: StreamChaosConfig, rng: random.Random) -> _ClientSpec:
    late = rng.random() < config.late_share
    return _ClientSpec(
        seed=rng.getrandbits(64),
        mode="browser" if rng.random() < config.browser_share else "terminal",
        start_at_seq=rng.randint(1, config.expected_events * 2 // 3) if late else 0,
        own_token=rng.random() < config.own_token_share,
        bearer=rng.random() < config.bearer_share,
    )


@dataclass(frozen=True)
class _ClientsPlan:
    """What the clients' process needs (pickled to it)."""

    base: str
    execution_id: str
    token: str
    events_path: str
    seconds: float
    clients: list[_ClientSpec]
    cut_rate: float
    cut_mean_bytes: int
    cut_max_seconds: float
    read_timeout: float


def _watch(plan: _ClientsPlan, progress: Any, states: Any, out: Any) -> None:
    """The clients' process: every client, on one event loop; the results (or a traceback) to ``out``.

    The clients get a process of their own: in the stack's process, where moto's threads keep the
    GIL busy, every socket call of the clients' event loop (connect, send, epoll register, close —
    each releases the GIL and must wait to take it back) cost milliseconds, and the loop fell
    seconds behind: the harness measured its own lateness, not the server's. (``dagcast up`` keeps
    the SSE front out of moto's process for the same reason.)"""
    try:
        _fail_fast_on_missing_sniffio()
        # (not uvloop: anyio then fails with AttributeError on a socket the server closed at once)
        out.put(asyncio.run(_watch_all(plan, progress, states)))
    except BaseException:
        out.put(traceback.format_exc())


async def _watch_all(plan: _ClientsPlan, progress: Any, states: Any) -> list[ClientResult]:
    shared = _Shared(
        plan.base, plan.execution_id, plan.token, plan.events_path, deadline=time.monotonic() + plan.seconds
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(10.0, read=plan.read_timeout)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        clients = [
            ChaosClient(
                i,
                shared,
                http,
                random.Random(spec.seed),
                mode=spec.mode,
                start_at_seq=spec.start_at_seq,
                own_token=spec.own_token,
                bearer=spec.bearer,
                cut_rate=plan.cut_rate,
                cut_mean_bytes=plan.cut_mean_bytes,
                cut_max_seconds=plan.cut_max_seconds,
            )
            for i, spec in enumerate(plan.clients)
        ]

        def publish() -> None:  # for the harness: progress (to place the faults) and a census
            progress.value = shared.progress
            counts = Counter(c.state for c in clients)
            for i, name in enumerate(STATES):
                states[i] = counts[name]

        async def publish_often() -> None:
            while True:
                publish()
                await asyncio.sleep(0.02)

        publisher = asyncio.get_running_loop().create_task(publish_often())
        try:
            return list(await asyncio.gather(*(c.run() for c in clients)))
        finally:
            publisher.cancel()
            publish()


def _fail_fast_on_missing_sniffio() -> None:
    """httpcore (the async side of httpx) runs ``import sniffio`` on every request and lock. sniffio
    is not installed here (anyio 4 no longer needs it), and a failed import is not cached: each one
    scans sys.path again, a stat() per entry (when the clients shared the stack's process, every
    stat() also waited for the GIL: connects took seconds). Called in the clients' process only: a
    None in sys.modules makes that import fail at once, as it would anyway, without the scan."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def run_stream_chaos(
    stack: MotoStack, config: StreamChaosConfig, log: Log | None = None
) -> StreamChaosReport:
    """Serve, submit, watch with ``config.clients`` clients under faults; see the module docstring."""
    import app

    say = log or (lambda _: None)
    rng = random.Random(config.seed)
    settings = Settings.from_env().model_copy(
        update={
            "heartbeat_seconds": config.heartbeat_seconds,
            "max_stream_seconds": config.max_stream_seconds,
            "retry_ms": config.retry_ms,
            # every client comes from 127.0.0.1: the per-IP limit (50) is not what is tested here
            "max_streams_per_ip": 100_000,
            "max_streams_per_execution": 100_000,
            # nor the tenant's (500 streams): a killed server's slots stay taken until they expire
            "tenants": json.dumps({"*": {"maxStreams": 0}}),
        }
    )
    store = app.services().store
    server = SseServer(stack, settings, grace_seconds=config.grace_seconds)
    server.start()
    faults: list[Fault] = []
    t0 = time.monotonic()
    try:
        with recorded_fanout(stack) as fanout:
            reply = httpx.post(
                f"{server.base}/api/v1/execute-dag", json=chains_job(config.tasks, config.width), timeout=60
            )
            if reply.status_code != 202:
                raise RuntimeError(f"execute-dag answered {reply.status_code}: {reply.text[:500]}")
            accepted = reply.json()
            execution_id = str(accepted["executionId"])
            events_url = httpx.URL(str(accepted["eventsUrl"]))
            say(f"  submitted {execution_id} ({config.tasks} tasks); {config.clients} clients connect")
            plan = _ClientsPlan(
                base=server.base,
                execution_id=execution_id,
                token=str(accepted.get("streamToken", "")),
                events_path=events_url.path,
                seconds=config.timeout_seconds,
                clients=[
                    _client_spec(config, random.Random(rng.getrandbits(64))) for _ in range(config.clients)
                ],
                cut_rate=config.cut_rate,
                cut_mean_bytes=config.cut_mean_bytes,
                cut_max_seconds=config.cut_max_seconds,
                read_timeout=max(10.0, 10 * config.heartbeat_seconds),
            )
            ctx = multiprocessing.get_context("spawn")  # no fork of a process full of moto's threads
            progress = ctx.Value("q", 0, lock=False)
            states = ctx.Array("i", len(STATES), lock=False)
            out = ctx.Queue()
            proc = ctx.Process(
                target=_watch, args=(plan, progress, states, out), name="sse-chaos-clients", daemon=True
            )
            proc.start()

            def state_counts() -> str:
                return ", ".join(f"{name} {states[i]}" for i, name in enumerate(STATES) if states[i])

            schedule = _schedule(rng, config)
            next_note = time.monotonic() + 10
            answer: list[ClientResult] | str | None = None
            while answer is None:
                try:
                    answer = out.get(timeout=0.05)
                except queue.Empty:
                    if not proc.is_alive():
                        raise RuntimeError(f"the clients' process died ({proc.exitcode})") from None
                if time.monotonic() >= next_note:
                    next_note += 10
                    say(f"  seq {progress.value}; clients: {state_counts()}")
                while schedule and progress.value >= schedule[0][0]:
                    _, kind = schedule.pop(0)
                    at = int(progress.value)
                    if kind == "server restart":
                        cut, stopping, starting = server.restart()
                        detail = (
                            f"{cut} open streams cut; stopped in {stopping:.2f} s, up in {starting:.2f} s"
                        )
                        faults.append(Fault(kind, at, detail))
                    elif kind == "poller restart":
                        took = restart_poller(stack)
                        faults.append(Fault(kind, at, f"{took:.2f} s"))
                    else:
                        aborted = server.abort_streams(rng, config.server_cut_share)
                        if not aborted:  # every client is between connections (just after a restart)
                            schedule.append((at + 3, kind))
                            schedule.sort()
                            continue
                        faults.append(Fault(kind, at, str(aborted)))
                    say(f"  {faults[-1].kind} at seq {at}: {faults[-1].detail} (clients: {state_counts()})")
            seconds = time.monotonic() - t0
            proc.join(30)
            if isinstance(answer, str):
                raise RuntimeError(f"the SSE clients crashed:\n{answer}")
            results = answer

            log_events = read_log(store, execution_id)
            stored_problems: list[str] = []
            if [e["seq"] for e in log_events] != list(range(1, len(log_events) + 1)):
                stored_problems.append("the stored log itself is not gapless")
            terminal = str(log_events[-1]["type"]) if log_events else "nothing"
            if terminal not in ev.TERMINAL_TYPES:
                stored_problems.append(f"the execution did not end (last event: {terminal})")
            n = len(log_events)
            # The fan-out may trail the clients: wait until the poller has acknowledged every record
            # in the stream (no poller restart is due any more). A repeat would be a redelivery of
            # a record not yet acknowledged: by then it has happened, or it never will.
            until = time.monotonic() + 60
            while not (len(fanout.seqs(execution_id)) >= n and fanned_out(stack)):
                if time.monotonic() > until:
                    break
                time.sleep(0.1)
            fanout_seqs = fanout.seqs(execution_id)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    return StreamChaosReport(
        execution_id,
        n,
        terminal,
        sorted(results, key=lambda c: c.index),
        faults,
        fanout_seqs,
        seconds,
        execution_seconds=(log_events[-1]["timestamp"] - log_events[0]["timestamp"]) / 1000 if n else 0.0,
        ended_at=log_events[-1]["timestamp"] / 1000 if n else 0.0,
        stored_problems=stored_problems,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = StreamChaosConfig()
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--tasks", type=int, default=defaults.tasks, help="echo tasks (~3 events each)")
    parser.add_argument("--width", type=int, default=defaults.width, help="parallel chains")
    parser.add_argument("--server-restarts", type=int, default=defaults.server_restarts)
    parser.add_argument("--poller-restarts", type=int, default=defaults.poller_restarts)
    parser.add_argument(
        "--server-cuts", type=int, default=defaults.server_cuts, help="rounds of server-side stream aborts"
    )
    parser.add_argument(
        "--cut-rate", type=float, default=defaults.cut_rate, help="share of connections a client cuts"
    )
    parser.add_argument("--max-stream-seconds", type=float, default=defaults.max_stream_seconds)
    parser.add_argument("--timeout", type=float, default=defaults.timeout_seconds, help="seconds in all")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    from dagcast.local.moto.stack import MotoStack

    config = StreamChaosConfig(
        clients=args.clients,
        tasks=args.tasks,
        width=args.width,
        server_restarts=args.server_restarts,
        poller_restarts=args.poller_restarts,
        server_cuts=args.server_cuts,
        cut_rate=args.cut_rate,
        max_stream_seconds=args.max_stream_seconds,
        timeout_seconds=args.timeout,
        seed=args.seed,
    )
    print(
        f"chaos (SSE): {config.clients} clients watch one execution of {config.tasks} tasks "
        f"({config.width} chains) while connections are cut; {config.server_restarts} server restarts, "
        f"{config.poller_restarts} poller restarts, seed {config.seed}",
        flush=True,
    )
    stack = MotoStack(table_name="dagcast-chaos-stream").start()
    try:
        logging.getLogger("dagcast-fanout").setLevel(logging.ERROR)
        report = run_stream_chaos(stack, config, log=lambda line: print(line, flush=True))
    finally:
        stack.stop()
    for line in report.lines():
        print(line)
    for problem in report.problems[:30]:
        print(f"  PROBLEM {problem}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
