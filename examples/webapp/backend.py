"""The example web app's backend: it serves the page, holds the dagcast API key, and is the only
thing that calls the dagcast REST API. Python 3.11+, standard library only. Guide: docs/webapp.md.

    DAGCAST_API_KEY=dk_… python3 examples/webapp/backend.py --api https://<id>.execute-api.<region>.amazonaws.com/api
    # open http://127.0.0.1:8080/ — the stream must allow that origin (dagcast --cors-origin / CorsOrigins)

What the browser may call (the page's own origin, so no CORS):

    GET  /  /index.html  /app.js  /dagcast-client.js  the page (dagcast-client.js: monitor/'s build
                                                   of the client package, clients/js)
    POST /jobs  (body: the job)              → 202 {executionId, eventsUrl, streamTokenExpiresAt}
    POST /jobs/{executionId}/stream-token    → 200 {executionId, eventsUrl, streamTokenExpiresAt}
    GET  /healthz                            → {"ok": true}

The browser then opens ``eventsUrl`` with ``EventSource`` straight at dagcast's stream: that URL
carries a stream token for one execution, which expires (DAGCAST_TOKEN_TTL_SECONDS), and is all the
stream needs. The API key (``$DAGCAST_API_KEY``, the same variable the dagcast CLI reads) never
leaves this process: it is not in any answer, and the browser's own headers are never forwarded.
Without ``$DAGCAST_API_KEY`` the backend calls the API without a key (an open local stack).

This is an example, not a product: a real backend also checks who its user is (a session) and
whether that user may submit, or watch that execution — see ``allowed`` below.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# dagcast-client.js is the client package (clients/js: watchExecution, fold) as a classic script,
# window.Dagcast; `make client` builds it into monitor/. It is not in this directory: the page loads
# the monitor's copy, so the stream loop is written once in the repository and the example and the
# monitor cannot drift apart. A copy of this example outside the repository puts
# monitor/dagcast-client.js next to app.js; that one is served first.
CLIENT_JS = (
    HERE / "dagcast-client.js"
    if (HERE / "dagcast-client.js").is_file()
    else HERE.parent.parent / "monitor" / "dagcast-client.js"
)
# Only these files are served: not this one, nor anything else in the directory.
STATIC = {
    "/": (HERE / "index.html", "text/html; charset=utf-8"),
    "/index.html": (HERE / "index.html", "text/html; charset=utf-8"),
    "/app.js": (HERE / "app.js", "text/javascript; charset=utf-8"),
    "/dagcast-client.js": (CLIENT_JS, "text/javascript; charset=utf-8"),
}
MAX_BODY = 1_000_000  # dagcast refuses job bodies over 1 MB anyway
EXECUTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # dagcast's ids: dag-exec_<hex>
STREAM_TOKEN_PATH = re.compile(r"/jobs/([^/]+)/stream-token")
UPSTREAM_TIMEOUT = 30.0
# What the browser gets of dagcast's answers (the 202 also has statusUrl, streamToken, …).
FOR_THE_BROWSER = ("executionId", "eventsUrl", "streamTokenExpiresAt")


class Dagcast:
    """The dagcast REST API, called with the key."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key

    def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of ``POST base_url + path``; status 502 if dagcast cannot be reached."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT) as reply:
                return reply.status, _json(reply.read())
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, _json(refused.read())
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            return 502, {"error": f"the backend cannot reach the dagcast API at {self.base_url}: {reason}"}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"error": "dagcast answered something that is not JSON"}
    return body if isinstance(body, dict) else {"error": "dagcast answered an unexpected body"}


