"""The CLI's side of the API: where it is (flags, environment, config file), REST calls, and an
SSE client that follows one execution's stream to its end and survives drops.

Where the URLs come from (first found wins):

- API base: ``--url`` › ``$DAGCAST_API_URL`` › ``"url"`` in the config file › http://127.0.0.1:8000
- SSE base: ``--events-url`` › ``"eventsUrl"`` in the config file (only when the API URL is the
  config file's too) › the ``eventsUrl`` the API answers with (``POST …/stream-token``) › the API base
- stream token: ``--token`` › a fresh one from ``POST …/stream-token`` (none when auth is off)
- API key (sent to the REST API only, as ``Authorization: Bearer``): ``--api-key`` ›
  ``$DAGCAST_API_KEY`` › ``"apiKey"`` in the config file (only when the API URL is the config file's)

The config file is ``$DAGCAST_CONFIG``, else ``$XDG_CONFIG_HOME/dagcast/config.json``, else
``~/.config/dagcast/config.json``: ``{"url": "https://…", "eventsUrl": "https://…", "apiKey": "dk_…"}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError, connect_sse

from chalicelib.domain.events import HEARTBEAT, TERMINAL_TYPES
from chalicelib.domain.model import ExecutionStatus

# The async iterator of typed events, re-exported: dagcast.client is where clients look.
from .typed_stream import OpenEvent as OpenEvent
from .typed_stream import TypedEvent as TypedEvent
from .typed_stream import WatchError as WatchError
from .typed_stream import typed_event as typed_event
from .typed_stream import watch_execution as watch_execution

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where `dagcast up` serves by default


CONFIG_KEYS = ("url", "eventsUrl", "apiKey")


class CliError(Exception):
    """Something the user can fix; printed as ``dagcast: <message>``, exit code 2."""


class ApiError(CliError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------- where to go


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("DAGCAST_CONFIG"):
        return Path(env["DAGCAST_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "dagcast" / "config.json"


def load_config(path: Path) -> dict[str, str]:
    """The config file's settings; {} when there is none. A broken file is an error, not ignored."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"the config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f'the config file {path} must be a JSON object like {{"url": "https://…"}}')
    out: dict[str, str] = {}
    for key in CONFIG_KEYS:
        if key in data:
            if not isinstance(data[key], str):
                raise CliError(f"the config file {path}: {key} must be a string")
            out[key] = data[key].strip() if key == "apiKey" else check_url(data[key], f"{key} in {path}")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise CliError(
            f"the config file {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(CONFIG_KEYS)})"
        )
    return out


def check_url(url: str, what: str) -> str:
    url = url.strip().rstrip("/")
    parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    if parsed is None or not parsed.host:
        raise CliError(f"{what} must be an http:// or https:// URL, got {url[:80]!r}")
    return url


@dataclass(frozen=True)
class Target:
    api: str  # the API base URL, no trailing slash
    api_from: str  # where it came from: --url, $DAGCAST_API_URL, the config file, the default
    events: str | None  # the SSE base URL if given (flag or config), else None: ask the API
    token: str | None  # a stream token given with --token
    api_key: str | None = None  # the REST API's key (never sent to the SSE URL)

    @property
    def is_default(self) -> bool:
        return self.api_from == "default"


def resolve_target(
    url: str | None,
    events_url: str | None,
    token: str | None,
    env: Mapping[str, str] | None = None,
    default: str = DEFAULT_URL,
    api_key: str | None = None,
) -> Target:
    env = os.environ if env is None else env
    path = config_path(env)
    config = load_config(path)
    if url:
        api, source = check_url(url, "--url"), "--url"
    elif env.get("DAGCAST_API_URL"):
        api, source = check_url(env["DAGCAST_API_URL"], "$DAGCAST_API_URL"), "$DAGCAST_API_URL"
    elif "url" in config:
        api, source = config["url"], str(path)
    else:
        api, source = default.rstrip("/"), "default"
    if events_url:
        events: str | None = check_url(events_url, "--events-url")
    elif source == str(path):
        events = config.get("eventsUrl")
    else:
        events = None
    if token is not None and not token.strip():
        raise CliError("--token is empty")
    if api_key is not None and not api_key.strip():
        raise CliError("--api-key is empty")
    key = api_key or env.get("DAGCAST_API_KEY") or (config.get("apiKey") if source == str(path) else None)
    return Target(api, source, events, token.strip() if token else None, key.strip() if key else None)


