"""Debian's headless Chromium for the browser tests (driven by Playwright): where it is, the flags
this machine needs, and the rule that a missing browser skips a test — or fails it where
DAGCAST_REQUIRE_BROWSER is set (CI), so a broken install cannot pass as skipped tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # screenshots, for a human to look at
TIMEOUT_MS = 60_000  # how long a page wait may take on a loaded 2-core machine
# The flags this machine needs (no sandbox as root, no background network: the network is closed).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    message = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
    if os.environ.get("DAGCAST_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


def launch(playwright: Any) -> Any:
    """A headless Chromium from ``sync_playwright()``'s ``playwright``."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
