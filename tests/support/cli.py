"""The dagcast CLI as a user runs it: its own process, none of the test's DAGCAST_ settings, and a
config file that does not exist (so a developer's ~/.config/dagcast cannot change what a test sees)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dagcast.local.launch import DAGCAST

ROOT = Path(__file__).resolve().parents[2]


def dagcast(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGCAST_")}
    env["DAGCAST_CONFIG"] = str(ROOT / "test-artifacts" / "no-dagcast-config.json")
    return subprocess.run(
        [str(DAGCAST), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