# ------------------------------------------------------------------------------------------ REST


def error_message(response: httpx.Response) -> str:
    """The ``error`` of a JSON error answer (``message`` for API Gateway's own), else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        message = body.get("error") or body.get("message") or body.get("Message")
        if message:
            return str(message)
    return json.dumps(body)[:300]


class Api:
    """The REST API at ``base``. Every failure is an ApiError/CliError with a readable message."""

    def __init__(self, base: str, client: httpx.Client, api_key: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.client = client
        self.api_key = api_key

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.api_key:
            kwargs["headers"] = {**kwargs.get("headers", {}), "authorization": f"Bearer {self.api_key}"}
        try:
            return self.client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.TimeoutException:
            raise CliError(
                f"the dagcast API at {self.base} did not answer in time ({method} {path})"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"no dagcast API answers at {self.base} ({_why(exc)})") from None

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response) + auth_hint(response.status_code))
        try:
            body = response.json()
        except ValueError:
            raise CliError(
                f"{self.base} answered {method} {path} with something that is not JSON: is it a dagcast API?"
            ) from None
        if not isinstance(body, dict):
            raise CliError(f"{self.base} answered {method} {path} with unexpected JSON")
        return body

    def executions(self, limit: int) -> list[dict[str, Any]]:
        body = self.json("GET", "/api/v1/dag-executions", params={"limit": str(limit)})
        return list(body.get("executions", []))

    def execution(self, execution_id: str) -> dict[str, Any]:
        """The snapshot with every task; ApiError(404) with the server's message if unknown."""
        return self.json("GET", f"/api/v1/dag-executions/{quote(execution_id, safe='')}")

    def result(self, execution_id: str, task_id: int | None = None) -> Any:
        """The execution's final result, or task ``task_id``'s, read whole through its pages."""
        path = f"/api/v1/dag-executions/{quote(execution_id, safe='')}"
        path, name = (
            (f"{path}/tasks/{task_id}/result", "result")
            if task_id is not None
            else (f"{path}/result", "finalResult")
        )
        parts: list[str] = []
        offset: int | None = 0
        while offset is not None:
            body = self.json("GET", path, params={"offset": str(offset)})
            if name in body:  # a server without pages answers the whole result
                return body[name]
            if body.get("offset") != offset or not isinstance(body.get(f"{name}Text"), str):
                raise CliError(f"{self.base} answered GET {path} with an unexpected page (offset {offset})")
            parts.append(body[f"{name}Text"])
            following = body.get("nextOffset")
            if following is not None and (not isinstance(following, int) or following <= offset):
                raise CliError(f"{self.base} answered GET {path} with a page that does not move on")
            offset = following
        return json.loads("".join(parts))

    def stream_token(self, execution_id: str) -> tuple[str, str] | None:
        """(eventsUrl without the token, token); None when auth is off (the API answers 404)."""
        try:
            body = self.json("POST", f"/api/v1/dag-executions/{quote(execution_id, safe='')}/stream-token")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        url = httpx.URL(str(body["eventsUrl"]))
        return str(url.copy_remove_param("token")), str(body["streamToken"])


def auth_hint(status: int) -> str:
    if status == 401:
        return " (pass --api-key, set $DAGCAST_API_KEY, or put apiKey in the config file)"
    return ""


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:199] + "…"


@dataclass
class StreamAccess:
    url: str  # the execution's events endpoint, without a token
    token: str | None


def events_endpoint(base: str, execution_id: str) -> str:
    return f"{base.rstrip('/')}/api/v1/dag-executions/{quote(execution_id, safe='')}/events"


def stream_access(
    api: Api, target: Target, execution_id: str, given_url: str | None = None, given_token: str | None = None
) -> StreamAccess:
    """Where the execution's stream is and the token for it (see the module docstring for the order).
    ``given_url``/``given_token``: what a 202 answer already said (``dagcast run``)."""
    token = target.token or given_token
    answered = given_url
    if token is None:
        fresh = api.stream_token(execution_id)
        if fresh is not None:
            answered, token = fresh
    if target.events:
        url = events_endpoint(target.events, execution_id)
    elif answered:
        url = str(httpx.URL(answered).copy_remove_param("token"))
    else:
        url = events_endpoint(api.base, execution_id)
    return StreamAccess(url, token)


