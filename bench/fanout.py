"""bench/fanout — events through the stream handler to N webhook endpoints on 127.0.0.1.

Starts the embedded local stack in this process (moto, the stream poller, the real fan-out handler
and the webhook retry function), registers N webhooks pointing at N real HTTP receivers (in a
process of their own, as the endpoints are other machines: bench/receivers.py; each verifies every
signature), then appends E events spread over X executions as fast as the
store takes them, and waits until every receiver has every event. Prints:

  events/s            events fully delivered to all N endpoints per second (first write → last receipt)
  deliveries/s        HTTP deliveries accepted per second over the same span
  lag p50/p99/max     event written (its timestamp) → the receiver got it, over every delivery
  exactly once        every endpoint got every event once, in seq order per execution
  DynamoDB calls      the fan-out's and webhooks' own calls per delivery

Numbers, not assertions (this is `make bench`), except that it exits 1 when a run was not delivered
exactly once, in order, signed. Everything shares one process and a 2-core machine with moto, so
absolute numbers are far below AWS's; compare runs on the same machine.

    python -m bench.fanout [--endpoints 10] [--executions 4] [--events 100] [--rate 1] [--batch-size 100] [--batch-windows 1,0]

Runs: a burst (every event written as fast as the store takes them: throughput, and the lag
of a backlog) with the first batch window, then a paced run at --rate events/s (the lag when the
fan-out keeps up) with each window: 1 s is template.yaml's mapping, 0 the choice it weighs
(docs/local-mode.md). Each run also prints its fan-out invocations (stream batches handed to the
handler), what a window trades against lag in AWS.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
import uuid
from typing import Any


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--executions", type=int, default=4)
    parser.add_argument("--events", type=int, default=100, help="events per execution")
    parser.add_argument("--rate", type=float, default=1.0, help="events/s of the paced run (all executions)")
    parser.add_argument(
        "--batch-windows",
        default="1,0",
        help="seconds, comma-separated: the burst uses the first, a paced run each (template.yaml: 1)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    windows = [float(w) for w in args.batch_windows.split(",")]
    logging.basicConfig(level=logging.WARNING)

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(
        table_name="dagcast-bench-fanout",
        fanout_batch_size=args.batch_size,
        fanout_batch_window_seconds=windows[0],
    ).start()
    receivers: Any = None
    try:
        import boto3

        import app
        from bench.receivers import ReceiverProcess
        from chalicelib.http import webhook_routes
        from chalicelib.persistence.executions import DynamoStore

        logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
        logging.getLogger("dagcast-webhooks").setLevel(logging.ERROR)
        # The Services the stack's handlers already use (the poller's fan-out, the retry thread):
        # clearing the cache here would count calls on a fresh client nobody else uses.
        services = app.services()
        calls = services.store.instrument()  # the client the fan-out and webhooks use
        writer = DynamoStore(boto3.client("dynamodb"), stack.table_name)  # the emitter's own client

        secret = "bench-secret-0123456789"
        receivers = ReceiverProcess(secret, args.endpoints).start()
        for url in receivers.urls:
            status, body = webhook_routes.create_webhook(
                services, f'{{"url": "{url}", "secret": "{secret}"}}'.encode()
            )
            assert status == 201, body

        ok = [run(stack, writer, receivers, calls, args, 0.0)]
        for window in windows:
            if window != stack.fanout_batch_window_seconds:  # the same poller, another window
                assert stack.poller is not None
                stack.poller.stop()
                stack.fanout_batch_window_seconds = window
                stack.start_poller()
            ok.append(run(stack, writer, receivers, calls, args, args.rate))
    finally:
        if receivers is not None:
            receivers.stop()
        stack.stop()
    if not all(ok):
        sys.exit("bench/fanout: a run was not delivered exactly once, in order, signed (see above)")


def run(stack: Any, writer: Any, receivers: Any, calls: Any, args: Any, rate: float) -> bool:
    """One burst (rate 0: as fast as the store takes them) or a paced run (events/s over all executions);
    whether every endpoint got every event once, in order, signed."""
    receivers.clear()
    executions = [f"dag-exec_bench{uuid.uuid4().hex[:12]}" for _ in range(args.executions)]
    total = args.executions * args.events
    mode = f"paced at {rate:g} events/s" if rate else "burst (as fast as the store takes them)"
    print(
        f"\n{mode}: {args.executions} executions × {args.events} events = {total} events "
        f"→ {args.endpoints} webhook endpoints ({total * args.endpoints} deliveries), "
        f"batch size {args.batch_size}, window {stack.fanout_batch_window_seconds:g} s"
    )
    before = calls.calls
    batches = stack.poller.stats.batches
    stack.poller.stats.handler_seconds.clear()
    t0 = time.time()

    def emit(eid: str, index: int) -> None:
        now = int(time.time() * 1000)
        writer.create_execution(eid, created_at=now, original_request="bench", tasks=[], sink_ids=[])
        for i in range(args.events - 1):
            if rate:
                # Evenly spaced over all executions (event k of the run at k / rate), not the
                # executions' events at the same instants: 1 event/s means one a second.
                delay = t0 + (i * args.executions + index + 1) / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            writer.append_event(eid, f"bench#{i}", {"type": "execution.updated", "i": i})

    threads = [threading.Thread(target=emit, args=(eid, n)) for n, eid in enumerate(executions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = time.time()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(n >= total for n in receivers.counts()):
            break
        time.sleep(0.2)
    accepted = receivers.accepted()
    done = max((x.at for got in accepted for x in got), default=time.time())
    span = done - t0

    lags = [(x.at * 1000 - x.event["timestamp"]) for got in accepted for x in got]
    expected = {eid: [f"{eid}:{n}" for n in range(1, args.events + 1)] for eid in executions}
    exact = all(
        [x.key for x in got if x.event.get("executionId") == eid] == keys
        for got in accepted
        for eid, keys in expected.items()
    )
    signed = all(x.signature_ok for got in accepted for x in got)
    delivered = sum(len(got) for got in accepted)
    print(
        f"  written in        {written - t0:8.2f} s   ({total / (written - t0):.0f} events/s into the store)"
    )
    print(f"  all delivered in  {span:8.2f} s")
    print(f"  events/s          {total / span:8.1f}   (each to all {args.endpoints} endpoints)")
    print(f"  deliveries/s      {delivered / span:8.1f}")
    if lags:
        print(
            f"  lag p50/p99/max   {statistics.median(lags):8.0f} / {percentile(lags, 99):.0f} / "
            f"{max(lags):.0f} ms  (event written → receiver got it)"
        )
    print(f"  exactly once      {'yes' if exact else 'NO'}  (every endpoint: seq 1..{args.events}, in order)")
    print(f"  signatures        {'all valid' if signed else 'INVALID ONES'}")
    print(
        f"  DynamoDB calls    {(calls.calls - before) / max(1, delivered):8.2f} per delivery (fan-out + webhooks)"
    )
    invocations = stack.poller.stats.batches - batches
    print(
        f"  fan-out invocations {invocations:6d}   ({total / max(1, invocations):.1f} events per invocation)"
    )
    handler = [1000 * s for s in stack.poller.stats.handler_seconds]
    if handler:
        print(
            f"  handler p50/p99   {statistics.median(handler):8.0f} / {percentile(handler, 99):.0f} ms"
            "  (one fan-out invocation: its records, then its lanes sent)"
        )
    return exact and signed


if __name__ == "__main__":
    main()
