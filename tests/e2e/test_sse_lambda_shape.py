"""bench/sse_lambda_shape runs and prints its table, so it cannot rot (tiny K, short phases).

It checks the report's shape and that every viewer got every event; the numbers themselves are the
benchmark's to print (`make bench`), not a test's to time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_the_benchmark_prints_both_shapes_projections_costs_and_goals():
    args = ["--on-demand-processes", "2", "--viewers", "3", "--events-seconds", "1.5"]
    args += ["--quiet-seconds", "1.5", "--settle", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.sse_lambda_shape", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "K = 2 SSE processes" in out and "K = 3 viewers" in out
    rows = re.findall(
        rf"^  (events \(10/s\)|quiet)\s+{NUMBER}(?:\s+{NUMBER}){{4}}\s+│\s+{NUMBER}\s+{NUMBER}$", out, re.M
    )
    assert rows == ["events (10/s)", "quiet"] * 2, out
    received = re.findall(
        rf"p50 {NUMBER} ms, p99 {NUMBER} ms, .* events per viewer (\d+)–(\d+) of (\d+) written", out
    )
    assert len(received) == 2, out
    for low, high, written in received:
        # every viewer, every event (the writer aims at 10/s for 1.5 s; a loaded machine writes fewer)
        assert int(written) >= 2 and int(low) == int(high) == int(written)
    assert len(re.findall(rf"10,000 viewers → {NUMBER} RCU/s", out)) == 8, out  # 4 rows a shape
    assert len(re.findall(rf"\$ per viewer-hour.*= \${NUMBER}", out)) == 2, out
    assert "at 64 streams per environment" in out  # template.yaml's SsePerEnvironmentConcurrency
    assert len(re.findall(rf"wake-up after the quiet phase .* p50 {NUMBER} ms, max {NUMBER} ms", out)) == 2, (
        out
    )
    assert len(re.findall(r"^  (?:PASS|FAIL)  ", out, re.M)) == 5, out
