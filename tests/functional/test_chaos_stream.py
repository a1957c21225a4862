"""The short SSE chaos run (issue 8) inside `make test`: 40 real SSE clients over real sockets watch
a ~300-event execution while they cut their own connections at random points, the server aborts
random streams and is restarted on the same port, and the stream poller is restarted — every client
still ends with seq 1..N exactly once, in order, and the fan-out sees each event once.
The long run is `python -m tests.support.chaos_stream` (200 clients, ~1,000 events)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import httpx

from chalicelib.config import Settings
from tests.support.chaos_stream import (
    ClientResult,
    SseParser,
    SseServer,
    StreamChaosConfig,
    StreamChaosReport,
    run_stream_chaos,
)


def test_sse_clients_lose_and_repeat_nothing_through_cuts_and_restarts(stack, services):
    config = StreamChaosConfig(
        clients=40,
        tasks=100,
        width=1,  # one chain: 3 events per task, the cheapest shape for moto
        server_restarts=1,
        poller_restarts=1,
        server_cuts=3,
        server_cut_share=0.2,
        cut_mean_bytes=8_000,
        seed=8,
        timeout_seconds=240,
    )
    report = run_stream_chaos(stack, config, log=print)
    print("\n".join(report.lines()))

    assert report.terminal == "execution.completed"
    assert report.events >= 250, report.events  # 3 per task + created + completed
    assert not report.problems, report.problems[:20]
    assert report.lost == 0 and report.duplicated == 0
    assert report.exact_clients == len(report.clients) == 40
    assert report.received == 40 * report.events
    assert report.fanout_seqs == list(range(1, report.events + 1))
    # the faults really happened, mid-execution
    restarts = [f for f in report.faults if f.kind == "server restart"]
    pollers = [f for f in report.faults if f.kind == "poller restart"]
    assert len(restarts) == 1 and len(pollers) == 1
    assert all(0 < f.at_seq < report.events for f in restarts + pollers)
    assert int(restarts[0].detail.split()[0]) >= 10  # open streams were cut by the restart
    # cuts come after random byte counts, so a client that joins late (a snapshot, not the events
    # so far) reads fewer bytes and cuts less: 74–79 in all were seen under load, hundreds idle
    assert report.client_cuts >= len(report.clients)
    assert report.server_cut_streams >= 3
    ended = {c.ended_by for c in report.clients}
    assert ended == {"terminal", "204"}  # both kinds of client, each ended its own way


def resume(http: httpx.Client, base: str, eid: str, token: str, last: str) -> Any:
    """GET the stream as a client resuming after ``last`` (a context manager: the open response).
    Its raw bytes are parsed, so it asks for them uncompressed (httpx asks for gzip by default)."""
    url = f"{base}/api/v1/dag-executions/{eid}/events"
    headers = {"Last-Event-ID": last, "Accept-Encoding": "identity"}
    return http.stream("GET", url, params={"token": token}, headers=headers)


def test_a_client_that_has_the_terminal_event_gets_204_even_before_the_feed_has_caught_up(stack, services):
    """A browser that got the terminal event reconnects once; on a process whose feed for that
    execution has not polled the terminal event yet it must still get 204, not a stream that only
    ever sends heartbeats (seen as a hang after a restart: the old process's clients are ahead of
    the new process's feeds)."""
    eid = f"dag-exec_chaos{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    written = [
        services.store.append_event(eid, f"k#{i}", {"type": "substep.started", "taskId": i}) for i in range(3)
    ]
    assert written == [2, 3, 4]  # seq 1: execution.created
    token = services.signer.issue(eid).token
    slow = Settings.from_env().model_copy(update={"poll_seconds": 30.0, "idle_poll_seconds": 30.0})
    with (
        SseServer(stack, slow) as server,
        httpx.Client(timeout=10) as http,
        # a client behind the head: its subscription starts this process's feed, which polls
        # once (seq 2..4) and then not again for 30 s
        resume(http, server.base, eid, token, "1") as behind,
    ):
        parser, got = SseParser(), []
        for chunk in behind.iter_raw():
            got += [m.last_id for m in parser.feed(chunk) if m.type != "heartbeat"]
            if "4" in got:
                break
        assert got == ["2", "3", "4"]
        terminal = services.store.append_event(
            eid, "execution.terminal", {"type": "execution.completed", "status": "completed"}
        )
        assert terminal == 5
        # a client that already has the terminal event, from another process
        with resume(http, server.base, eid, token, "5") as ahead:
            status = ahead.status_code  # before the fix: 200, then only heartbeats
        assert status == 204


def test_the_parser_dispatches_only_complete_frames_wherever_a_stream_is_cut():
    frames = (
        b"retry: 100\n\n"
        b'event: substep.started\nid: 1\ndata: {"seq":1,"t":"caf\xc3\xa9 \xe2\x9c\x93"}\n\n'
        b"event: heartbeat\ndata: {}\n\n"
        b': a comment\r\nevent: substep.completed\r\nid: 2\r\ndata: {"seq":2}\r\n\r\n'
    )
    for cut in range(len(frames) + 1):
        parser = SseParser("0")
        messages = parser.feed(frames[:cut])
        complete = [m.last_id for m in messages if m.type != "heartbeat"]
        assert complete == ["1", "2"][: len(complete)]
        # the last event id only moves on a dispatched frame, never on half of one
        assert parser.last_id == (complete[-1] if complete else "0")
        whole = SseParser("0")
        split = whole.feed(frames[:cut]) + whole.feed(frames[cut:])
        assert [(m.type, m.last_id) for m in split] == [
            ("substep.started", "1"),
            ("heartbeat", "1"),
            ("substep.completed", "2"),
        ]
        assert split[0].data == '{"seq":1,"t":"café ✓"}'


