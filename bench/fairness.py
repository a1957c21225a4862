"""bench/fairness — one tenant floods, another is not starved (docs/security.md#quotas).

On the embedded local stack (moto running the real state machine, the real handlers in-process),
tenant ``flood`` (maxRunningExecutions 10, maxRunningTasks 20) submits 100 executions in a burst
(16 client threads), each four parallel ``sleep`` tasks; tenant ``lone`` submits one execution of
one task. Printed:

  flood 202s / 429s     what the burst got: accepted, refused (maxRunningExecutions; no queue)
  lone time-to-first-task, alone and under the flood: submit (the client's clock) → the first
                        ``substep.started`` event — median of --runs, and the ratio (goal ≤ 2×)
  DynamoDB calls per task of the flood's executions, with the tenant quotas on

With ``--no-quotas`` the flood is unlimited (the 100 executions run at once) for comparison.
Numbers, not assertions: this is `make bench`. One process serves every AWS call locally, so a
flood slows everything in it; in AWS the starvation is in task-Lambda concurrency, which
maxRunningTasks bounds per tenant in the same way.

    python -m bench.fairness [--executions 100] [--runs 3] [--no-quotas]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FLOOD = {"maxRunningExecutions": 10, "maxRunningTasks": 20, "submitsPerSecond": 0}


def first_task_ms(services: Any, tenant: str, body: bytes, timeout: float = 120) -> float:
    """Submit as ``tenant``; ms from the submit to the execution's first substep.started."""
    from chalicelib.http import api

    started = time.time() * 1000
    status, answer, _ = api.answer(lambda: api.execute_dag(services, body, "", tenant=tenant))
    assert status == 202, answer
    eid = answer["executionId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in services.store.events_after(eid, 0):
            if event["type"] == "substep.started":
                return float(event["timestamp"]) - started
        time.sleep(0.01)
    raise RuntimeError(f"{eid}: no task started in {timeout}s")


def burst(services: Any, body: bytes, n: int) -> tuple[list[str], int, list[str]]:
    """``n`` submits of ``flood`` at once: (accepted ids, refused count, refusal messages)."""
    from chalicelib.http import api

    def one(_: int) -> tuple[int, dict[str, Any]]:
        status, answer, _headers = api.answer(lambda: api.execute_dag(services, body, "", tenant="flood"))
        return status, answer

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(one, range(n)))
    accepted = [a["executionId"] for s, a in replies if s == 202]
    refused = [a["error"] for s, a in replies if s == 429]
    return accepted, len(refused), refused[:1]


class QuotaCalls:
    """DynamoDB calls on the tenant quota items, by item: what the quotas add."""

    def __init__(self) -> None:
        self.by_item: dict[str, int] = {}

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key") or params.get("Item") or {}
        pk, sk = key.get("PK", {}).get("S", ""), key.get("SK", {}).get("S", "")
        if pk.startswith("TENANT#"):
            item = sk.split("#")[0]
            self.by_item[item] = self.by_item.get(item, 0) + 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-quotas", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    flood = {k: 0 for k in FLOOD} if args.no_quotas else FLOOD
    os.environ["DAGCAST_TENANTS"] = json.dumps({"flood": flood, "lone": {"submitsPerSecond": 0}})

    from dagcast.local.moto.stack import MotoStack

    stack = MotoStack(table_name="dagcast-bench-fairness").start()
    try:
        import app

        app.services.cache_clear()
        services = app.services()
        quota_calls = QuotaCalls()
        services.store._db.meta.events.register("provide-client-params.dynamodb.*", quota_calls)
        logging.getLogger("dagcast-fanout").setLevel(logging.WARNING)
        lone = json.dumps({"tasks": [{"id": 1, "action": "echo", "params": {"text": "lone"}}]}).encode()
        heavy = json.dumps(
            {"tasks": [{"id": t, "action": "sleep", "params": {"seconds": 2}} for t in range(1, 5)]}
        ).encode()
        first_task_ms(services, "lone", lone)  # warm-up: moto loads its interpreter on first use
        alone = [first_task_ms(services, "lone", lone) for _ in range(args.runs)]

        t0 = time.monotonic()
        accepted, refused, why = burst(services, heavy, args.executions)
        burst_s = time.monotonic() - t0
        flooded = []
        for _ in range(args.runs):
            flooded.append(first_task_ms(services, "lone", lone))
            time.sleep(0.5)
        for eid in accepted:  # the flood drains before the stack stops
            while services.store.get_meta(eid)["status"] == "running":
                time.sleep(0.2)

        print(
            f"tenant flood ({'no quotas' if args.no_quotas else 'maxRunningExecutions 10, maxRunningTasks 20'})"
        )
        print(
            f"  burst of {args.executions} submits in {burst_s:.2f} s: {len(accepted)} × 202, {refused} × 429"
        )
        if why:
            print(f"  429 says: {why[0]}")
        a, f = statistics.median(alone), statistics.median(flooded)
        print("tenant lone: time to first task (submit → substep.started), median of", args.runs)
        print(f"  alone {a:.0f} ms   under the flood {f:.0f} ms   ratio {f / a:.2f} (goal ≤ 2)")
        print(f"  runs alone {[round(x) for x in alone]}, under the flood {[round(x) for x in flooded]}")
        tasks = 4 * (len(accepted) + 1) + 2 * args.runs + 1  # the flood's, the lone runs', the warm-up
        submits = args.executions + 2 * args.runs + 1
        by = quota_calls.by_item
        print(
            f"DynamoDB calls the quotas add: {by.get('SUBMITS', 0) / submits:.2f} per submit (submits/s), "
            f"{by.get('EXECUTIONS', 0) / submits:.2f} per submit (running executions), "
            f"{by.get('TASKS', 0) / tasks:.2f} per task (running tasks)"
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
