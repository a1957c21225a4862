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


def test_services_are_built_once_however_many_threads_ask_first():
    """app.services: the local front's request threads, the poller and the retry function all call
    it; concurrent first calls used to build one Services each (~15 MB apiece, kept)."""
    from chalicelib.factory import BuiltOnce

    builds: list[int] = []

    def build() -> Any:
        builds.append(1)
        threading.Event().wait(0.2)  # slow, as a boto3 session is: the others arrive meanwhile
        return object()

    services = BuiltOnce(build)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(services())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(got) == 16 and all(g is got[0] for g in got)
    services.cache_clear()
    assert services() is not got[0] and len(builds) == 2


def test_built_tells_whether_services_were_built_without_building_them():
    """The moto stack closes the app's services when it stops, and must not build them to do so."""
    from chalicelib.factory import BuiltOnce

    builds: list[int] = []

    def build() -> object:
        builds.append(1)
        return object()

    services = BuiltOnce(build)
    assert services.built() is None and builds == []
    value = services()
    assert services.built() is value and builds == [1]
    services.cache_clear()
    assert services.built() is None