def test_the_report_counts_what_a_client_lost_or_got_twice():
    def client(i: int, seqs: list[int]) -> ClientResult:
        return ClientResult(i, "terminal", seqs=seqs, ended_by="terminal")

    rng = random.Random(3)
    shuffled = list(range(1, 6))
    rng.shuffle(shuffled)
    report = StreamChaosReport(
        "e",
        5,
        "execution.completed",
        [
            client(0, [1, 2, 3, 4, 5]),
            client(1, [1, 2, 4, 5]),
            client(2, [1, 2, 2, 3, 4, 5]),
            client(3, shuffled),
        ],
        [],
        [1, 2, 3, 4, 5, 5],
        1.0,
    )
    assert report.lost == 1 and report.duplicated == 1
    assert report.exact_clients == 1  # the shuffled one has every seq once, but not in order
    assert report.fanout_duplicated == 1 and report.fanout_lost == 0
    assert len(report.problems) == 4 and not report.ok


def test_a_client_far_behind_a_fresh_feed_gets_every_large_event(stack, services):
    """A client that resumes far behind this process's feed (the feed started at the head, after a
    restart, say) is served its backlog from the table. DynamoDB answers a Query with at most 1 MB,
    so with large events (a result preview is up to 16 KB) the backlog and any gap take several
    pages — every one must be read, or the events between are skipped."""
    eid = f"dag-exec_chaos{uuid.uuid4().hex[:12]}"
    services.store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
    big = "é" * 7_000  # ~14 KB of UTF-8 per event: ~70 events fill a 1 MB page
    for i in range(150):
        services.store.append_event(eid, f"k#{i}", {"type": "substep.completed", "taskId": i, "result": big})
    head = services.store.last_seq(eid)
    assert head == 151
    token = services.signer.issue(eid).token
    with (
        SseServer(stack, Settings.from_env()) as server,
        httpx.Client(timeout=30) as http,
        # a client at the head starts this process's feed: it holds nothing before seq 151
        resume(http, server.base, eid, token, str(head)) as at_head,
    ):
        next(at_head.iter_raw())  # connected (retry:), so subscribed
        with resume(http, server.base, eid, token, "1") as behind:
            parser, got = SseParser(), list[int]()
            chunks = behind.iter_raw()
            while len(got) < 20:  # it is reading its backlog
                got += [int(m.last_id) for m in parser.feed(next(chunks)) if m.type != "heartbeat"]
            services.store.append_event(eid, "late", {"type": "substep.started", "taskId": 999})
            services.store.append_event(
                eid, "execution.terminal", {"type": "execution.completed", "status": "completed"}
            )
            for chunk in chunks:  # the server ends the stream after the terminal event
                got += [int(m.last_id) for m in parser.feed(chunk) if m.type != "heartbeat"]
    missing = sorted(set(range(2, head + 3)) - set(got))
    assert got == list(range(2, head + 3)), (len(got), missing[:10])


class _Stream:
    """A one-shard DynamoDB Streams client over ``n`` event inserts of execution ``e``."""

    def __init__(self, n: int) -> None:
        self.records: list[dict[str, Any]] = [
            {
                "eventName": "INSERT",
                "dynamodb": {
                    "Keys": {"PK": {"S": "EXEC#e"}, "SK": {"S": f"EVT#{i:012d}"}},
                    "SequenceNumber": f"{i:05d}",
                },
            }
            for i in range(1, n + 1)
        ]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        after = kwargs.get("SequenceNumber")
        seqs = [r["dynamodb"]["SequenceNumber"] for r in self.records]
        return {"ShardIterator": str(seqs.index(after) + 1 if after in seqs else 0)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        i = int(ShardIterator)
        return {
            "Records": self.records[i : i + Limit],
            "NextShardIterator": str(min(i + Limit, len(self.records))),
        }


def test_a_poller_restarted_while_its_handler_is_busy_repeats_nothing(tmp_path, monkeypatch):
    """stop() used to give up after 10 s and return while the fan-out handler was still running (a
    slow webhook); the poller started next read the checkpoint from before that batch and delivered
    it again. Now stop() returns only once the thread is done (here it would have given up after
    0.1 s; the handler takes 1 s)."""
    from dagcast.local.moto import poller as module

    monkeypatch.setattr(module, "STOP_WAIT_LOG_SECONDS", 0.1)
    stream, delivered, busy = _Stream(10), list[int](), threading.Event()

    def handler(batch: dict[str, Any], context: Any) -> dict[str, Any]:
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in batch["Records"]]
        if 4 in seqs and not busy.is_set():
            busy.set()
            time.sleep(1.0)
        delivered.extend(seqs)
        return {"batchItemFailures": []}

    def poller() -> module.StreamPoller:
        checkpoints = module.FileCheckpoints(tmp_path / "checkpoints.json")
        client: Any = stream
        return module.StreamPoller(
            client, "arn", handler, batch_size=3, checkpoints=checkpoints, idle_seconds=0.02
        )

    first = poller()
    first.start()
    assert busy.wait(10)
    first.stop()  # mid-batch: returns once the batch is acknowledged
    assert delivered == [1, 2, 3, 4, 5, 6]
    second = poller()
    second.start()
    deadline = time.monotonic() + 10
    while len(delivered) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    second.stop()
    assert delivered == list(range(1, 11))
