"""What ships in the SSE function, and for which Python (dagcast/deploy/bundle.py): only the bundle, never
the repository (`sam build` with ``CodeUri: .`` copied the whole of it, .venv included), and every
function on Python 3.13."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagcast.deploy import bundle
from dagcast.deploy.sse_profiles import MANAGED_INSTANCES, SseProfile
from tests.support.cloudformation import ROOT, Stack, template

SSE_FUNCTIONS = ("SseFunction", "SseManagedFunction")


@pytest.mark.parametrize("name", SSE_FUNCTIONS)
def test_each_sse_function_ships_the_bundle_not_the_repository(name: str):
    resource = template()["Resources"][name]
    assert resource["Properties"]["CodeUri"] == bundle.BUNDLE_DIR.as_posix()
    assert "Metadata" not in resource  # no `sam build` step: it would copy CodeUri's directory first
    assert f"{bundle.BUNDLE_DIR.parts[0]}/" in (ROOT / ".gitignore").read_text().split()  # never committed


def test_the_bundle_holds_chalicelib_and_run_sh_and_nothing_else(tmp_path: Path):
    shipped = bundle.add_sources(ROOT, tmp_path / "sse")
    names = {p.as_posix() for p in shipped}
    assert "run.sh" in names and "chalicelib/stream/app.py" in names  # what run.sh starts
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib").rglob("*.py")}
    assert sources <= names
    assert all(n == "run.sh" or n.startswith("chalicelib/") for n in names), names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    size = sum((tmp_path / "sse" / p).stat().st_size for p in shipped)
    assert size < 2_000_000, size  # the sources; the wheels come from pip, for the runtime


def test_the_wheels_are_the_runtimes_and_go_into_the_bundle():
    argv = bundle.pip_command()
    assert argv[argv.index("--target") + 1] == bundle.BUNDLE_DIR.as_posix()
    assert argv[argv.index("--python-version") + 1] == bundle.PYTHON_VERSION
    assert argv[argv.index("--platform") + 1] == "manylinux2014_x86_64" and "--only-binary=:all:" in argv
    assert (ROOT / argv[argv.index("-r") + 1]).exists()


@pytest.mark.parametrize(
    "profile", [SseProfile(), SseProfile(MANAGED_INSTANCES, subnets="subnet-0a", security_groups="sg-0a")]
)
def test_every_function_runs_python_3_13(profile):
    """The SSE functions by the template; Chalice's by the Python that runs chalice, which deploy
    checks (tests/unit/test_deploy.py: a chalice on 3.11 stops the deploy)."""
    stack = Stack("dev", **profile.parameters())
    for name in SSE_FUNCTIONS:
        if stack.exists(name):
            assert stack.props(name)["Runtime"] == bundle.RUNTIME == "python3.13"
