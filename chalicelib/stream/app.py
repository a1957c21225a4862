"""The ASGI app the SSE Lambda runs (uvicorn behind the Lambda Web Adapter; see infra/sse/run.sh).

Building the Starlette app touches nothing: settings and AWS clients are created on the first
request, so importing this module has no side effects.
"""

from __future__ import annotations

from ..config import Settings
from ..factory import BuiltOnce, build_services
from .endpoint import create_sse_app

# Built on the first request, once (requests run on several threads).
_store = BuiltOnce(lambda: build_services().store)


def create_app(settings: Settings | None = None) -> object:
    return create_sse_app(settings or Settings.from_env(), _store)


def app_factory() -> object:
    """``uvicorn --factory chalicelib.stream.app:app_factory``."""
    return create_app()
