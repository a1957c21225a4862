"""The embedded stack's lifecycle within one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Its own process: moto's backends are process globals, and this package's stack is running here.
START_STOP_START = """
from dagcast.local.moto.stack import MotoStack
for n in range(2):
    stack = MotoStack(table_name="dagcast-lifecycle").start()
    stack.stop()
    print("started and stopped", n + 1)
"""


def test_a_stack_starts_again_in_a_process_whose_stack_stopped():
    """A test worker (pytest-xdist) that runs another package's tests between two functional files
    stops the package's stack and later starts a new one: moto's backends outlived the first, so the
    second one's role and table already existed (EntityAlreadyExists) until stop() reset them."""
    done = subprocess.run(
        [sys.executable, "-c", START_STOP_START], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "started and stopped 2"
