"""A fake upstream on 127.0.0.1 for the ``http`` and ``llm`` task kinds: ``/weather`` (GET, JSON),
``/status/<code>`` (GET, that status), ``/echo`` (POST, the body and X-Test header back, 201) and an
OpenAI-style ``/v1/chat/completions`` that wants ``API_KEY``. ``Upstream.seen`` records each POST."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

API_KEY = "sk-test-not-a-real-key-123"


class Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def do_GET(self) -> None:
        if self.path == "/weather":
            self._reply(200, {"city": "London", "celsius": 15})
        elif self.path.startswith("/status/"):
            self._reply(int(self.path.rsplit("/", 1)[1]), "upstream trouble", "text/plain")
        else:
            self._reply(404, {"error": "no such path"})

    def do_POST(self) -> None:
        body = self._body()
        Upstream.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/echo":
            self._reply(201, {"got": body, "x-test": self.headers.get("X-Test")})
        elif self.path == "/v1/chat/completions":
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._reply(401, {"error": {"message": "bad key"}})
                return
            last = body["messages"][-1]["content"]
            self._reply(
                200,
                {
                    "id": "chatcmpl-1",
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": f"summary of: {last}"}}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                },
            )
        else:
            self._reply(404, {"error": "no such path"})


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """The upstream, listening on a free port for the block: its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
