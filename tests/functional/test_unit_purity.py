"""The tests/unit guard (tests/unit/conftest.py) fails what it should, and only there: a copy of it
runs in a scratch project against deliberately impure unit tests, each of which must fail naming
the rule, while the same code under tests/functional passes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUARD = Path(__file__).resolve().parents[1] / "unit" / "conftest.py"

IMPURE = """
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest


def test_pure():
    assert sum([1, 2]) == 3


def test_connects():
    socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_connects_and_swallows_the_error():
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except Exception:
        pass  # as a CLI turning a refused connection into one line would


def test_http_to_localhost():
    import httpx

    httpx.get("http://127.0.0.1:9/")


def test_serves():
    ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)


def test_runs_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_makes_a_boto3_client():
    boto3.client("s3", region_name="us-east-1")


def test_uses_moto():
    from moto import mock_aws

    with mock_aws():
        boto3.resource("dynamodb", region_name="us-east-1")


@pytest.fixture(scope="module")
def built_with_pip():
    return subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_with_an_impure_module_fixture(built_with_pip):
    pass
"""

AT_IMPORT = """
import subprocess
import sys

PROBE = subprocess.run([sys.executable, "-c", "pass"])


def test_never_collected():
    pass
"""

ALLOWED = """
import subprocess
import sys

import boto3


def test_functional_tests_may():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    boto3.client("s3", region_name="us-east-1")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for package in ("tests", "tests/unit", "tests/functional"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    shutil.copy(GUARD, tmp_path / "tests" / "unit" / "conftest.py")
    (tmp_path / "tests" / "unit" / "test_impure.py").write_text(textwrap.dedent(IMPURE))
    (tmp_path / "tests" / "unit" / "test_at_import.py").write_text(textwrap.dedent(AT_IMPORT))
    (tmp_path / "tests" / "functional" / "test_allowed.py").write_text(textwrap.dedent(ALLOWED))
    return tmp_path


def outcomes(project: Path) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the scratch project's tests
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "testing"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--continue-on-collection-errors",
         "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    summary = run.stdout[run.stdout.rfind("short test summary info") :]
    found = re.findall(r"^(PASSED|FAILED|ERROR) (\S+)", summary, re.MULTILINE)
    return {test.rsplit("::", 1)[-1].removesuffix(".py"): outcome for outcome, test in found}, run.stdout


def test_the_unit_guard_fails_every_impure_unit_test_and_nothing_else(project: Path) -> None:
    seen, out = outcomes(project)
    assert seen == {
        "test_pure": "PASSED",
        "test_connects": "FAILED",
        "test_connects_and_swallows_the_error": "FAILED",
        "test_http_to_localhost": "FAILED",
        "test_serves": "FAILED",
        "test_runs_a_process": "FAILED",
        "test_makes_a_boto3_client": "FAILED",
        "test_uses_moto": "FAILED",
        "test_with_an_impure_module_fixture": "ERROR",  # failed in its setup
        "tests/unit/test_at_import": "ERROR",  # failed to collect
        "test_functional_tests_may": "PASSED",  # the guard is tests/unit's only
    }, out
    rule = "tests/unit must be pure (no sockets, no subprocesses, no AWS clients or moto)"
    for what, where in [
        ("opened a socket connection to ('127.0.0.1', 9)", "belongs in tests/e2e"),
        ("listened on a socket (a server)", "belongs in tests/e2e"),
        ("started a subprocess", "belongs in tests/functional"),
        ("created an AWS client", "belongs in tests/functional"),
    ]:
        assert re.search(re.escape(f"{rule}: it {what}") + r"; [^\n]*" + re.escape(where), out), what
    # a swallowed violation still fails its test, by name
    assert "test_connects_and_swallows_the_error: tests/unit must be pure" in out