# ------------------------------------------------------------------------------------------- SSE


class StreamError(CliError):
    pass


class NoticeKind(StrEnum):
    CONNECTED = "connected"  # a stream is open (the first, or a resumed one)
    ENDED = "ended"  # the server closed a stream; it is resumed
    DROPPED = "dropped"  # a connection failed; it is retried after a wait
    TOKEN = "token"  # the token was refused; a fresh one is in use


@dataclass(frozen=True)
class Notice:
    """Something about the connection worth telling the user (not an event)."""

    kind: str  # a NoticeKind
    message: str
    delay: float = 0.0
    attempt: int = 0


@dataclass
class _Connection:
    """What one connection came to; ``EventStream.__iter__`` decides from it how to go on."""

    opened: bool = False  # the server answered 200: a stream
    delivered: bool = False  # it delivered an event not seen before
    ended: bool = False  # the server closed it by itself
    done: bool = False  # the stream is over (terminal event, stop_at, 204, final snapshot)
    refreshed: bool = False  # the token was refused and a fresh one is in hand: connect again now
    problem: str = ""  # why it stopped, for the notice
    wait: float | None = None  # Retry-After, when the server said how long


class EventStream:
    """One execution's events, from a fresh snapshot (``since=None``) or after seq ``since``, to the
    terminal event (or, with ``stop_at``, to that seq).

    - A dropped or ended connection is resumed with ``Last-Event-ID`` = the last seq received; an
      event seen twice (by seq) is dropped, so nothing is lost and nothing repeats.
    - Waits before reconnecting: none after a connection that delivered events; the server's
      ``retry:`` (2 s by default) after a quiet one the server closed (``maxStreamSeconds``); after a
      failure (refused, reset, 5xx, read timeout) ``retry:`` doubled per failure in a row up to 30 s,
      or ``Retry-After`` on 429. Gives up after ``max_attempts`` failures in a row.
    - 401 (the token expired): one fresh token from ``refresh_token``, then resume.
    - 204 (the resume point is the terminal event), or the server closing the stream after the
      snapshot of a finished execution: the end.
    - Heartbeats are yielded too (they carry no seq) so a view can show when it last heard.
    """

    def __init__(
        self,
        client: httpx.Client,
        access: StreamAccess,
        *,
        since: int | None = None,
        stop_at: int | None = None,
        refresh_token: Callable[[], str | None] | None = None,
        notify: Callable[[Notice], None] | None = None,
        max_attempts: int = 20,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.url = access.url
        self.token = access.token
        self.last_seq = since
        self.stop_at = stop_at
        self.refresh_token = refresh_token
        self.notify = notify or (lambda notice: None)
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.retry_ms = 2000
        self.connects = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        failures = 0  # in a row: a connection that delivers an event starts the count again
        refreshed = False  # a fresh token was fetched and no stream has opened since
        while True:
            connection = _Connection()
            yield from self._connect(connection, may_refresh=not refreshed)
            if connection.done:
                return
            if connection.refreshed:
                refreshed = True
                continue
            if connection.opened:
                refreshed = False
            if connection.delivered:
                failures = 0
                self.notify(
                    Notice(NoticeKind.ENDED, f"{connection.problem}; resuming after #{self.last_seq}")
                )
            elif connection.ended:
                self._wait_after_end(connection.problem)
            else:
                failures += 1
                self._wait_after_failure(connection, failures)

    def _connect(self, connection: _Connection, may_refresh: bool) -> Iterator[dict[str, Any]]:
        """One connection: yields its new events and records in ``connection`` how it ended. What
        retrying cannot fix (not a stream, not JSON, a 4xx) raises StreamError."""
        headers = {"Last-Event-ID": str(self.last_seq)} if self.last_seq is not None else {}
        params = {"token": self.token} if self.token else {}
        try:
            with connect_sse(self.client, "GET", self.url, params=params, headers=headers) as source:
                self.connects += 1
                if self._refused(source.response, connection, may_refresh):
                    return
                connection.opened = True
                self._say_connected()
                yield from self._read(source, connection)
        except SSEError as exc:
            raise StreamError(f"{self.url} is not an event stream ({exc})") from None
        except ValueError as exc:  # a data line that is not JSON
            raise StreamError(f"the event stream sent something that is not JSON: {exc}") from None
        except httpx.TimeoutException:
            connection.problem = "no data for too long (read timeout)"
        except httpx.HTTPError as exc:
            connection.problem = _why(exc)

    def _refused(self, response: httpx.Response, connection: _Connection, may_refresh: bool) -> bool:
        """True when the answer is not a stream to read: the end (204), a refused token replaced,
        or a failure worth retrying (429, 5xx); any other status raises StreamError."""
        status = response.status_code
        if status == 200:
            return False
        if status == 204:
            connection.done = True
            return True
        response.read()
        if status == 401 and self.refresh_token is not None and may_refresh:
            self.token = self.refresh_token()
            connection.refreshed = True
            self.notify(Notice(NoticeKind.TOKEN, "the stream token was refused (expired?); got a fresh one"))
            return True
        if status == 429 or status >= 500:
            connection.problem = f"{status}: {error_message(response)}"
            retry_after = response.headers.get("retry-after", "")
            connection.wait = float(retry_after) if retry_after.isdigit() else None
            return True
        raise StreamError(f"the event stream answered {status}: {error_message(response)}")

    def _say_connected(self) -> None:
        if self.connects > 1:
            where = f" after #{self.last_seq}" if self.last_seq is not None else ""
            self.notify(Notice(NoticeKind.CONNECTED, f"reconnected; resuming{where}"))
        else:
            self.notify(Notice(NoticeKind.CONNECTED, "connected"))

    def _read(self, source: EventSource, connection: _Connection) -> Iterator[dict[str, Any]]:
        """The events of an open stream not seen yet, heartbeats included, until the end or the
        server closes it."""
        final_snapshot = False
        for sse in source.iter_sse():
            if sse.retry is not None:
                self.retry_ms = sse.retry
            if not sse.data:
                continue
            event = _event(sse.data)
            if event.get("type") == HEARTBEAT:
                yield event
                continue
            seq = event["seq"]
            if not event.get("snapshot") and self.last_seq is not None and seq <= self.last_seq:
                continue  # seen already (a replay overlapping what we had)
            self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
            connection.delivered = True
            yield event
            if event.get("type") in TERMINAL_TYPES or (self.stop_at is not None and seq >= self.stop_at):
                connection.done = True
                return
            if event.get("snapshot") and event.get("status") != ExecutionStatus.RUNNING:
                final_snapshot = True
        if final_snapshot:  # a finished execution: its final snapshot, then the end
            connection.done = True
            return
        connection.problem = "the server ended the stream"
        connection.ended = True

    def _wait_after_end(self, problem: str) -> None:
        """Quiet, then closed (max stream time): not a failure; wait as a browser would."""
        delay = self.retry_ms / 1000
        self.notify(
            Notice(NoticeKind.ENDED, f"{problem}; resuming after #{self.last_seq} in {delay:g}s", delay)
        )
        self.sleep(delay)

    def _wait_after_failure(self, connection: _Connection, failures: int) -> None:
        """``Retry-After`` if the server said, else ``retry:`` doubled per failure in a row (≤ 30 s);
        StreamError after ``max_attempts`` failures in a row."""
        problem = connection.problem
        if failures > self.max_attempts:
            raise StreamError(f"lost the event stream after {self.max_attempts} attempts: {problem}")
        wait = connection.wait
        delay = wait if wait is not None else min(30.0, self.retry_ms / 1000 * 2 ** (failures - 1))
        where = f" after #{self.last_seq}" if self.last_seq is not None else ""
        message = f"{problem}; reconnecting{where} in {delay:g}s"
        self.notify(Notice(NoticeKind.DROPPED, message, delay=delay, attempt=failures))
        self.sleep(delay)


def _event(data: str) -> dict[str, Any]:
    """An SSE data line as an event: a JSON object with an int ``seq`` unless it is a heartbeat.
    Not JSON raises ValueError (``_connect`` words it); anything else StreamError."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise StreamError("the event stream sent something that is not an event")
    if event.get("type") != HEARTBEAT and not isinstance(event.get("seq"), int):
        raise StreamError("the event stream sent an event without a seq")
    return event
