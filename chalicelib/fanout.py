"""The DynamoDB stream consumer: every stored event passes through here exactly in seq order.

For now it logs each event (with its execution id and seq) — webhooks, EventBridge and metrics
plug in here. It uses powertools' BatchProcessor so one bad record is reported back as a partial
batch failure (``batchItemFailures``) instead of failing or silently dropping the batch.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

logger = Logger(service="dagcast-fanout")


def is_event_record(record: DynamoDBRecord) -> bool:
    keys = record.dynamodb.keys if record.dynamodb else None
    sk = (keys or {}).get("SK")
    return isinstance(sk, str) and sk.startswith("EVT#")


def handle_record(record: DynamoDBRecord) -> dict[str, Any] | None:
    if not is_event_record(record) or record.event_name is None or record.event_name.name != "INSERT":
        return None
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image or "data" not in image:
        raise ValueError(f"event record {record.event_id} has no data attribute")
    event: dict[str, Any] = json.loads(image["data"])
    logger.info(
        "event",
        extra={"executionId": event.get("executionId"), "seq": event.get("seq"), "type": event.get("type")},
    )
    return event


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    response = process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
    return dict(response)
