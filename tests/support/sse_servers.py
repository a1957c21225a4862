"""SSE server processes in Lambda's shape on one machine: a moto server of its own (a process) with
the table, and uvicorn processes of the SSE app against it, each what one Lambda execution
environment runs (infra/sse/run.sh). Shared by tests/e2e/test_stream_caps.py (the caps across
processes) and bench/sse_lambda_shape.py (reads and latency per profile).

Every process gets a clean environment (no AWS_/DAGCAST_/MOTO_ variable of the caller leaks in),
stream leases on and disconnect detection off (``DAGCAST_SSE_DISCONNECT=off``: no disconnect
reaches a Lambda), auth off, and X-Forwarded-For trusted (clients are told apart by it, as behind
the function URL). Logs go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import table_definition
from dagcast.local.launch import clean_environment, free_port, stop_dagcast_up, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "test-artifacts"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
SSE_APP = "chalicelib.stream.app:app_factory"  # what infra/sse/run.sh starts


def spawn(args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    LOGS.mkdir(exist_ok=True)
    with (LOGS / log).open("w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_dagcast_up(proc, timeout=10)  # SIGTERM, then SIGKILL: the same for any child server


@contextlib.contextmanager
def moto_table(table: str, log: str = "moto.log") -> Iterator[DynamoStore]:
    """A moto server (a process) with ``table``; the store to write through (``.endpoint`` set)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        {**clean_environment(), **AWS},
        log,
    )
    try:
        wait_until_answering(proc, f"{endpoint}/moto-api/", LOGS / log, endpoint)
        client = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("dynamodb", endpoint_url=endpoint)
        client.create_table(**table_definition(table))
        store = DynamoStore(client, table)
        store.endpoint = endpoint  # type: ignore[attr-defined]
        store.table = table  # type: ignore[attr-defined]
        yield store
    finally:
        stop(proc)


@contextlib.contextmanager
def sse_processes(
    store: DynamoStore, count: int, *, app: str = SSE_APP, log: str = "sse", **settings: Any
) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    """``count`` SSE server processes (uvicorn, one ``app`` each) on the table of ``store`` (one
    from ``moto_table``): (process, base URL). ``settings``: more DAGCAST_* settings
    (``max_stream_seconds=6`` → DAGCAST_MAX_STREAM_SECONDS)."""
    env = {
        **clean_environment(),
        **AWS,
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": store.endpoint,  # type: ignore[attr-defined]
        "DAGCAST_TABLE": store.table,  # type: ignore[attr-defined]
        "DAGCAST_AUTH": "off",
        "DAGCAST_TRUST_PROXY": "on",
        "DAGCAST_STREAM_LEASES": "on",
        "DAGCAST_SSE_DISCONNECT": "off",
        "DAGCAST_HEARTBEAT_SECONDS": "0.5",
        **{f"DAGCAST_{k.upper()}": str(v) for k, v in settings.items()},
    }
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for n in range(count):
            port = free_port()
            args = [sys.executable, "-m", "uvicorn", "--factory", app]
            args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            args += ["--timeout-graceful-shutdown", "1"]  # open streams do not hold the shutdown
            started.append((spawn(args, env, f"{log}-{n}.log"), f"http://127.0.0.1:{port}"))
        for n, (proc, base) in enumerate(started):
            wait_until_answering(
                proc, f"{base}/", LOGS / f"{log}-{n}.log", base
            )  # any answer (a 404) will do
        yield started
    finally:
        stop_all([proc for proc, _ in started])


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop them at once: a stream with disconnect detection off holds its server's shutdown
    until ``--timeout-graceful-shutdown``, so one after another would add those seconds up."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        stop(proc)
