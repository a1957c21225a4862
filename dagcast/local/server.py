"""The local HTTP front door: the Chalice REST API and the SSE app on one uvicorn port.

REST requests go through Chalice's own ``LocalGateway`` (the same API-Gateway event translation
``chalice local`` uses), so the routes in app.py run exactly as they would behind API Gateway.
The SSE route is the ASGI app from chalicelib/sse.py that AWS runs behind the Lambda Web Adapter.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Protocol

from chalice.config import Config
from chalice.local import ForbiddenError, LocalGateway
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chalicelib.config import Settings
from chalicelib.factory import build_services
from chalicelib.sse import EventsEndpoint, SseApp, cors_middleware
from chalicelib.streamauth import redact_query

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


class Stack(Protocol):
    """What the front needs of a stack (stack.LocalStack, process.StackProcess, LocalStackBackend)."""

    endpoint: str
    state_machine_arn: str

    def fanout_stats(self) -> dict[str, Any] | None: ...


def create_app(stack: Stack, settings: Settings | None = None) -> SseApp:
    import app as chalice_module  # after the stack has set the environment

    settings = settings or Settings.from_env()
    chalice_app = chalice_module.app
    gateway = LocalGateway(
        chalice_app, Config.create(chalice_app=chalice_app, app_name="dagcast", lambda_timeout=900)
    )
    # The stream has its own client, so its DynamoDB reads can be counted apart from the Lambdas'.
    sse_store = build_services(settings).store
    sse_reads = sse_store.instrument()
    sse = EventsEndpoint(settings, lambda: sse_store)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "endpoint": stack.endpoint, "stateMachine": stack.state_machine_arn})

    async def stats(request: Request) -> Response:
        fanout = await run_in_threadpool(stack.fanout_stats)
        return JSONResponse({"sse": sse.stats(), "sseDynamodbReads": sse_reads.calls, "fanout": fanout})

    async def chalice_proxy(request: Request) -> Response:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            out: dict[str, Any] = await run_in_threadpool(
                gateway.handle_request, request.method, path, headers, body
            )
        except ForbiddenError:
            return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, status_code=404)
        raw = out.get("body") or b""
        if out.get("isBase64Encoded"):
            raw = base64.b64decode(raw)
        response = Response(raw, status_code=int(out["statusCode"]))
        for key, value in (out.get("headers") or {}).items():
            response.headers[key] = str(value)
        for key, values in (out.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.append(key, str(value))
        return response

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/local/stats", stats, methods=["GET"]),
        Route("/{path:path}", chalice_proxy, methods=METHODS),
    ]
    rest = Starlette(routes=routes, middleware=cors_middleware(settings))
    return SseApp(sse, rest)


class RedactTokens(logging.Filter):
    """Stream tokens travel in query strings; keep them out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in (record.args or ()))
        return True


def http_server(stack: Stack, host: str, port: int, verbose: bool) -> Any:
    """The uvicorn server of `dagcast up` (either backend): REST API + SSE on one port."""
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    config = uvicorn.Config(
        create_app(stack),
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        backlog=4096,
        timeout_graceful_shutdown=3,  # open streams would otherwise hold a shutdown forever
    )
    return uvicorn.Server(config)


def print_banner(host: str, port: int, what: str) -> None:
    print(f"{what}: http://{host}:{port}", flush=True)
    print(
        f"  submit:  curl -X POST http://{host}:{port}/api/v1/execute-dag "
        "-H 'content-type: application/json' -d @examples/research-report.json",
        flush=True,
    )
    print("  watch:   curl -N '<eventsUrl from the answer>'", flush=True)
