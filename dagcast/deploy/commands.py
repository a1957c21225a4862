"""Running the deploy's tools (chalice, sam, aws, pip): where they are, what a failure says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class Runner(Protocol):
    def __call__(
        self, argv: Sequence[str], *, quiet: bool = False, env: Mapping[str, str] | None = None
    ) -> str: ...


def region_env(region: str) -> dict[str, str]:
    """This process's environment with ``region`` for every AWS tool: chalice takes no region flag
    and reads botocore's (``AWS_DEFAULT_REGION`` first). Handed to each command, never set here:
    the caller's environment stays as it was (the deploy is also called in-process, by tests)."""
    return {**os.environ, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}


class DeployError(RuntimeError):
    pass


class CommandFailed(DeployError):
    """A command exited non-zero; ``stderr`` is what it said when it was run ``quiet``."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def run_command(argv: Sequence[str], *, quiet: bool = False, env: Mapping[str, str] | None = None) -> str:
    """Run a command; its stdout is returned (and echoed) and its stderr streams through. ``quiet``
    is for a probe whose failure is an answer (describe-table of a missing table): nothing is
    echoed and stderr is kept for the caller (CommandFailed.stderr). ``env``: the command's whole
    environment (None: this process's)."""
    done = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
        env=None if env is None else dict(env),
    )
    if done.stdout and not quiet:
        sys.stdout.write(done.stdout)
    if done.returncode != 0:
        command = " ".join([Path(argv[0]).name, *argv[1:2]])
        raise CommandFailed(f"{command} failed with exit code {done.returncode}", done.stderr or "")
    return done.stdout


def which(tool: str) -> str | None:
    """On PATH, or next to this Python (the project's .venv/bin holds chalice); python is this one."""
    if tool == "python":
        return sys.executable
    beside = Path(sys.executable).parent / tool
    return shutil.which(tool) or (str(beside) if beside.exists() else None)
