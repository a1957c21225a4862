"""Pins the patch of dagcast/local/moto/patches/item_locking.py
(``moto.dynamodb.models.DynamoDBBackend``'s item operations)."""

from __future__ import annotations


def test_concurrent_conditional_writes_to_one_item_have_one_winner(stack, services):
    """serialize_dynamodb: DynamoDB's per-item atomicity, which moto lacks alone.
    (Without the patch the race is rare under the GIL — the random-DAG test hit it once in CI —
    so this guards the guarantee rather than reproducing the bug every run.)"""
    import threading
    import uuid

    from moto.dynamodb.models import DynamoDBBackend

    assert getattr(DynamoDBBackend, "_dagcast_serialized", False), "serialize_dynamodb was not applied"
    store = services.store
    for _ in range(3):
        eid = f"dag-exec_slot{uuid.uuid4().hex[:8]}"
        store.create_execution(eid, created_at=1, original_request="", tasks=[], sink_ids=[])
        start = threading.Barrier(24)
        won: list[int] = []

        def claim(
            task_id: int, eid: str = eid, start: threading.Barrier = start, won: list[int] = won
        ) -> None:
            start.wait()
            if store.acquire_slot(eid, task_id, limit=1):
                won.append(task_id)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, f"{len(won)} writers passed the same condition: {won}"
        assert store.get_meta(eid)["holding"] == set(won)
