"""tests/unit is pure: no sockets, no subprocesses, no AWS clients (so no moto either).

Unit tests run in well under a minute on any machine and fail only for the code they test. A test
that needs more goes elsewhere (CONTRIBUTING.md):
- tests/functional: moto or another in-process AWS fake, boto3 clients, subprocess tools
  (`chalice package`, cfn-lint, pip);
- tests/e2e: real servers, real HTTP over sockets (`dagcast up`, an HTTP server, a closed port).

The guard below enforces it. While a unit test's fixtures, body and teardown run (and while a unit
test module is imported), connecting or listening on a socket, starting a process and creating a
botocore/boto3 client raise ImpureUnitTest naming the rule. Code under test may catch that error
(a CLI turns connection errors into one line, say), so a violation is also recorded and fails the
test after its body, caught or not. The guard wraps pytest's setup, call and teardown hooks rather
than being an autouse fixture: a module-scoped fixture (a zip built with pip, say) is set up before
any function-scoped autouse fixture, and would escape it.

This file imports nothing from the project: tests/functional/test_unit_purity.py runs it against
deliberately impure tests to prove it fails them.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.session import Session as BotocoreSession

# The X-Ray SDK builds its sampling client (it calls nothing) when it is first imported, and
# powertools' Tracer, which app.py makes at import, imports it. Imported here, before any guard,
# so that a unit test importing app.py is not taken for a test making an AWS client.
importlib.import_module("aws_xray_sdk.core")

RULE = "tests/unit must be pure (no sockets, no subprocesses, no AWS clients or moto)"
WHERE = {
    "socket": "a test that needs a server or real HTTP belongs in tests/e2e",
    "process": "a test that runs a tool (chalice, cfn-lint, pip, dagcast up) belongs in "
    "tests/functional (tests/e2e if it then talks to it over sockets)",
    "aws": "a test that needs an AWS client, moto or another AWS fake belongs in tests/functional",
}


class ImpureUnitTest(AssertionError):
    """A unit test did what only functional and e2e tests may do."""


_violations: list[str] = []


def _refuse(kind: str, what: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        message = f"{RULE}: it {what}; {WHERE[kind]} (see CONTRIBUTING.md)"
        _violations.append(message)
        raise ImpureUnitTest(message)

    return refused


def _connect(kind: str) -> Callable[..., Any]:
    real = getattr(socket.socket, kind)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:  # asyncio's and multiprocessing's own plumbing
            return real(self, address)
        return _refuse("socket", f"opened a socket connection to {address!r}")()

    return connect


@contextmanager
def purity_guard() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _connect("connect"))
        mp.setattr(socket.socket, "connect_ex", _connect("connect_ex"))
        mp.setattr(socket.socket, "listen", _refuse("socket", "listened on a socket (a server)"))
        mp.setattr(subprocess.Popen, "__init__", _refuse("process", "started a subprocess"))
        for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                mp.setattr(os, name, _refuse("process", f"called os.{name}"))
        # boto3.client, boto3.resource, Session().client: every client is made here, moto's included
        mp.setattr(BotocoreSession, "create_client", _refuse("aws", "created an AWS client"))
        yield


def _run_guarded(item: pytest.Item) -> Generator[None, Any, Any]:
    del _violations[:]
    with purity_guard():
        result = yield
    if _violations:
        raise ImpureUnitTest(f"{item.nodeid}: {_violations[0]}")
    return result


# Setup too: a module- or package-scoped fixture runs in the setup of its first test.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _run_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _run_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _run_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """Importing a unit test module is guarded too (a module-level probe would run at collection)."""
    if not isinstance(collector, pytest.Module):
        return (yield)
    with purity_guard():
        return (yield)
