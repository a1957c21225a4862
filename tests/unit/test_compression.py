"""gzip for the event stream (chalicelib/stream/compression.py): which Accept-Encoding values get it,
and the encoder byte for byte — after every message, what was sent decodes to exactly what was
written so far."""

from __future__ import annotations

import gzip
import zlib

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain import wire
from chalicelib.stream.compression import GZIP_HEADERS, GzipStream, accepts_gzip
from chalicelib.stream.endpoint import StreamRequest
from tests.support.asgi import events_scope


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZip", True),
        ("x-gzip", True),
        ("gzip, deflate", True),  # httpx's default
        ("gzip, deflate, br, zstd", True),  # Chromium's over https
        ("deflate, br", False),
        ("gzip;q=0", False),
        ("gzip; q=0", False),
        ("gzip;Q=0.000", False),
        ("gzip;q=0.001", True),
        ("gzip;q=1", True),
        ("gzip;q=1.000", True),
        ("gzip ; q=0.5 , identity", True),
        ("*", True),  # any coding not named
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # named beats the wildcard
        ("*;q=0, gzip", True),
        ("br, *;q=0.1", True),
        ("gzip;q=2", False),  # not a qvalue: the entry is ignored
        ("gzip;q=1.5", False),
        ("gzip;q=0.0001", False),
        ("gzip;q=abc", False),
        ("gzip;q=", False),
        ("gzip;q=½", False),
        ("gzip;q=-1", False),
        ("gzip;q=abc, *", True),  # the broken entry is ignored, the wildcard stands
        ("gzip;level=9", True),  # other parameters do not matter
        ("gzipper", False),
        (",,gzip,,", True),
    ],
)
def test_accept_encoding(header: str | None, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


def test_the_request_reads_every_accept_encoding_field() -> None:
    assert not StreamRequest.parse(events_scope(), trust_proxy=False).gzip
    assert StreamRequest.parse(events_scope(("accept-encoding", "gzip")), trust_proxy=False).gzip
    assert not StreamRequest.parse(events_scope(("accept-encoding", "identity")), trust_proxy=False).gzip
    # two header fields are one list (RFC 9110 §5.3): the second refuses what the first allowed
    both = events_scope(("accept-encoding", "gzip"), ("accept-encoding", "gzip;q=0"))
    assert not StreamRequest.parse(both, trust_proxy=False).gzip


def _messages() -> list[bytes]:
    """What a stream writes: retry, a snapshot-like message, events, heartbeats, unicode, one
    message larger than the window and than zlib's output buffer, and an empty write."""
    big = wire.dumps({"type": "substep.completed", "taskId": 9, "result": "x" * 70_000 + "é→"})
    return [
        wire.encode_retry(2000),
        wire.encode_sse('{"snapshot":true,"tasks":[]}', event=ev.EXECUTION_UPDATED, id=4, retry_ms=2000),
        wire.encode_sse('{"type":"substep.started","taskId":1}', event=ev.SUBSTEP_STARTED, id=5),
        wire.encode_sse(wire.dumps(ev.heartbeat("e", 1)), event=ev.HEARTBEAT),
        wire.encode_sse(
            '{"type":"substep.started","taskId":2,"text":"日本語"}', event=ev.SUBSTEP_STARTED, id=6
        ),
        wire.encode_sse(big, event=ev.SUBSTEP_COMPLETED, id=7),
        b"",
        wire.encode_sse(wire.dumps(ev.heartbeat("e", 2)), event=ev.HEARTBEAT),
    ]


def test_each_message_decodes_in_full_from_what_was_sent_so_far() -> None:
    encoder, decoder = GzipStream(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    written, decoded, sent = b"", b"", b""
    for message in _messages():
        chunk = encoder.encode(message)
        sent += chunk
        written += message
        decoded += decoder.decompress(chunk)
        assert decoded == written  # nothing of the message is held back in the encoder
    assert sent.startswith(b"\x1f\x8b")  # the gzip header came with the first message
    end = encoder.finish()
    assert decoder.decompress(end) == b"" and decoder.eof and decoder.unused_data == b""
    assert gzip.decompress(sent + end) == written  # one valid member, CRC and length checked


def test_a_stream_cut_before_its_trailer_still_decodes_every_message_sent() -> None:
    encoder = GzipStream()
    messages = _messages()[:5]
    sent = b"".join(encoder.encode(m) for m in messages)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(sent) == b"".join(messages) and not decoder.eof


def test_later_messages_refer_back_to_earlier_ones() -> None:
    """The point of one member per stream: the second of two similar events costs far less."""
    encoder = GzipStream()
    event = wire.encode_sse(
        '{"type":"substep.started","subStepId":"1","taskId":1,"description":"summarise section 1"}',
        event=ev.SUBSTEP_STARTED,
        id=5,
    )
    first = len(encoder.encode(event))
    second = len(encoder.encode(event.replace(b"5", b"6")))
    assert second < first / 3 and second < len(event) / 4


def test_streams_do_not_share_state() -> None:
    a, b = GzipStream(), GzipStream()
    a.encode(b"data: one\n\n")
    assert b.encode(b"data: two\n\n") == GzipStream().encode(b"data: two\n\n")


def test_the_gzip_answer_names_its_encoding_and_varies_on_accept_encoding() -> None:
    assert dict(GZIP_HEADERS) == {b"content-encoding": b"gzip", b"vary": b"Accept-Encoding"}
