"""The ASGI app the SSE Lambda runs (uvicorn behind the Lambda Web Adapter; see infra/sse/run.sh),
and the front that the local stack's server (dagcast/local/server.py) puts before its REST app.

Importing this module has no side effects: ``app_factory`` reads the settings when uvicorn calls
it, and the store (its AWS client) is built on the first request that needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..domain.errors import NoRoute
from ..factory import BuiltOnce, build_store
from ..persistence.executions import DynamoStore
from .endpoint import EVENTS_PATH, EventsEndpoint, error_response
from .manyrun import MANY_RUN_PATH, ManyRunEndpoint


class SseApp:
    """The front: Starlette's Router sends the events routes (with or without a trailing slash)
    straight to the EventsEndpoint and the ManyRunEndpoint — no middleware wraps the per-event
    ``send`` of thousands of streams — and every other request to ``fallback``, as do lifespan and
    websocket scopes (the fallback app owns them)."""

    def __init__(self, endpoint: EventsEndpoint, fallback: ASGIApp) -> None:
        self.endpoint = endpoint
        self.fallback = fallback
        self.many_run = ManyRunEndpoint(endpoint)  # every execution of a tenant (or of its tags)
        events: ASGIApp = endpoint if endpoint.settings.sse_disconnect else NoDisconnect(endpoint)
        many: ASGIApp = self.many_run if endpoint.settings.sse_disconnect else NoDisconnect(self.many_run)
        self.router = Router(
            routes=[
                Route(MANY_RUN_PATH, many),
                Route(f"{MANY_RUN_PATH}/", many),
                Route(EVENTS_PATH, events),
                Route(f"{EVENTS_PATH}/", events),
            ],
            redirect_slashes=False,  # both spellings are served, neither is redirected
            default=fallback,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            return await self.router(scope, receive, send)
        await self.fallback(scope, receive, send)


class NoDisconnect:
    """The events route as a Lambda serves it (``DAGCAST_SSE_DISCONNECT=off``): the client's
    disconnect never reaches the app — the Web Adapter gets no signal when a viewer goes away — so
    a stream whose client left runs on until its end (terminal event, ``max_stream_seconds``),
    holding its slot. Locally this shows what an abandoned stream costs in AWS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def without_disconnect() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                await asyncio.Event().wait()  # never set: the stream is cancelled at its end
            return message

        await self.app(scope, without_disconnect, send)


def create_sse_app(settings: Settings, store_factory: Callable[[], DynamoStore]) -> SseApp:
    """The SSE function's app: the events route, and a JSON 404 for any other path."""

    async def not_found(request: Request) -> Response:
        return error_response(NoRoute(request.method, request.url.path))

    fallback = Starlette(routes=[Route("/{path:path}", not_found, methods=["GET", "POST", "OPTIONS"])])
    return SseApp(EventsEndpoint(settings, store_factory), fallback)


def cors_middleware(settings: Settings) -> list[Middleware]:
    """Starlette's CORS for the local front's REST routes (the events route answers CORS itself,
    endpoint.py says why): the allow-list of DAGCAST_CORS_ORIGINS, none when it is empty."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "last-event-id"],
            max_age=600,
        )
    ]


def create_app(settings: Settings | None = None) -> SseApp:
    """The store is built on the first request, once (requests run on several threads), from the
    same settings: the SSE function reads its environment once and builds nothing else."""
    settings = settings or Settings.from_env()
    return create_sse_app(settings, BuiltOnce(lambda: build_store(settings)))


def app_factory() -> SseApp:
    """``uvicorn --factory chalicelib.stream.app:app_factory``."""
    return create_app()
