"""Pins the patch of dagcast/local/moto/patches/model_tracking.py
(``moto.core.common_models.BaseModel.__new__``)."""

from __future__ import annotations

import boto3


def test_moto_no_longer_keeps_every_model_object_it_made(stack):
    """untracked_models: moto's BaseModel appended every object it made to its class's
    instances_tracked (for its dashboard), so superseded item versions were never freed."""
    import gc

    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.dynamo_type import Item

    from chalicelib.persistence.table import to_item

    assert getattr(BaseModel, "_dagcast_untracked", False), "untracked_models was not applied"
    db = boto3.client("dynamodb")
    key = to_item({"PK": "tracked", "SK": "ROW"})
    db.put_item(TableName="dagcast-functional", Item=to_item({"PK": "tracked", "SK": "ROW", "n": 0}))
    for n in range(1, 51):
        db.update_item(
            TableName="dagcast-functional",
            Key=key,
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues=to_item({":n": n}),
        )
    gc.collect()
    versions = [o for o in gc.get_objects() if isinstance(o, Item) and o.hash_key.value == "tracked"]
    # the item in the table (a stream record keeps its image as JSON, not the Item)
    assert len(versions) == 1, f"{len(versions)} versions of one item are alive"
    assert getattr(Item, "instances_tracked", []) == []
