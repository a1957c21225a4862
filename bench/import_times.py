"""bench/import_times — what each function's cold start spends importing its code.

For every Lambda function of a stage, a fresh Python process imports the function's handler module
(``app`` for the Chalice functions, ``chalicelib.stream.app`` and uvicorn for the SSE function:
infra/sse/run.sh) and then the modules the function imports on its first invocation (the fan-out
and the webhook dispatcher load theirs lazily: chalicelib/factory.py). Prints per function:

  median / min / max  ms to import, over --runs fresh processes
  modules             how many modules are loaded after it (sys.modules)

and, for comparison, ``all of it``: every module any Chalice function imports, which is what each
of them imported before its handler module imported only what it uses (the SSE function imported
them too, through the services it built for its store).

Numbers, not assertions (this is `make bench`). Measured with this machine's Python and the
project's venv: Lambda's runtime (3.13), its disk and its CPU share differ, and the venv has
packages the Lambda bundle does not (rich, click and pygments, which httpx imports for its CLI when
they are installed), so compare runs on one machine; `dagcast verify` measures cold starts in AWS.

    python -m bench.import_times [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from dagcast.deploy.concurrency import BUDGET

ROOT = Path(__file__).resolve().parent.parent
CHALICE_HANDLER = "app"
SSE_MODULES = ("chalicelib.stream.app", "uvicorn")
# What a function imports on its first invocation, beyond its handler module (lazily loaded parts).
WEBHOOK_SENDING = (
    "chalicelib.fanout",
    "chalicelib.webhooks.dispatcher",
    "chalicelib.webhooks.sender",
    "httpx",
)
FIRST_USE: dict[str, tuple[str, ...]] = {
    "fanout": (*WEBHOOK_SENDING, "aws_lambda_powertools.utilities.batch"),
    "webhook_retry": WEBHOOK_SENDING,
}
_CHILD = (
    "import importlib, json, sys, time\n"
    "started = time.perf_counter()\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print(json.dumps([time.perf_counter() - started, len(sys.modules)]))\n"
)


def functions() -> dict[str, tuple[str, ...]]:
    """Function → the modules its cold start imports; every Chalice function of the budget table."""
    found = {fn: (CHALICE_HANDLER, *FIRST_USE.get(fn, ())) for fn in BUDGET}
    found["all of it"] = tuple(dict.fromkeys(m for mods in found.values() for m in mods))
    found["sse"] = SSE_MODULES
    return found


def measure(modules: tuple[str, ...], runs: int) -> tuple[list[float], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    times, count = [], 0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, *modules],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seconds, count = json.loads(out)
        times.append(seconds * 1000)
    return times, count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"import time of each function's handler module, {args.runs} fresh processes each (Python {sys.version.split()[0]})"
    )
    print(f"  {'function':<16} {'median ms':>9} {'min':>7} {'max':>7} {'modules':>8}  imports")
    for function, modules in functions().items():
        times, count = measure(modules, args.runs)
        print(
            f"  {function:<16} {statistics.median(times):9.0f} {min(times):7.0f} {max(times):7.0f} {count:8d}"
            f"  {', '.join(modules)}"
        )


if __name__ == "__main__":
    main()
