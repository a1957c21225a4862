"""gzip for the event stream: whether a request asks for it, and the per-stream encoder.

The stream is one gzip member kept open for the connection's life. Every SSE message written
through ``GzipStream.encode`` comes out compressed and followed by a zlib sync flush
(``Z_SYNC_FLUSH``): the deflate block is closed and byte-aligned, so a client's decompressor can
hand out every byte of the message the moment the chunk arrives — an event, a heartbeat or the
first ``retry:`` reaches the client as soon as it is written, as without compression. Later
messages still refer back to earlier ones through the window, which is where the saving comes from
(the keys and ids of one event repeat in the next). ``finish`` writes the gzip trailer when the
stream ends; a client cut off before it has still decoded every message it received.

Why these zlib parameters (bench/sse_gzip.py prints the numbers): an encoder holds its state for
the stream's life, and a process may hold thousands of streams. zlib's defaults (32 KB window,
memLevel 8) cost about 256 KB per stream; a 4 KB window with memLevel 5 costs about a tenth of that
and loses little on SSE messages, which mostly refer back to the last event or two. Level 6 is
zlib's default: on messages this small the sync flush, not the level, dominates the CPU.

Pure: no I/O. The endpoint (endpoint.py) decides per request and owns the encoder.
"""

from __future__ import annotations

import zlib
from typing import Final

LEVEL: Final = 6
WINDOW_BITS: Final = 12  # a 4 KB window; gzip's decoders take any window up to 32 KB
MEM_LEVEL: Final = 5
_GZIP: Final = 16  # added to the window bits: a gzip header and trailer, not zlib's

GZIP_HEADERS: Final = [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value (RFC 9110 §12.5.3) lets us answer with gzip.

    ``gzip`` (or its old alias ``x-gzip``) with a q-value above 0; or, when neither is named, ``*``
    with a q-value above 0. ``gzip;q=0`` refuses it, also next to ``*`` or a second ``gzip`` (the
    fields of several Accept-Encoding headers are joined into one list first). Names and parameters are
    compared without case; an entry whose q-value is not a valid qvalue is ignored (refused), so a
    malformed header gets the plain stream. No header, or an empty one: no compression.
    """
    if not accept_encoding:
        return False
    named: float | None = None
    star: float | None = None
    for entry in accept_encoding.split(","):
        coding, _, params = entry.partition(";")
        coding = coding.strip().lower()
        q = _qvalue(params)
        if q is None:
            continue
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else min(named, q)  # named twice: a refusal wins
        elif coding == "*":
            star = q
    if named is not None:
        return named > 0
    return star is not None and star > 0


def _qvalue(params: str) -> float | None:
    """The ``q`` of an entry's parameters (1 when absent), None when it is not a valid qvalue
    (``0``–``1`` with at most three decimals)."""
    q = 1.0
    for param in params.split(";"):
        name, eq, value = param.partition("=")
        if not eq or name.strip().lower() != "q":
            continue
        value = value.strip()
        whole, _, decimals = value.partition(".")
        digits = not decimals or (decimals.isascii() and decimals.isdigit())
        if whole not in ("0", "1") or len(decimals) > 3 or not digits or float(value) > 1:
            return None
        q = float(value)
    return q


class GzipStream:
    """One stream's gzip member: ``encode`` each SSE message, ``finish`` once at the end."""

    __slots__ = ("_z",)

    def __init__(self) -> None:
        self._z = zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP + WINDOW_BITS, MEM_LEVEL)

    def encode(self, message: bytes) -> bytes:
        """``message`` compressed and flushed: the client can decode all of it from what has been
        sent so far. The first call's output starts with the gzip header."""
        return self._z.compress(message) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the member (its last block and the CRC-32/length trailer)."""
        return self._z.flush(zlib.Z_FINISH)
