"""The SSE app as infra/sse/run.sh starts it, plus ``GET /bench/stats`` for bench/sse_lambda_shape.py.

The SSE function's app (``create_sse_app``, the same settings from the environment) with one more
route, answered before the app: the endpoint's own counters (``EventsEndpoint.stats()``: the read
meter of every DynamoDB read the process made, computed from item sizes) and the same reads split by
the partition they read (``PartitionMeter``), so the benchmark can report the execution's partition
alone — a stream also reads its slot items (``STREAMS#…``, partitions of their own) when admitted.

    uvicorn --factory bench.lambda_shape_app:app_factory
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from chalicelib.config import Settings
from chalicelib.factory import BuiltOnce, build_services
from chalicelib.persistence.capacity import ReadMeter
from chalicelib.persistence.executions import DynamoStore
from chalicelib.stream.app import SseApp, create_sse_app

STATS_PATH = "/bench/stats"
_PARTITION_VALUE = re.compile(r"\bPK\s*=\s*(:\w+)")


def _partition(params: Mapping[str, Any]) -> str:
    """The partition key a Query or GetItem reads ("" when it cannot be told)."""
    if "Key" in params:
        return str(params["Key"].get("PK", {}).get("S", ""))
    found = _PARTITION_VALUE.search(str(params.get("KeyConditionExpression", "")))
    value = params.get("ExpressionAttributeValues", {}).get(found.group(1), {}) if found else {}
    return str(value.get("S", ""))


class PartitionMeter(ReadMeter):
    """A ReadMeter that also keeps one ReadMeter per partition read (the same accounting)."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[str, ReadMeter] = {}
        self._split_lock = threading.Lock()

    @staticmethod
    def _ask(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        ReadMeter._ask(params, context, **kwargs)
        context["bench_partition"] = _partition(params)

    def _answered(
        self, parsed: Mapping[str, Any], model: Any, context: Mapping[str, Any], **kwargs: Any
    ) -> None:
        super()._answered(parsed, model, context, **kwargs)
        key = str(context.get("bench_partition", ""))
        with self._split_lock:
            meter = self.partitions.setdefault(key, ReadMeter())
        meter._answered(parsed, model, context, **kwargs)

    def partition_stats(self) -> dict[str, dict[str, Any]]:
        with self._split_lock:
            meters = dict(self.partitions)
        return {key: meter.stats() for key, meter in meters.items()}


def _metered_store(meter: PartitionMeter) -> DynamoStore:
    store = build_services().store
    store.meter_reads(meter)
    return store


def create_app(settings: Settings | None = None) -> ASGIApp:
    meter = PartitionMeter()
    sse: SseApp = create_sse_app(settings or Settings.from_env(), BuiltOnce(lambda: _metered_store(meter)))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            body = {"sse": sse.endpoint.stats(), "partitions": meter.partition_stats()}
            return await JSONResponse(body)(scope, receive, send)
        await sse(scope, receive, send)

    return app


def app_factory() -> ASGIApp:
    """``uvicorn --factory bench.lambda_shape_app:app_factory``."""
    return create_app()
