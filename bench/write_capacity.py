"""bench/write_capacity — what a task costs in DynamoDB write capacity (WCU), table and indexes.

Runs jobs of independent ``echo`` tasks on the embedded local stack (the real state machine on
moto, the real handlers in-process) and meters every write the handlers make (PutItem,
UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems): the item's image is read just before
and just after the call (by a separate client, not counted), and the write is charged by
DynamoDB's rules (``chalicelib/persistence/capacity.py``: the larger image in 1 KB units on the
table; each index written only when a key or projected attribute changes). It prints, per job:

  WCU/task    table, each index, and all together, divided by the tasks
  META        the part of the table's WCU spent on the execution's META item (the hot item)
  writes/task the write calls (a batch counts once)

Run with a short ``originalRequest`` and with the longest a job may have (100,000 characters), so
the cost of a big request on the hot item shows. moto reports no consumed capacity worth reading,
so the figure is computed from item sizes, the same way in AWS and locally; under concurrent
writers an image read around a call may include a neighbour's change (a few bytes of a counter
set): the figures are estimates to ±1 WCU per META write at most.

    python -m bench.write_capacity [--tasks 50] [--request-chars 20,100000]
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from chalicelib.persistence.capacity import WriteMeter


def run(services: Any, poll_store: Any, body: dict[str, Any], timeout: float) -> str:
    from chalicelib.domain.dag import parse_job
    from chalicelib.domain.events import TERMINAL_TYPES

    execution_id = str(services.orchestrator.submit(parse_job(body)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = poll_store.last_event(execution_id)
        if tail and tail["type"] in TERMINAL_TYPES:
            return execution_id
        time.sleep(0.5)
    raise SystemExit(f"{execution_id} did not finish in {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--request-chars", default="20,100000")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-bench-wcu").start()
    try:
        import boto3

        import app
        from chalicelib.persistence.executions import DynamoStore

        app.services.cache_clear()
        services = app.services()
        reader = boto3.client("dynamodb")
        poll_store = DynamoStore(reader, stack.table_name)
        run(
            services,
            poll_store,
            {"tasks": [{"id": 1, "action": "echo", "params": {"text": "w"}}]},
            args.timeout,
        )
        meter = WriteMeter(reader, stack.table_name)
        services.store.meter_writes(meter)
        names = [i["IndexName"] for i in meter.indexes]
        print(
            f"{'tasks':>5} {'request':>8} {'table':>7} "
            + " ".join(f"{n:>9}" for n in names)
            + f" {'total':>7} {'META':>7} {'writes':>7}   (WCU per task; writes = calls per task)"
        )
        for chars in (int(c) for c in args.request_chars.split(",")):
            before, calls = meter.units.copy(), meter.calls
            tasks = [
                {"id": i, "action": "echo", "params": {"text": f"t{i}"}} for i in range(1, args.tasks + 1)
            ]
            run(services, poll_store, {"originalRequest": "r" * chars, "tasks": tasks}, args.timeout)
            used = meter.units - before
            n = args.tasks
            total = used["table"] + sum(used[i] for i in names)
            print(
                f"{n:>5} {chars:>8} {used['table'] / n:>7.1f} "
                + " ".join(f"{used[i] / n:>9.1f}" for i in names)
                + f" {total / n:>7.1f} {used['META'] / n:>7.1f} {(meter.calls - calls) / n:>7.1f}"
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