def for_the_browser(dagcast: Dagcast, status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What the page gets: the stream's URL (absolute) and its expiry, or an error it can show."""
    if status in (401, 403):
        # The backend's own key was refused: the page cannot fix that, so it is not a 401 for it.
        return 502, {
            "error": f"the dagcast API refused this backend's API key ({status}): "
            "check DAGCAST_API_KEY where the backend runs"
        }
    if status >= 300:
        kept: dict[str, Any] = {k: body[k] for k in ("error", "problems") if k in body}
        return status, kept or {"error": f"the dagcast API answered {status}"}
    out = {k: body[k] for k in FOR_THE_BROWSER if k in body}
    if "eventsUrl" in out:  # absolute, so the page can hand it to EventSource as is
        out["eventsUrl"] = urllib.parse.urljoin(dagcast.base_url + "/", str(out["eventsUrl"]))
    return status, out


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "dagcast-webapp-example"
    dagcast: Dagcast  # set by serve()

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/healthz":
            return self._send_json(200, {"ok": True})
        if path not in STATIC:
            return self._send_json(404, {"error": f"no such page: {path}"})
        file, content_type = STATIC[path]
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            # dagcast-client.js, in a copy of the example without it: copy monitor/dagcast-client.js
            return self._send_json(404, {"error": f"{file.name} is missing next to app.js"})
        self._send(200, data, content_type)

    def do_POST(self) -> None:
        try:
            status, answer = self._post(urllib.parse.urlsplit(self.path).path)
        except Refused as refused:
            status, answer = refused.status, {"error": str(refused)}
        self._send_json(status, answer)

    def _post(self, path: str) -> tuple[int, dict[str, Any]]:
        self._refuse_cross_site()
        body = self._read_json()
        if path == "/jobs":
            if not allowed(self, None):
                raise Refused(403, "not allowed")
            return for_the_browser(self.dagcast, *self.dagcast.post("/api/v1/execute-dag", body))
        match = STREAM_TOKEN_PATH.fullmatch(path)
        if match:
            execution_id = urllib.parse.unquote(match.group(1))
            if not EXECUTION_ID.fullmatch(execution_id):
                raise Refused(400, "not an execution id")
            if not allowed(self, execution_id):
                raise Refused(403, "not allowed")
            path = f"/api/v1/dag-executions/{execution_id}/stream-token"
            status, answer = self.dagcast.post(path, {})
            return for_the_browser(self.dagcast, status, {"executionId": execution_id, **answer})
        raise Refused(404, f"no such route: POST {path}")

    def _refuse_cross_site(self) -> None:
        """Another site's page must not make a visitor's browser submit jobs here (with the key).
        A JSON content type makes a cross-origin POST need a preflight, which this server never
        allows; and a browser's Origin header, when there is one, must be this server's own."""
        if self.headers.get_content_type() != "application/json":
            raise Refused(415, "send the body as application/json")
        origin = self.headers.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != self.headers.get("host"):
            raise Refused(403, "cross-origin requests are not accepted")

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            raise Refused(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise Refused(413, f"the body is over {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError as err:
            raise Refused(400, f"the body is not JSON: {err}") from None

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("cache-control", "no-store")
        self.send_header("x-content-type-options", "nosniff")
        self.send_header("referrer-policy", "no-referrer")
        self.end_headers()
        self.wfile.write(data)


def allowed(request: Handler, execution_id: str | None) -> bool:
    """Your app's own checks go here: is the user signed in (a session cookie), may they submit
    (``execution_id`` None), may they watch this execution (did they start it)? The example lets
    anyone who reaches it do both, so it listens on 127.0.0.1 unless told otherwise."""
    return True


def serve(api: str, api_key: str | None, host: str, port: int) -> None:
    handler = type("BoundHandler", (Handler,), {"dagcast": Dagcast(api, api_key)})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    origin = f"http://{host}:{server.server_address[1]}"
    print(
        f"serving the page on {origin}/ — REST calls go to {api} "
        + ("with $DAGCAST_API_KEY" if api_key else "without a key (DAGCAST_API_KEY is not set)")
        + f"; the stream must allow the origin {origin} (dagcast up --cors-origin {origin})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--api",
        default=os.environ.get("DAGCAST_API_URL", "http://127.0.0.1:8000"),
        help="the dagcast REST API's base URL (default: $DAGCAST_API_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen on this address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="listen on this port (default 8080)")
    args = parser.parse_args(argv)
    # The key comes from the environment only: a command-line flag would show it in `ps`.
    serve(args.api, os.environ.get("DAGCAST_API_KEY") or None, args.host, args.port)


if __name__ == "__main__":
    main()
