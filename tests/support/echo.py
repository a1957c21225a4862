"""An HTTP server on 127.0.0.1 that answers with everything it was sent — method, path and query,
headers, body — so a test sees what an ``http`` task would carry back into dagcast: a secret the
task sent (a resolved header reference, a query key) comes back in its result or its error.

``/ok…`` answers 200 with the echo, ``/fail…`` 500 with it (the task's error quotes the answer),
``/big…`` 200 with the echo repeated past the event preview size (a result kept in chunks).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BIG_REPEAT = 400  # about 400 × the echo: far past the 16 KB preview, so previews and pages are cut


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        echo: dict[str, Any] = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.rfile.read(n).decode(errors="replace") if n else "",
        }
        status = 200
        answer: Any = echo
        if self.path.startswith("/fail"):
            status = 500
        elif self.path.startswith("/big"):
            answer = {"pages": [echo] * BIG_REPEAT}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer


class EchoServer:
    def __init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> EchoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
