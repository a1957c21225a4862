"""`dagcast trace`'s stream client against a scripted server (httpx.MockTransport): reconnects with
Last-Event-ID, dedupe by seq, retry:/Retry-After/backoff, a fresh token on 401, the end on 204."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chalicelib.domain.events import EXECUTION_COMPLETED, EXECUTION_UPDATED, HEARTBEAT, SUBSTEP_STARTED
from dagcast.client import Api, EventStream, Notice, StreamAccess, StreamError

URL = "http://sse.test/api/v1/dag-executions/e1/events"


def frame(event: dict[str, Any], *, retry: int | None = None) -> bytes:
    lines = [f"event: {event['type']}"]
    if "seq" in event:
        lines.append(f"id: {event['seq']}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append("data: " + json.dumps(event))
    return ("\n".join(lines) + "\n\n").encode()


def ev(seq: int, kind: str = SUBSTEP_STARTED, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "seq": seq, "executionId": "e1", "timestamp": 1000 + seq, "taskId": 1, **fields}


def snap(seq: int, status: str = "running") -> dict[str, Any]:
    return {"type": EXECUTION_UPDATED, "snapshot": True, "seq": seq, "status": status, "tasks": []}


DONE = {"type": EXECUTION_COMPLETED, "status": "completed", "durationMs": 5, "finalResult": "ok"}


def sse(*chunks: bytes, then: Exception | None = None) -> httpx.Response:
    def body() -> Iterator[bytes]:
        yield from chunks
        if then is not None:
            raise then

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


class Server:
    """Answers each request with the next scripted response, and records what was asked."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    def last_event_ids(self) -> list[str | None]:
        return [r.headers.get("last-event-id") for r in self.requests]

    def tokens(self) -> list[str | None]:
        return [r.url.params.get("token") for r in self.requests]


def follow(
    server: Server, token: str | None = "t1", **kwargs: Any
) -> tuple[list[dict[str, Any]], list[float], list[Notice]]:
    sleeps: list[float] = []
    notices: list[Notice] = []
    client = httpx.Client(transport=httpx.MockTransport(server))
    stream = EventStream(
        client, StreamAccess(URL, token), sleep=sleeps.append, notify=notices.append, **kwargs
    )
    return list(stream), sleeps, notices


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events if "seq" in e]


def test_snapshot_then_live_events_to_the_terminal_one():
    server = Server(sse(frame(snap(1), retry=2000), frame(ev(2)), frame({**ev(3), **DONE})))
    events, sleeps, _ = follow(server)
    assert seqs(events) == [1, 2, 3]
    assert server.last_event_ids() == [None]  # a fresh connect: the snapshot first
    assert server.tokens() == ["t1"] and sleeps == []
    assert server.requests[0].headers["accept"] == "text/event-stream"


def test_a_dropped_connection_resumes_after_the_last_seq_and_drops_the_overlap():
    server = Server(
        sse(frame(snap(1)), frame(ev(2)), frame(ev(3)), then=httpx.ReadError("connection reset")),
        # a replay that starts earlier than asked (a proxy, a buggy server): 2 and 3 are not repeated
        sse(frame(ev(2)), frame(ev(3)), frame(ev(4)), frame({**ev(5), **DONE})),
    )
    events, sleeps, notices = follow(server)
    assert seqs(events) == [1, 2, 3, 4, 5]
    assert server.last_event_ids() == [None, "3"]
    assert sleeps == []  # the connection had delivered events: resume at once
    assert (
        "resuming after #3" in notices[-2].message and notices[-1].message == "reconnected; resuming after #3"
    )


def test_a_quiet_stream_the_server_closes_is_resumed_after_its_retry_delay():
    server = Server(
        sse(frame(snap(4), retry=500)),
        sse(),  # max stream time: closed, nothing new
        sse(frame({**ev(5), **DONE})),
    )
    events, sleeps, _ = follow(server)
    assert seqs(events) == [4, 5]
    assert server.last_event_ids() == [None, "4", "4"]
    assert sleeps == [0.5]  # retry: 500 honoured


def test_failures_back_off_from_the_retry_delay_and_give_up_in_the_end():
    refused = httpx.ConnectError("connection refused")

    def down(request: httpx.Request) -> httpx.Response:
        raise refused

    server = Server(*[down] * 5)
    with pytest.raises(StreamError, match="lost the event stream after 4 attempts: connection refused"):
        follow(server, max_attempts=4)
    assert len(server.requests) == 5


