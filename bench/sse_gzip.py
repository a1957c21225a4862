"""bench/sse_gzip — what gzip on the event stream costs (CPU, memory per stream) and saves (bytes).

Builds the SSE messages of two executions with the real event builders and the real SSE encoder,
then compresses each message as the endpoint does (chalicelib/stream/compression.py: one gzip
member per stream, a sync flush after every message) and prints, per zlib configuration:

  wire KB       bytes on the wire, plain and gzip (the ratio is plain ÷ gzip)
  µs/msg        CPU per message per stream (compress + flush), this machine, median of the repeats
  KB/stream     memory one stream's encoder holds (tracemalloc: zlib allocates through Python)
  no-flush      the same messages compressed as one body without flushes: what the flushes cost

and, for the endpoint's configuration, the time a ``since=0`` replay spends at Lambda's response
streaming cap (2 MB/s after the first 6 MB) and the CPU the hub would spend at 10 events/s for
1,000 and 10,000 viewers in one process (each stream compresses each event once).

Workloads (pinned, seeded):
  typical  500 tasks, results of 100 B–1 KB (JSON with text), ≤ 1 KB per event as in the issue's
           bench, a heartbeat every 10 events, the opening snapshot;
  large    600 tasks, results cut to the 16,384-character preview (events of ~16 KB).

    python -m bench.sse_gzip [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.domain import events as ev
from chalicelib.domain import previews, wire
from chalicelib.stream import compression

EID = "dag-exec_8f14e45fceea167a5a36dedd4bea2543"
TEXT = (  # the words results are made of
    "the report lists sources for each claim and the summary keeps the key numbers of revenue "
    "growth margin customers region quarter forecast risk market share analyst note data table "
    "model result chart section figure appendix method sample error"
)
WORDS = TEXT.split()
LAMBDA_UNCAPPED = 6 * 1024 * 1024
LAMBDA_CAP_BPS = 2 * 1024 * 1024
CONFIGS = [  # (label, level, window bits, memLevel)
    ("zlib defaults (6, 32 KB, 8)", 6, 15, 8),
    ("level 1, 32 KB, 8", 1, 15, 8),
    ("endpoint (6, 4 KB, 5)", compression.LEVEL, compression.WINDOW_BITS, compression.MEM_LEVEL),
    ("level 6, 8 KB, 6", 6, 13, 6),
    ("level 6, 1 KB, 3", 6, 10, 3),
]


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        out.append(rng.choice(WORDS) if rng.random() > 0.15 else f"{rng.randint(0, 99999)}")
        length += len(out[-1]) + 1
    return " ".join(out)[:size]


def _stored(event: dict[str, Any], seq: int) -> dict[str, Any]:
    return {**event, "executionId": EID, "timestamp": 1_790_000_000_000 + seq * 137, "seq": seq}


def messages(tasks: int, result_size: Callable[[random.Random], int]) -> list[bytes]:
    """The SSE messages of one execution as a ``since=0`` client gets them: retry, then every event,
    with a heartbeat after every 10th."""
    rng = random.Random(17)
    out = [wire.encode_retry(2000)]
    seq = 0

    def add(event: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        out.append(wire.encode_event(_stored(event, seq)).frame)
        if seq % 10 == 0:
            beat = ev.heartbeat(EID, 1_790_000_000_000 + seq * 137)
            out.append(wire.encode_sse(wire.dumps(beat), event=ev.HEARTBEAT))

    add(ev.execution_created(tasks, json.dumps({"tasks": [{"id": 1, "type": "llm"}]})))
    meta: dict[str, Any] = {"status": "running", "totalTasks": tasks, "completed": set(), "running": set()}
    for task in range(1, tasks + 1):
        add(ev.substep_started(task, f"summarise section {task} of the quarterly report"))
        body = json.dumps({"summary": _text(rng, result_size(rng)), "tokens": rng.randint(100, 4000)})
        add(ev.substep_completed(task, rng.randint(50, 5000), previews.preview(body, f"/results/{task}")))
        meta["completed"].add(task)
        add(ev.execution_updated(meta))
    add(ev.execution_completed(meta, 123_456, previews.preview('{"ok":true}', "/result")))
    return out


def _encode_all(msgs: Iterable[bytes], level: int, wbits: int, mem: int) -> tuple[int, float]:
    z = zlib.compressobj(level, zlib.DEFLATED, 16 + wbits, mem)
    n, start = 0, time.perf_counter()
    for m in msgs:
        n += len(z.compress(m)) + len(z.flush(zlib.Z_SYNC_FLUSH))
    elapsed = time.perf_counter() - start
    return n + len(z.flush()), elapsed


def _encoder_kb(level: int, wbits: int, mem: int, first: bytes, count: int = 200) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = []
    for _ in range(count):
        z = zlib.compressobj(level, zlib.DEFLATED, 16 + wbits, mem)
        z.compress(first)
        z.flush(zlib.Z_SYNC_FLUSH)
        held.append(z)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count / 1024


def _check_round_trip(msgs: list[bytes]) -> None:
    """The endpoint's encoder: after each message, what was sent decodes to exactly what was written."""
    enc, dec, sent, written = compression.GzipStream(), zlib.decompressobj(16 + zlib.MAX_WBITS), b"", b""
    for m in msgs:
        written += m
        sent += dec.decompress(enc.encode(m))
        assert sent == written, "a flushed message did not decode in full"
    assert dec.decompress(enc.finish()) == b"" and dec.eof


