"""The LocalStack backend without a LocalStack, where it needs more than pure code: the Lambda zip
(built with pip, imported on CPython 3.12), the localstack-client session's clients, and the whole
provisioning run against moto's server standing in for LocalStack's API. The pure parts are
tests/unit/test_localstack.py; the health check over sockets is tests/e2e/test_localstack_health.py."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dagcast.local.localstack import backend, connection, package, provision
from tests.support.cloudformation import ROOT


def test_the_localstack_client_session_talks_to_the_endpoint_whatever_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:1")
    session = connection.localstack_session("http://127.0.0.1:4566")
    for service in ("dynamodb", "lambda", "stepfunctions", "kms", "iam", "sqs", "sts"):
        assert session.client(service).meta.endpoint_url == "http://127.0.0.1:4566", service
    assert session.client("dynamodb").meta.region_name == "us-east-1"


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package.build_lambda_zip(build_dir=tmp_path_factory.mktemp("zips"))


def requirement_names() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [
        line.split("==")[0].split("[")[0].strip().lower().replace("-", "_")
        for line in lines
        if line.strip() and not line.startswith("#")
    ]


def test_the_zip_holds_the_app_chalicelib_and_the_dependencies_only(lambda_zip: Path):
    with zipfile.ZipFile(lambda_zip) as zf:
        infos = zf.infolist()
    names = {i.filename for i in infos}
    assert {"app.py", "chalice/app.py", "chalice/__init__.py", "chalicelib/__init__.py"} <= names
    assert {f"chalicelib/{p.name}" for p in (ROOT / "chalicelib").glob("*.py")} <= names
    dists = {n.split("/")[0].lower() for n in names if n.split("/")[0].endswith(".dist-info")}
    for requirement in requirement_names():
        assert any(d.startswith(requirement + "-") for d in dists), requirement
    # binary wheels for Lambda (Linux x86_64, CPython 3.12), not for this machine's Python
    assert any(
        n.startswith("pydantic_core/") and n.endswith(".cpython-312-x86_64-linux-gnu.so") for n in names
    )
    for name in names:
        top = name.split("/")[0]
        assert top not in {"tests", ".venv", "bin", "bench", "docs", "examples", "dagcast"}, name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
    zipped = lambda_zip.stat().st_size
    unzipped = sum(i.file_size for i in infos)
    assert zipped < 50 * 2**20 and unzipped < 250 * 2**20, (zipped, unzipped)


def test_the_zip_is_reused_while_nothing_changed(lambda_zip: Path, monkeypatch):
    def no_pip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pip ran although a zip for these sources was built")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert package.build_lambda_zip(build_dir=lambda_zip.parent) == lambda_zip
    sources = package.lambda_sources(ROOT)
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = package.zip_cache_key(sources, requirements)
    assert lambda_zip.name == f"dagcast-lambda-{key[:20]}.zip"
    edited = "chalicelib/domain/dag.py"
    assert edited in dict(sources)  # an edit to a file the zip does not hold would prove nothing
    changed = [(n, c + b"\n# edited\n") if n == edited else (n, c) for n, c in sources]
    assert package.zip_cache_key(changed, requirements) != key
    assert package.zip_cache_key(sources, requirements + b"\nrequests==2\n") != key


def python312() -> str | None:
    """A CPython 3.12 that runs (a pyenv shim may name a version it will not run)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.12"), *map(str, sorted(pyenv.glob("versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == b"(3, 12)":
            return candidate
    return None


PYTHON312 = python312()


