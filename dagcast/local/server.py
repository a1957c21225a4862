"""The local HTTP front door: the Chalice REST API and the SSE app on one uvicorn port.

REST requests go through Chalice's own ``LocalGateway`` (the same API-Gateway event translation
``chalice local`` uses), so the routes in app.py run exactly as they would behind API Gateway.
The SSE route is the ASGI app from chalicelib/stream/app.py that AWS runs behind the Lambda Web
Adapter.
The monitor page (monitor/ at the repository root, docs/monitor.md) is served at ``/``, its files
under ``/monitor/``; every other path goes to the REST API.

It serves both backends the same way (a ``Stack`` is all it needs) and provisions nothing: the
AWS side is the moto stack's (moto/) or LocalStack's (localstack/). AWS does not run this module:
there API Gateway fronts the Lambdas and the SSE function has its own URL.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any, Protocol

from chalice.config import Config
from chalice.local import ForbiddenError, LocalChalice, LocalGateway
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from chalicelib.config import Settings
from chalicelib.domain.errors import NoRoute
from chalicelib.factory import build_store
from chalicelib.persistence.table import CallCounter
from chalicelib.stream.app import SseApp, cors_middleware
from chalicelib.stream.auth import redact_query
from chalicelib.stream.endpoint import EventsEndpoint, error_response

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
# The monitor page: static files, no build step, at the repository root (the package is installed
# editable, `pip install -e .`, as `make install` does; app.py is found the same way).
MONITOR_DIR = Path(__file__).resolve().parents[2] / "monitor"
MONITOR_PREFIX = "/monitor"
# The page must be revalidated on every load: an edited monitor.js is picked up at once, and an
# unchanged one costs a 304 (StaticFiles answers If-None-Match / If-Modified-Since).
NO_CACHE = "no-cache"


class MonitorFiles(StaticFiles):
    """monitor/ under /monitor/, with ``Cache-Control: no-cache`` and ``nosniff``."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = NO_CACHE
        response.headers["x-content-type-options"] = "nosniff"
        return response


def monitor_index_html(directory: Path = MONITOR_DIR) -> str | None:
    """monitor/index.html for ``GET /``: with ``<base href="/monitor/">`` so that its relative links
    (monitor.css, stream.js, …) resolve under /monitor/, as they do next to it on any static host."""
    try:
        html = (directory / "index.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    base = f'<base href="{MONITOR_PREFIX}/">'
    charset = '<meta charset="utf-8">'
    if charset in html:  # the charset first, in the first 1024 bytes
        return html.replace(charset, f"{charset}\n  {base}", 1)
    return html.replace("<head>", f"<head>\n  {base}", 1)


class Stack(Protocol):
    """What the front needs of a stack (MotoStack, StackProcess, LocalStackBackend)."""

    endpoint: str
    state_machine_arn: str

    def fanout_stats(self) -> dict[str, Any] | None: ...


def thread_local_requests(chalice_app: Any) -> None:
    """Make the Chalice app's ``current_request`` one per thread, as `chalice local` does
    (``chalice.local.create_local_server``). It is a plain attribute of the app object, and REST
    requests run here concurrently, each on a worker thread: without this, a request could read
    another's body, headers or query string, and a POST /execute-dag would then start another
    client's job."""
    if not isinstance(chalice_app, LocalChalice):
        chalice_app.__class__ = type("ThreadLocalChalice", (LocalChalice, type(chalice_app)), {})


class ChaliceProxy:
    """Every path the front does not serve itself, through Chalice's ``LocalGateway``."""

    def __init__(self, chalice_app: Any) -> None:
        thread_local_requests(chalice_app)
        self._gateway = LocalGateway(
            chalice_app, Config.create(chalice_app=chalice_app, app_name="dagcast", lambda_timeout=900)
        )

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            out: dict[str, Any] = await run_in_threadpool(
                self._gateway.handle_request, request.method, path, headers, body
            )
        except ForbiddenError:
            return error_response(NoRoute(request.method, request.url.path))
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


async def monitor_page(request: Request) -> Response:
    html = await run_in_threadpool(monitor_index_html)
    if html is None:
        missing = f"the monitor page is not installed ({MONITOR_DIR} is missing); see docs/monitor.md"
        return JSONResponse({"error": missing}, status_code=404)
    return HTMLResponse(html, headers={"cache-control": NO_CACHE, "x-content-type-options": "nosniff"})


async def to_monitor_dir(request: Request) -> Response:
    return RedirectResponse(f"{MONITOR_PREFIX}/" + (f"?{request.url.query}" if request.url.query else ""))


def monitor_routes() -> list[BaseRoute]:
    """The monitor page at ``/``, its files under /monitor/ (when monitor/ is there)."""
    routes: list[BaseRoute] = [Route("/", monitor_page, methods=["GET", "HEAD"])]
    if MONITOR_DIR.is_dir():
        routes += [
            Route(MONITOR_PREFIX, to_monitor_dir, methods=["GET", "HEAD"]),
            Mount(MONITOR_PREFIX, MonitorFiles(directory=MONITOR_DIR, html=True)),
        ]
    return routes


def stack_routes(stack: Stack, sse: EventsEndpoint, sse_reads: CallCounter) -> list[BaseRoute]:
    """``/healthz`` and ``/local/stats``: the stack's endpoint, the stream's and fan-out's counters."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "endpoint": stack.endpoint, "stateMachine": stack.state_machine_arn})

    async def stats(request: Request) -> Response:
        fanout = await run_in_threadpool(stack.fanout_stats)
        return JSONResponse({"sse": sse.stats(), "sseDynamodbReads": sse_reads.calls, "fanout": fanout})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/local/stats", stats, methods=["GET"]),
    ]


def create_app(stack: Stack, settings: Settings | None = None) -> SseApp:
    import app as chalice_module  # after the stack has set the environment

    settings = settings or Settings.from_env()
    proxy = ChaliceProxy(chalice_module.app)
    # The stream has its own client, so its DynamoDB reads can be counted apart from the Lambdas'.
    sse_store = build_store(settings)
    sse_reads = sse_store.instrument()
    sse = EventsEndpoint(settings, lambda: sse_store)
    routes = [
        *stack_routes(stack, sse, sse_reads),
        *monitor_routes(),
        Route("/{path:path}", proxy.handle, methods=METHODS),
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
    print(f"  monitor: http://{host}:{port}/   (the live view in a browser)", flush=True)
    print(
        f"  submit:  curl -X POST http://{host}:{port}/api/v1/execute-dag "
        "-H 'content-type: application/json' -d @examples/research-report.json",
        flush=True,
    )
    print("  watch:   curl -N '<eventsUrl from the answer>'", flush=True)
