"""The local front (dagcast/local/server.py) runs Chalice routes on concurrent worker threads."""

from __future__ import annotations

import threading
from typing import Any

from chalice.app import Chalice

from dagcast.local.server import thread_local_requests


def test_each_thread_sees_its_own_current_request():
    """Chalice keeps the request being handled in one attribute of the app; with requests on
    several threads at once, one could read another's body (a POST started another client's job)."""
    app: Any = Chalice(app_name="dagcast-unit")
    thread_local_requests(app)
    thread_local_requests(app)  # idempotent
    app.current_request = "main"
    seen: list[object] = []
    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        app.current_request = "other"
        ready.set()
        done.wait(5)
        seen.append(app.current_request)

    thread = threading.Thread(target=other)
    thread.start()
    ready.wait(5)
    assert app.current_request == "main"  # not the other thread's, set meanwhile
    done.set()
    thread.join()
    assert seen == ["other"]
