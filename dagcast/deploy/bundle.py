"""What ships to Lambda, and for which Python: the SSE function's bundle and the runtime check.

The SSE function's bundle is built here, into build/sse (template.yaml's CodeUri of both SSE
functions), and `sam deploy` zips that directory as it is. Not `sam build` with ``CodeUri: .``: its
makefile builder copies the CodeUri directory before it runs make — the whole repository, a
.venv of hundreds of MB included — on every build. The bundle is the wheels of
infra/sse/requirements.txt for the runtime (Linux x86_64, CPython 3.13, whatever Python runs the
deploy), chalicelib without caches, and run.sh: nothing else (tests/unit/test_bundle.py lists it).

Every function runs Python 3.13 (RUNTIME; Lambda Managed Instances need 3.13 or later). The SSE
functions say so in template.yaml. Chalice gives its functions the runtime of the Python that runs
`chalice deploy`, and picks their wheels (pydantic-core is compiled) for that same version, so a
runtime set afterwards in a packaged template would run 3.11 wheels on 3.13: deploy instead runs
Chalice under 3.13 and stops before changing anything when the Python behind ``chalice`` is another
(``chalice --version`` names it, through whatever wrapper or shim starts it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .deployer import Deployer

PYTHON_VERSION = "3.13"
RUNTIME = f"python{PYTHON_VERSION}"
BUNDLE_DIR = Path("build") / "sse"  # relative to the project; template.yaml's CodeUri
REQUIREMENTS = Path("infra") / "sse" / "requirements.txt"
ENTRY = Path("infra") / "sse" / "run.sh"
PACKAGE = "chalicelib"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def pip_command() -> list[str]:
    """Wheels for the runtime, not for this machine's Python (--platform/--python-version need
    --only-binary: pip cannot build an sdist for another platform). ``python`` is the one running
    dagcast (deploy.py's which); the paths are the project's, the directory deploy runs in."""
    return [
        "python", "-m", "pip", "install", "--quiet", "--upgrade",
        "--target", BUNDLE_DIR.as_posix(), "-r", REQUIREMENTS.as_posix(),
        "--platform", "manylinux2014_x86_64", "--implementation", "cp",
        "--python-version", PYTHON_VERSION, "--only-binary=:all:",
    ]  # fmt: skip


def clear(root: Path) -> None:
    """An empty bundle directory: nothing from an earlier build (a deleted module) ships again."""
    out = root / BUNDLE_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def add_sources(root: Path, out: Path | None = None) -> list[Path]:
    """chalicelib and run.sh into the bundle, after the wheels; the files added, relative to it."""
    out = out or root / BUNDLE_DIR
    shutil.copytree(root / PACKAGE, out / PACKAGE, ignore=_SKIP, dirs_exist_ok=True)
    shutil.copy2(root / ENTRY, out / ENTRY.name)
    return sorted(p.relative_to(out) for p in [*(out / PACKAGE).rglob("*"), out / ENTRY.name] if p.is_file())


def build(deployer: Deployer) -> None:
    """build/sse afresh: the wheels, then the sources (each step printed; nothing in a dry run)."""
    if not deployer.dry_run:
        clear(deployer.root)
    deployer._cmd(*pip_command())
    deployer.say(f"$ copy {PACKAGE}/ and {ENTRY} into {BUNDLE_DIR}/")
    if not deployer.dry_run:
        add_sources(deployer.root)
