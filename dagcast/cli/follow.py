"""Following one execution's stream to its end, shown live (rich), as plain lines or as JSON lines.

Shared by ``dagcast run`` and ``dagcast trace``. The stream (reconnects, resumes, fresh tokens) is
``dagcast.client.EventStream``'s; this module applies its events to a ``TraceModel``, shows them,
says what happens to the connection, and takes the exit code from the model: 0 completed,
1 failed or cancelled; a stream lost before the end raises CliError (2).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Final

import httpx

from chalicelib.domain.events import HEARTBEAT
from chalicelib.domain.model import now_ms

from ..client import Api, CliError, EventStream, Notice, NoticeKind, StreamAccess
from .command import EXIT_INTERRUPTED
from .render.lines import format_event, json_line
from .render.live import render
from .render.model import TraceModel

RICH: Final = "rich"
PLAIN: Final = "plain"
JSON: Final = "json"


def view_mode(plain: bool, as_json: bool) -> str:
    """JSON lines if asked; plain lines if asked or stdout is not a terminal; else the live view."""
    if as_json:
        return JSON
    return PLAIN if plain or not sys.stdout.isatty() else RICH


def follow(
    http: httpx.Client, api: Api, access: StreamAccess, execution_id: str, mode: str, since: int | None = None
) -> int:
    """Follow the execution's stream to its end, shown as ``mode`` (rich | plain | json).

    Starts with the snapshot (``since=None``) or after seq ``since``. Exit code: 0 completed,
    1 failed or cancelled; a lost stream raises CliError (2)."""
    model = TraceModel(execution_id)
    # The live view redraws from its own thread; the model is changed and read under this lock.
    lock = threading.Lock()

    def refresh() -> str | None:
        fresh = api.stream_token(execution_id)
        return fresh[1] if fresh else None

    def notice(n: Notice) -> None:
        _tell(model, lock, n, mode)

    stream = EventStream(http, access, since=since, refresh_token=refresh, notify=notice)
    if mode == RICH:
        return _follow_rich(stream, model, lock, api.base)
    start = time.monotonic()
    for event in stream:
        model.apply(event, now_ms())
        if event.get("type") == HEARTBEAT:
            continue
        print(json_line(event) if mode == JSON else format_event(event, time.monotonic() - start), flush=True)
    return _outcome(model)


def _tell(model: TraceModel, lock: threading.Lock, n: Notice, mode: str) -> None:
    """A connection notice: a few words in the live view; the whole message on stderr otherwise
    (stdout carries the events alone)."""
    with lock:
        if n.kind == NoticeKind.CONNECTED:
            model.connection = "live"
        elif n.kind == NoticeKind.TOKEN:
            model.connection = "↻ fresh stream token"
        else:
            model.connection = "↻ reconnecting" + (f" (attempt {n.attempt})" if n.attempt else "…")
    if mode != RICH and not (n.kind == NoticeKind.CONNECTED and n.message == "connected"):
        print(f"dagcast: {n.message}", file=sys.stderr, flush=True)


def _outcome(model: TraceModel) -> int:
    if not model.finished:
        raise CliError(f"the stream ended before the execution did (status: {model.status or 'unknown'})")
    return model.exit_code()


def _follow_rich(stream: EventStream, model: TraceModel, lock: threading.Lock, api_url: str) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()

    def frame(max_rows: int | None) -> Any:
        with lock:  # built whole under the lock: the renderable keeps no reference to the model
            return render(model, model.server_now(now_ms()), console.width, max_rows, api_url)

    def final() -> None:
        with lock:
            model.connection = "ended"
        console.print(frame(200))

    try:
        with Live(
            console=console,
            get_renderable=lambda: frame(max(5, console.height - 10)),
            refresh_per_second=8,
            transient=True,
        ):
            for event in stream:
                with lock:
                    model.apply(event, now_ms())
    except KeyboardInterrupt:
        final()
        print(f"dagcast: stopped watching; {model.execution_id} goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError:
        final()
        raise
    final()
    return _outcome(model)
