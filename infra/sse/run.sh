#!/bin/bash
# Entry point of the SSE Lambda: the Lambda Web Adapter (layer) starts this and proxies the
# function URL's streaming invocations (AWS_LWA_INVOKE_MODE=response_stream) to uvicorn.
export PYTHONPATH="/var/task:${PYTHONPATH:-}"
exec python -m uvicorn --factory chalicelib.stream.app:app_factory --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log
