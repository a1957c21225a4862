"""Each function's handler module imports only what the function uses (docs/operations.md § Cold
starts): a fresh Python imports the module, and none of the heavy modules another function, the
local toolchain or the tests need may be loaded. bench/import_times.py measures what it costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.cloudformation import ROOT

# Never in a Lambda: the local stack, the CLI, the test tools.
TOOLCHAIN = ("moto", "dagcast", "localstack_client", "rich", "click", "pytest", "hypothesis", "uvicorn")
# Loaded on first use by the functions that send webhooks or read the stream (chalicelib/factory.py).
WEBHOOK_SENDING = (
    "httpx",
    "chalicelib.fanout",
    "chalicelib.webhooks.dispatcher",
    "chalicelib.webhooks.sender",
    "aws_lambda_powertools.utilities.batch",
)
FORBIDDEN = {
    # every Chalice function's handler is app.<function>
    "app": (*TOOLCHAIN, *WEBHOOK_SENDING, "starlette", "chalicelib.stream.endpoint"),
    # the SSE function (infra/sse/run.sh): no Chalice, no tracing, no webhooks
    "chalicelib.stream.app": (*TOOLCHAIN[:-1], *WEBHOOK_SENDING, "chalice", "aws_xray_sdk"),
}


def loaded_after_importing(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_a_handler_module_imports_none_of_what_its_function_does_not_use(module: str):
    """app.py imported the fan-out at the top, and the services module the dispatcher, its httpx
    sender and powertools' batch utility: every task function's cold start paid for the webhook
    machinery, and the SSE function's for all of it (it built every service to get the store)."""
    loaded = loaded_after_importing(module)
    assert module in loaded and "chalicelib.config" in loaded  # the probe imports what it should
    heavy = sorted(m for m in FORBIDDEN[module] if m in loaded)
    assert heavy == [], f"importing {module} loads {heavy}"