def _capped_seconds(n: int) -> float:
    """Seconds a response of ``n`` bytes spends at Lambda's cap (the first 6 MB are uncapped)."""
    return max(0, n - LAMBDA_UNCAPPED) / LAMBDA_CAP_BPS


def run(label: str, msgs: list[bytes], repeats: int) -> float:
    plain = sum(map(len, msgs))
    whole = len(zlib.compress(b"".join(msgs), 6, 16 + 15))
    print(f"\n{label}: {len(msgs)} messages, {plain / 1024:.1f} KB plain, mean {plain / len(msgs):.0f} B")
    print(f"  whole body gzip without flushes (reference): {whole / 1024:.1f} KB, ratio {plain / whole:.1f}×")
    print(f"  {'configuration':<30} {'gzip KB':>9} {'ratio':>6} {'µs/msg':>7} {'KB/stream':>10}")
    endpoint_us = 0.0
    for name, level, wbits, mem in CONFIGS:
        runs = [_encode_all(msgs, level, wbits, mem) for _ in range(repeats)]
        size = runs[0][0]
        us = statistics.median(t for _, t in runs) / len(msgs) * 1e6
        kb = _encoder_kb(level, wbits, mem, msgs[0])
        print(f"  {name:<30} {size / 1024:>9.1f} {plain / size:>5.1f}× {us:>7.1f} {kb:>10.1f}")
        if wbits == compression.WINDOW_BITS and mem == compression.MEM_LEVEL:
            endpoint_us, gz = us, size
    print(
        f"  replay at Lambda's streaming cap: plain {plain / 2**20:.2f} MB → {_capped_seconds(plain):.1f} s capped; "
        f"gzip {gz / 2**20:.2f} MB → {_capped_seconds(gz):.1f} s capped"
    )
    return endpoint_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    typical = messages(500, lambda rng: rng.randint(100, 800))
    large = messages(600, lambda rng: rng.randint(20_000, 60_000))
    _check_round_trip(typical)
    print("bench/sse_gzip: one gzip member per stream, a sync flush after every SSE message")
    us = run("typical (≤ 1 KB events)", typical, args.repeats)
    run("large (16 KB previews)", large, args.repeats)
    for viewers in (1_000, 10_000):
        print(
            f"hub, 10 events/s of typical size, {viewers} viewers in one process: "
            f"{viewers * 10 * us / 1e6:.2f} CPU-seconds per second compressing ({us:.1f} µs × {viewers} × 10)"
        )


if __name__ == "__main__":
    main()
