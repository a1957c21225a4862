"""The JS client (clients/js): its node tests, the package `npm pack` makes, and the generated types
against a fresh generation. Tools run as subprocesses, hence this layer. node is required where
DAGCAST_REQUIRE_NODE is set (.ci/run), else its absence skips; npm only for packing and
regenerating (skipped without it, or without the registry for the regeneration)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if name == "node" and os.environ.get("DAGCAST_REQUIRE_NODE"):
            pytest.fail("node is required here (DAGCAST_REQUIRE_NODE is set): install node 18+")
        pytest.skip(f"{name} is not installed")
    return found


def test_the_node_tests_pass():
    """fold and the parsing against the recorded streams, the watch loop, the React hook, the
    classic-script build and the types' digest: clients/js/test (node's own test runner)."""
    run = subprocess.run(
        [_tool("node"), "--test", "test/"], cwd=CLIENT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"^# fail 0$", run.stdout, re.M), run.stdout[-2000:]
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.M)
    assert passed is not None and int(passed.group(1)) >= 30, run.stdout[-2000:]


def test_npm_pack_makes_a_package_that_installs_and_imports(tmp_path: Path):
    """The tarball holds src/ and the README (not the tests), installs offline (no dependencies) and
    both entry points resolve by name; the main one imports without React."""
    npm, node = _tool("npm"), _tool("node")
    packed = subprocess.run(
        [npm, "pack", "--json", "--pack-destination", str(tmp_path)],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert packed.returncode == 0, packed.stderr
    info = json.loads(packed.stdout)[0]
    files = {f["path"] for f in info["files"]}
    assert {"package.json", "README.md", "src/index.js", "src/react.js", "src/events.d.ts"} <= files
    assert not any(f.startswith(("test/", "scripts/")) for f in files), files
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "type": "module"}')
    install = [npm, "install", "--offline", "--no-audit", "--no-fund", str(tmp_path / info["filename"])]
    done = subprocess.run(install, cwd=app, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    script = (
        "import { fold, initialState, watchExecution } from '@dagcast/client';"
        "const s = fold(initialState('x'), {type: 'execution.created', seq: 1, totalTasks: 2});"
        "console.log(s.status, typeof watchExecution,"
        " import.meta.resolve('@dagcast/client/react').endsWith('/src/react.js'));"
    )
    imported = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=app, capture_output=True, text=True, timeout=60
    )
    assert imported.stdout.split() == ["running", "function", "true"], imported.stderr


def test_the_committed_types_are_what_the_generator_makes_now():
    """src/events.d.ts regenerated from docs/events.schema.json (json-schema-to-typescript, fetched by
    npm exec) is byte for byte the committed one. Offline, the digest check in the node tests and
    tests/unit/test_js_client.py still catches a schema change without `make types`."""
    _tool("npm")
    node = _tool("node")
    run = subprocess.run(
        [node, "scripts/gen-types.mjs", "--check"], cwd=CLIENT, capture_output=True, text=True, timeout=300
    )
    if run.returncode != 0 and re.search(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|network", run.stderr):
        pytest.skip("the npm registry is not reachable: cannot regenerate the types here")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_types_compile_and_accept_what_a_newer_server_sends():
    """clients/js/test/typecheck/open.mts under tsc --strict (typescript fetched by npm exec): an
    unknown reason, field and event type are accepted, and the README's calls type-check."""
    npm = _tool("npm")
    run = subprocess.run(
        [npm, "exec", "--yes", "--package=typescript@5.6.3", "--", "tsc", "--noEmit", "--strict",
         "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
         "--lib", "es2022,dom", "test/typecheck/open.mts"],
        cwd=CLIENT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if run.returncode != 0 and re.search(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|network", run.stderr):
        pytest.skip("the npm registry is not reachable: cannot fetch typescript here")
    assert run.returncode == 0, run.stdout + run.stderr
