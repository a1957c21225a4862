"""The event stream compressed, over a real socket: a client that asks for gzip gets each event
decodable the moment it is written (read while the job's next task is still held at a gate), the
same messages byte for byte as a plain stream, and a complete gzip member at the end; a client that
does not ask, or refuses gzip, gets the plain bytes."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import submit
from tests.support.gate import gates
from tests.support.jobs import echo

pytestmark = pytest.mark.e2e


class GzipReader:
    """Raw chunks of a gzip stream, decompressed as they come, split into SSE messages."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buffer = b""
        self.messages: list[bytes] = []

    def until(self, needle: bytes) -> list[bytes]:
        """Read until a message containing ``needle`` has been decoded; every message so far."""
        while not any(needle in m for m in self.messages):
            self._feed(next(self._chunks))
        return self.messages

    def rest(self) -> None:
        for chunk in self._chunks:
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        self._buffer += self._decoder.decompress(chunk)
        *whole, self._buffer = self._buffer.split(b"\n\n")
        self.messages += [m + b"\n\n" for m in whole]

    @property
    def ended(self) -> bool:
        """The member's trailer arrived and checked out (CRC-32 and length)."""
        return self._decoder.eof and not self._buffer


def _since_0(accepted: dict[str, str]) -> str:
    return str(httpx.URL(accepted["eventsUrl"]).copy_merge_params({"since": "0"}))


def _events(messages: list[bytes]) -> list[bytes]:
    return [m for m in messages if not m.startswith(b"event: heartbeat")]


def test_a_gzip_stream_delivers_each_event_as_it_is_written(server):
    with gates() as gate:
        job = {"tasks": [gate.task(1, 1), gate.task(2, 2, [1]), echo(3, "end", [2])]}
        accepted = submit(server, job)
        headers = {"Accept-Encoding": "gzip"}
        with (
            httpx.Client(timeout=httpx.Timeout(10.0)) as client,
            client.stream("GET", _since_0(accepted), headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert response.headers["vary"] == "Accept-Encoding"
            reader = GzipReader(response)
            assert gate.wait_arrived(1)
            first = reader.until(b"event: substep.started\nid: 2\n")
            assert not gate.is_open(1)  # read while task 1 is still held: nothing was buffered
            assert first[0] == b"retry: 2000\n\n"
            assert [m.split(b"\n", 1)[0] for m in _events(first)[1:]] == [
                b"event: execution.created",
                b"event: substep.started",
            ]
            gate.release(1)
            assert gate.wait_arrived(2)
            reader.until(b'"taskId":2')
            assert not gate.is_open(2)
            assert b"event: substep.completed\nid: 3\n" in b"".join(reader.messages)
            gate.release(2)
            reader.rest()
            assert reader.ended
    assert reader.messages[-1].startswith(b"event: execution.completed")
    # the same messages, byte for byte, as a client that asked for none gets them now
    with httpx.stream("GET", _since_0(accepted), headers={"Accept-Encoding": "identity"}) as plain:
        assert "content-encoding" not in plain.headers
        raw = b"".join(plain.iter_raw())
    assert _events(reader.messages) == _events([m + b"\n\n" for m in raw.split(b"\n\n")[:-1]])


@pytest.fixture(scope="module")
def finished(server: str) -> Iterator[dict[str, str]]:
    accepted = submit(server, {"tasks": [echo(1, "a"), echo(2, "b", [1])]})
    with httpx.stream("GET", _since_0(accepted)) as response:  # until the server ends it
        for _ in response.iter_raw():
            pass
    yield accepted


@pytest.mark.parametrize(
    "accept_encoding",
    [None, "identity", "gzip;q=0", "gzip;q=0, *", "deflate, br"],
)
def test_clients_that_do_not_ask_for_gzip_get_the_plain_stream(finished, accept_encoding):
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    with httpx.Client() as client:
        if accept_encoding is None:
            del client.headers["accept-encoding"]  # httpx would send gzip, deflate
        with client.stream("GET", _since_0(finished), headers=headers) as response:
            assert response.request.headers.get("accept-encoding") == accept_encoding
            assert "content-encoding" not in response.headers
            assert "vary" not in response.headers
            raw = b"".join(response.iter_raw())
    assert raw.startswith(b"retry: 2000\n\nevent: execution.created\nid: 1\ndata: {")
    assert raw.endswith(b"\n\n") and b"event: execution.completed" in raw
