"""Packaging dagcast's Lambdas: one zip of app.py, chalicelib/, Chalice's runtime module and the
requirements.txt dependencies installed for Linux x86_64 / CPython 3.12, as `chalice package`
lays it out; cached by a hash of all of it.

It builds and caches the zip; it uploads nothing (provision.py does).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import LocalStackError

# What the Lambdas run on, in LocalStack as in AWS (template.yaml, `chalice deploy`).
RUNTIME = "python3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_PYTHON_VERSION = "3.12"
# Lambda's limits for a deployment package uploaded directly.
ZIPPED_LIMIT_BYTES = 50 * 1024 * 1024
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# Bump when the zip's layout changes: cached zips of an older layout are not reused.
ZIP_FORMAT = "1"


def project_root() -> Path:
    """The checkout holding app.py, chalicelib/ and requirements.txt (what Chalice would package)."""
    import app

    root = Path(app.__file__).resolve().parent
    if not (root / "requirements.txt").is_file() or not (root / "chalicelib").is_dir():
        raise LocalStackError(
            f"the LocalStack backend builds its Lambda zip from a source checkout; {root} has no "
            "requirements.txt and chalicelib/ beside app.py"
        )
    return root


def default_build_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dagcast" / "lambda-zips"


def lambda_sources(root: Path) -> list[tuple[str, bytes]]:
    """(path in the zip, content) of dagcast's own code, as `chalice package` lays it out."""
    import chalice
    import chalice.app

    files = [
        ("app.py", (root / "app.py").read_bytes()),
        # Chalice ships its runtime module with every function (chalice/deploy/packager.py).
        ("chalice/__init__.py", Path(chalice.__file__).read_bytes()),
        ("chalice/app.py", Path(chalice.app.__file__).read_bytes()),
    ]
    lib = root / "chalicelib"
    for path in sorted(lib.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((f"chalicelib/{path.relative_to(lib).as_posix()}", path.read_bytes()))
    return files


def zip_cache_key(sources: list[tuple[str, bytes]], requirements: bytes) -> str:
    digest = hashlib.sha256()
    for part in (ZIP_FORMAT, LAMBDA_PLATFORM, LAMBDA_PYTHON_VERSION):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(requirements).digest())
    for name, content in sources:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes → same CodeSha256
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _skip_dependency(rel: Path) -> bool:
    return rel.parts[0] == "bin" or "__pycache__" in rel.parts or rel.suffix == ".pyc"


def build_lambda_zip(root: Path | None = None, build_dir: Path | None = None) -> Path:
    """The deployment package of every dagcast Lambda; reused while sources and requirements match.

    Dependencies come from ``pip install --target --platform manylinux2014_x86_64 --only-binary=:all:
    --python-version 3.12 -r requirements.txt`` (wheels for Lambda's Linux, whatever this machine is).
    """
    root = root or project_root()
    build_dir = build_dir or default_build_dir()
    requirements = (root / "requirements.txt").read_bytes()
    sources = lambda_sources(root)
    out = build_dir / f"dagcast-lambda-{zip_cache_key(sources, requirements)[:20]}.zip"
    if out.is_file():
        return out
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=build_dir) as tmp:
        deps = Path(tmp) / "deps"
        _install_dependencies(root / "requirements.txt", deps)
        partial = Path(tmp) / "lambda.zip"
        unzipped = _write_zip(partial, deps, sources)
        zipped = partial.stat().st_size
        if zipped > ZIPPED_LIMIT_BYTES or unzipped > UNZIPPED_LIMIT_BYTES:
            raise LocalStackError(
                f"the Lambda zip is {zipped / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped: "
                "over Lambda's 50 MB / 250 MB limits"
            )
        os.replace(partial, out)
    return out


def _install_dependencies(requirements: Path, deps: Path) -> None:
    """requirements.txt's wheels for Lambda's platform into ``deps``."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--target", str(deps), "--platform", LAMBDA_PLATFORM, "--implementation",
        "cp", "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:",
        "-r", str(requirements),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalStackError(
            f"pip could not install requirements.txt for Lambda ({RUNTIME}, {LAMBDA_PLATFORM}):\n"
            + (done.stderr or done.stdout)[-3000:]
        )


def _write_zip(path: Path, deps: Path, sources: list[tuple[str, bytes]]) -> int:
    """The dependencies, then dagcast's sources, into the zip at ``path``; their size unzipped."""
    unzipped = 0
    with zipfile.ZipFile(path, "w", compresslevel=9) as zf:
        for dependency in sorted(deps.rglob("*")):
            rel = dependency.relative_to(deps)
            if dependency.is_file() and not _skip_dependency(rel):
                content = dependency.read_bytes()
                unzipped += len(content)
                zf.writestr(_zip_entry(rel.as_posix()), content)
        for name, content in sources:
            unzipped += len(content)
            zf.writestr(_zip_entry(name), content)
    return unzipped