def test_backoff_doubles_and_is_capped():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    server = Server(*[down] * 7, sse(frame({**ev(1), **DONE})))
    _, sleeps, notices = follow(server)
    assert sleeps == [2, 4, 8, 16, 30, 30, 30]
    assert notices[0].kind == "dropped" and notices[0].message == "refused; reconnecting in 2s"


def test_429_waits_as_long_as_retry_after_says():
    server = Server(
        httpx.Response(429, headers={"retry-after": "5"}, json={"error": "too many concurrent streams"}),
        sse(frame({**ev(1), **DONE})),
    )
    _, sleeps, notices = follow(server)
    assert sleeps == [5.0]
    assert "429: too many concurrent streams" in notices[0].message


def test_an_expired_token_is_replaced_and_the_stream_resumes():
    server = Server(
        sse(frame(snap(1)), frame(ev(2))),
        httpx.Response(401, json={"error": "the stream token expired at …"}),
        sse(frame({**ev(3), **DONE})),
    )
    fresh: list[str] = []

    def refresh() -> str:
        fresh.append("t2")
        return "t2"

    events, _, notices = follow(server, refresh_token=refresh)
    assert seqs(events) == [1, 2, 3] and fresh == ["t2"]
    assert server.tokens() == ["t1", "t1", "t2"]
    assert server.last_event_ids() == [None, "2", "2"]
    assert any(n.kind == "token" for n in notices)


def test_a_token_refused_twice_is_an_error_not_a_loop():
    server = Server(
        httpx.Response(401, json={"error": "bad signature"}),
        httpx.Response(401, json={"error": "bad signature"}),
    )
    with pytest.raises(StreamError, match="answered 401: bad signature"):
        follow(server, refresh_token=lambda: "t2")


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "no execution with id 'e1'"), (403, "the token is for another execution"), (400, "bad since")],
)
def test_errors_that_retrying_cannot_fix_stop_at_once_with_the_servers_words(status, message):
    server = Server(httpx.Response(status, json={"error": message}))
    with pytest.raises(StreamError, match=f"answered {status}: {message}"):
        follow(server)
    assert len(server.requests) == 1


def test_204_after_the_terminal_event_is_the_end():
    server = Server(sse(frame(snap(1)), frame(ev(2))), httpx.Response(204))
    events, sleeps, _ = follow(server)
    assert seqs(events) == [1, 2] and server.last_event_ids() == [None, "2"] and sleeps == []


def test_a_finished_executions_snapshot_then_the_close_is_the_end():
    server = Server(sse(frame(snap(9, "completed"))))
    events, _, notices = follow(server)
    assert seqs(events) == [9] and len(server.requests) == 1
    assert [n.kind for n in notices] == ["connected"]


def test_history_after_a_seq_stops_at_stop_at_without_waiting_for_more():
    server = Server(sse(frame(ev(3)), frame(ev(4)), frame(ev(5)), frame(ev(6))))
    events, _, _ = follow(server, since=2, stop_at=5)
    assert seqs(events) == [3, 4, 5] and server.last_event_ids() == ["2"]


def test_heartbeats_are_passed_on_but_never_move_the_resume_point():
    beat = {"type": HEARTBEAT, "executionId": "e1", "timestamp": 5}
    server = Server(
        sse(frame(snap(1)), frame(beat), then=httpx.ReadError("reset")),
        sse(frame(beat), frame({**ev(2), **DONE})),
    )
    events, sleeps, _ = follow(server)
    assert sleeps == []
    assert [e["type"] for e in events] == [
        EXECUTION_UPDATED,
        HEARTBEAT,
        HEARTBEAT,
        EXECUTION_COMPLETED,
    ]
    assert server.last_event_ids() == [None, "1"]


def test_something_that_is_not_an_event_stream_is_a_clear_error():
    server = Server(httpx.Response(200, json={"message": "Missing Authentication Token"}))
    with pytest.raises(StreamError, match="is not an event stream"):
        follow(server)
    server = Server(sse(b"data: {not json\n\n"))
    with pytest.raises(StreamError, match="not JSON"):
        follow(server)


def test_the_api_gives_a_fresh_token_or_none_when_auth_is_off():
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/e1/stream-token"):
            return httpx.Response(200, json={"eventsUrl": f"{URL}?token=t9", "streamToken": "t9"})
        return httpx.Response(404, json={"error": "stream tokens are not used: auth is off"})

    client = Api("http://api.test/", httpx.Client(transport=httpx.MockTransport(api)))
    assert client.base == "http://api.test"
    assert client.stream_token("e1") == (URL, "t9")
    assert client.stream_token("e2") is None