@pytest.mark.skipif(PYTHON312 is None, reason="no CPython 3.12 here to import the zip with")
def test_the_zip_imports_on_python_3_12_with_nothing_else(lambda_zip: Path, tmp_path: Path):
    assert PYTHON312 is not None
    with zipfile.ZipFile(lambda_zip) as zf:
        if "boto3/__init__.py" not in zf.namelist():
            pytest.skip("boto3 is not bundled (the Lambda runtime's is used)")
        zf.extractall(tmp_path / "task")
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); import app, chalicelib.factory, pydantic_core; "
        "assert all(callable(getattr(app, n)) for n in "
        "('register_task', 'run_task', 'record_failure', 'finalize', 'fanout_handler', 'webhook_retry')); "
        "print(sys.version_info[:2], pydantic_core.__file__)"
    )
    # -I -S: no site-packages, no PYTHON* variables — only the zip's contents and the stdlib
    done = subprocess.run(
        [PYTHON312, "-I", "-S", "-c", check, str(tmp_path / "task")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "(3, 12)" in done.stdout and str(tmp_path / "task") in done.stdout


def _tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def test_provisioning_creates_everything_then_updates_it_in_place(monkeypatch, tmp_path: Path):
    """moto is not LocalStack (it cannot run the Lambdas here), but it answers the same API calls:
    this runs every create, then every update, and the clean-up, through localstack-client."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    tiny = tmp_path / "tiny.zip"
    tiny.write_bytes(_tiny_zip())
    monkeypatch.setattr(
        backend, "check_health", lambda endpoint, timeout=5.0: {"version": "moto", "services": {}}
    )
    monkeypatch.setattr(backend, "build_lambda_zip", lambda root=None, build_dir=None: tiny)
    region = "eu-west-2"  # apart from the functional tests' moto stack in us-east-1
    try:
        first = backend.LocalStackBackend(
            endpoint=f"http://{host}:{port}",
            table_name="dagcast-ls-unit",
            region=region,
            stream_secret="x" * 32,
        ).provision()
        session = first.session()
        account = first.account
        assert first.state_machine_arn == f"arn:aws:states:{region}:{account}:stateMachine:dagcast-local-dag"
        awslambda = session.client("lambda")
        for name, handler in provision.lambda_handlers().items():
            config = awslambda.get_function(FunctionName=f"dagcast-local-{name}")["Configuration"]
            assert config["Handler"] == handler and config["Runtime"] == "python3.12"
            env = config["Environment"]["Variables"]
            assert env["DAGCAST_STATE_MACHINE_ARN"] == first.state_machine_arn
            assert (
                env["DAGCAST_TABLE"] == "dagcast-ls-unit"
                and env["DAGCAST_WEBHOOK_KMS_KEY"] == first.kms_key_arn
            )
        definition = session.client("stepfunctions").describe_state_machine(
            stateMachineArn=first.state_machine_arn
        )["definition"]
        assert first.function_arns["register_task"] in definition and "${" not in definition
        ddb = session.client("dynamodb")
        ttl = ddb.describe_time_to_live(TableName="dagcast-ls-unit")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expiresAt" and ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
        [mapping] = awslambda.list_event_source_mappings(FunctionName="dagcast-local-fanout")[
            "EventSourceMappings"
        ]
        assert mapping["UUID"] == first.mapping_uuid and mapping["EventSourceArn"] == first.stream_arn

        again = backend.LocalStackBackend(
            endpoint=f"http://{host}:{port}",
            table_name="dagcast-ls-unit",
            region=region,
            stream_secret="y" * 32,
            fanout_batch_size=10,
        ).provision()
        assert again.state_machine_arn == first.state_machine_arn
        assert again.kms_key_arn == first.kms_key_arn and again.mapping_uuid == first.mapping_uuid
        config = awslambda.get_function(FunctionName="dagcast-local-run_task")["Configuration"]
        assert config["Environment"]["Variables"]["DAGCAST_STREAM_SECRET"] == "y" * 32
        [mapping] = awslambda.list_event_source_mappings(FunctionName="dagcast-local-fanout")[
            "EventSourceMappings"
        ]
        assert mapping["BatchSize"] == 10
        shared = again.shared_environment()
        assert (
            shared["AWS_ENDPOINT_URL"] == f"http://{host}:{port}"
            and shared["DAGCAST_TABLE"] == "dagcast-ls-unit"
        )
        assert shared["DAGCAST_STREAM_SECRET"] == "y" * 32
        stats = again.fanout_stats()
        assert stats is not None and stats["eventSourceMapping"]["uuid"] == again.mapping_uuid

        again.destroy()
        assert awslambda.list_functions()["Functions"] == []
        assert "dagcast-ls-unit" not in ddb.list_tables()["TableNames"]
    finally:
        server.stop()


def test_a_table_made_before_the_list_index_gets_it_when_provisioned_again(stack):
    """A LocalStack table made by an older dagcast has GSI1 only: the list would query an index
    that is not there. Provisioning adds what the table definition has and the table lacks.
    (In the stack's moto: a mock_aws of its own would end the stack's on exit.)"""
    import boto3

    from chalicelib.persistence.keys import LIST_INDEX, table_definition

    ddb = boto3.client("dynamodb")
    old = table_definition("dagcast-ls-old")
    old["GlobalSecondaryIndexes"] = [i for i in old["GlobalSecondaryIndexes"] if i["IndexName"] == "GSI1"]
    old["AttributeDefinitions"] = [
        a for a in old["AttributeDefinitions"] if a["AttributeName"] in ("PK", "SK", "GSI1PK", "GSI1SK")
    ]
    ddb.create_table(**old)
    try:
        said: list[str] = []
        table = provision.add_missing_indexes(ddb, table_definition("dagcast-ls-old"), said.append)
        names = {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
        assert names == {"GSI1", LIST_INDEX} and said == [f"added index {LIST_INDEX} to dagcast-ls-old"]
        again: list[str] = []
        provision.add_missing_indexes(ddb, table_definition("dagcast-ls-old"), again.append)
        assert again == []
    finally:
        ddb.delete_table(TableName="dagcast-ls-old")
