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
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, connect_sse

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where `dagcast up` serves by default
TERMINAL_TYPES = frozenset({"execution.completed", "execution.failed"})


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


@dataclass(frozen=True)
class Notice:
    """Something about the connection worth telling the user (not an event)."""

    kind: str  # connected | ended | dropped | token
    message: str
    delay: float = 0.0
    attempt: int = 0


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
        failures = 0
        refreshed = False
        while True:
            delivered = False
            ended = False  # the server closed a 200 stream by itself
            final_snapshot = False
            wait: float | None = None
            problem = ""
            try:
                headers = {"Last-Event-ID": str(self.last_seq)} if self.last_seq is not None else {}
                params = {"token": self.token} if self.token else {}
                with connect_sse(self.client, "GET", self.url, params=params, headers=headers) as source:
                    response = source.response
                    self.connects += 1
                    if response.status_code == 204:
                        return
                    if response.status_code == 401 and self.refresh_token is not None and not refreshed:
                        response.read()
                        self.token = self.refresh_token()
                        refreshed = True
                        self.notify(
                            Notice("token", "the stream token was refused (expired?); got a fresh one")
                        )
                        continue
                    if response.status_code == 429 or response.status_code >= 500:
                        response.read()
                        problem = f"{response.status_code}: {error_message(response)}"
                        retry_after = response.headers.get("retry-after", "")
                        wait = float(retry_after) if retry_after.isdigit() else None
                    elif response.status_code != 200:
                        response.read()
                        raise StreamError(
                            f"the event stream answered {response.status_code}: {error_message(response)}"
                        )
                    else:
                        refreshed = False
                        if self.connects > 1:
                            where = f" after #{self.last_seq}" if self.last_seq is not None else ""
                            self.notify(Notice("connected", f"reconnected; resuming{where}"))
                        else:
                            self.notify(Notice("connected", "connected"))
                        for sse in source.iter_sse():
                            if sse.retry is not None:
                                self.retry_ms = sse.retry
                            if not sse.data:
                                continue
                            event = json.loads(sse.data)
                            if not isinstance(event, dict):
                                raise StreamError("the event stream sent something that is not an event")
                            if event.get("type") == "heartbeat":
                                yield event
                                continue
                            seq = event.get("seq")
                            if not isinstance(seq, int):
                                raise StreamError("the event stream sent an event without a seq")
                            if (
                                not event.get("snapshot")
                                and self.last_seq is not None
                                and seq <= self.last_seq
                            ):
                                continue  # seen already (a replay overlapping what we had)
                            self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
                            delivered = True
                            failures = 0
                            yield event
                            if event.get("type") in TERMINAL_TYPES:
                                return
                            if event.get("snapshot") and event.get("status") != "running":
                                final_snapshot = True
                            if self.stop_at is not None and seq >= self.stop_at:
                                return
                        if final_snapshot:  # a finished execution: its final snapshot, then the end
                            return
                        problem = "the server ended the stream"
                        ended = True
            except SSEError as exc:
                raise StreamError(f"{self.url} is not an event stream ({exc})") from None
            except ValueError as exc:  # a data line that is not JSON
                raise StreamError(f"the event stream sent something that is not JSON: {exc}") from None
            except httpx.TimeoutException:
                problem = "no data for too long (read timeout)"
            except httpx.HTTPError as exc:
                problem = _why(exc)
            if delivered:
                self.notify(Notice("ended", f"{problem}; resuming after #{self.last_seq}"))
                continue
            if ended:  # quiet, then closed (max stream time): not a failure; wait as a browser would
                delay = self.retry_ms / 1000
                self.notify(
                    Notice("ended", f"{problem}; resuming after #{self.last_seq} in {delay:g}s", delay)
                )
                self.sleep(delay)
                continue
            failures += 1
            if failures > self.max_attempts:
                raise StreamError(f"lost the event stream after {self.max_attempts} attempts: {problem}")
            delay = wait if wait is not None else min(30.0, self.retry_ms / 1000 * 2 ** (failures - 1))
            where = f" after #{self.last_seq}" if self.last_seq is not None else ""
            self.notify(
                Notice(
                    "dropped", f"{problem}; reconnecting{where} in {delay:g}s", delay=delay, attempt=failures
                )
            )
            self.sleep(delay)
