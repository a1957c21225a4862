"""bench/event_previews — what a viewer pays to read a result's event, by the stage's event preview.

A ``substep.completed`` carries its result whole up to the stage's event preview
(DAGCAST_EVENT_PREVIEW_CHARS, 16,384 by default) and cut beyond it. Every viewer of an execution
reads every event, so this length is what a stream reads per event. For results of several sizes
(ASCII, and text of 3-byte UTF-8 characters), appended through the real event log into a table in
moto (in process) and read back, it prints the event item's billed size and the RCU of one
eventually consistent read of it (chalicelib/persistence/capacity.py: DynamoDB's rules), at the
default preview and at 1,024; then what one on-demand viewer reads per second while an execution
completes 5 tasks/s (10 events/s, its poll every 0.2 s returning 2 events) — the on-demand goal is
≤ 5 RCU/s per viewer while events flow. It asserts nothing (exit 0).

    python -m bench.event_previews
"""

from __future__ import annotations

import json
import os

import boto3
from moto import mock_aws

from chalicelib.config import SSE_PROFILES
from chalicelib.domain import events as ev
from chalicelib.domain import previews
from chalicelib.persistence.capacity import item_size, read_units
from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import pk, table_definition

PREVIEWS = (previews.RESULT_PREVIEW_CHARS, 1_024)
# (alphabet, character, result length in characters)
RESULTS: tuple[tuple[str, str, int], ...] = (
    ("ascii", "x", 200),
    ("ascii", "x", 4_000),
    ("ascii", "x", 16_000),
    ("ascii", "x", 50_000),
    ("3-byte", "語", 4_000),
    ("3-byte", "語", 50_000),
)
EVENTS_PER_SECOND = 10  # 5 tasks/s, each a substep.started (small) and a substep.completed
POLL_SECONDS = SSE_PROFILES["on-demand"]["poll_seconds"]
STARTED_BYTES = 200  # a substep.started item, about


TABLE = "bench-previews"


def event_item_bytes(store: DynamoStore, db: object, text: str, limit: int, seq_key: str) -> int:
    """Append the task's substep.completed through the event log; the stored item's billed size."""
    eid = "dag-exec_" + seq_key
    result_json = json.dumps(text, ensure_ascii=False)  # as a task's result is kept
    shown = previews.preview(result_json, f"/api/v1/dag-executions/{eid}/tasks/1/result", limit)
    seq = store.append_event(eid, "substep.completed#1", ev.substep_completed(1, 1200, shown))
    assert seq  # the first append of the key: seq 1
    out = db.query(  # type: ignore[attr-defined]
        TableName=TABLE, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": pk(eid)}}
    )
    return max(item_size(i) for i in out["Items"])


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        db = boto3.client("dynamodb")
        db.create_table(**table_definition(TABLE))
        store = DynamoStore(db, TABLE)
        print("bench/event_previews: one substep.completed's item, by result and the stage's event preview")
        head = "".join(f"  | preview {p:>6,}: item B, RCU/read, RCU/s/viewer" for p in PREVIEWS)
        print(f"{'result':>22}{head}")
        for n, (label, char, chars) in enumerate(RESULTS):
            row = f"{chars:>12,} chars {label:>6}"
            for limit in PREVIEWS:
                size = event_item_bytes(store, db, char * chars, limit, f"{n:04d}{limit:06d}")
                per_poll = read_units(
                    [size, STARTED_BYTES] * int(EVENTS_PER_SECOND * POLL_SECONDS / 2), False
                )
                row += f"  | {'':>14}{size:>7,}  {read_units([size], False):>8.1f}  {per_poll / POLL_SECONDS:>12.1f}"
            print(row)
    print(
        f"RCU/s/viewer: an on-demand viewer polling every {POLL_SECONDS} s while {EVENTS_PER_SECOND} events/s "
        "come, half of them this substep.completed (goal ≤ 5). Results over the preview are cut, with "
        "resultUrl; task views and the snapshot keep 16,384 characters either way."
    )


if __name__ == "__main__":
    main()
