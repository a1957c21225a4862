# dagcast — every command sets up what it needs (a venv in .venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.txt | cksum | cut -d' ' -f1)

.PHONY: install test lint typecheck unit functional e2e big chaos soak demo up bench schema types client jstest fixtures deploy destroy clean

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dagcast needs Python 3.11 or newer (found %s)" % sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# pytest-xdist spreads the test files over PYTEST_WORKERS processes, a whole file per process at a
# time (so a module's stack or `dagcast up` is set up once). Most of the suite waits — on moto's
# Step Functions interpreter, on servers, on a browser — so 4 processes beat 2 even on 2 cores.
# PYTEST_WORKERS=0 runs it in this process (pytest -s, pdb).
PYTEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadfile)

test: lint typecheck
	$(BIN)/pytest $(XDIST)

unit: install
	$(BIN)/pytest $(XDIST) tests/unit

functional: install
	$(BIN)/pytest $(XDIST) tests/functional

e2e: install
	$(BIN)/pytest $(XDIST) tests/e2e

# 1,000-task DAGs with 500-wide levels on the local stack (minutes; not part of `make test`).
big: install
	$(BIN)/pytest -m big -s tests/big

# Random DAGs while DynamoDB calls fail at random (throttled, 5xx, answers lost) and the task Lambda
# crashes, times out or runs twice; then 200 SSE clients cut at random across a ~1,000-event
# execution while the SSE server and the stream poller restart. Each prints faults injected, events
# checked, lost and duplicated (minutes; the short versions are in `make test`).
chaos: install
	$(BIN)/python -m tests.support.chaos_run
	$(BIN)/python -m tests.support.chaos_stream

# Soak: 50 executions in flight and 100 SSE clients for 10 minutes on `dagcast up`; prints RSS and
# CPU of the server and of the stack (moto + stream poller) over time, events lost, p99 latency,
# and a flat/GROWING verdict per process (about 15 minutes; not part of `make test`).
soak: install
	$(BIN)/python -m bench.soak

# Runs the example job on the embedded local stack and prints every event live (its report task
# streams its text: substep.progress lines, no network or key needed).
demo: install
	$(BIN)/dagcast run examples/research-report.json

# Benchmarks print numbers (they assert nothing): SSE fan-out to many clients, hub vs no hub;
# a 7-task chain's ms per hop, a random 200-task DAG's makespan against its critical path, and
# against wave scheduling; events through the stream handler to 10 webhook endpoints (events/s,
# lag write → receipt, with the mapping's 1 s batching window and with none, fan-out invocations);
# SSE in Lambda's shape: K processes with one viewer each (on-demand) and one process with K viewers
# (managed-instances) on one emitting execution — its partition's RCU/s, latency, the projection to
# 10,000 viewers, $ per viewer-hour and the issue-17 goals (docs/cost.md; about 2 minutes); each
# function's handler-module import time, fresh processes (docs/operations.md § Cold starts); a
# tenant flooding with 100 executions against a lone one (docs/security.md#quotas-and-fairness);
# live text: provider chunk → SSE client latency p50/p99 and DynamoDB writes per 1,000 streamed
# tokens (docs/cost.md#live-text-substepprogress).
bench: install
	$(BIN)/python -m bench.sse_fanout
	$(BIN)/python -m bench.sse_gzip
	$(BIN)/python -m bench.sse_lambda_shape
	$(BIN)/python -m bench.event_previews
	$(BIN)/python -m bench.dag_makespan
	$(BIN)/python -m bench.transitions
	$(BIN)/python -m bench.write_capacity
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.import_times
	$(BIN)/python -m bench.fairness
	$(BIN)/python -m bench.progress_latency

# docs/events.schema.json from the event models (chalicelib/domain/events.py): run it after changing
# an event; tests/unit/test_event_schema.py fails while the committed file differs from the models.
schema: install
	$(BIN)/python -m chalicelib.domain.schema > docs/events.schema.json.tmp
	mv docs/events.schema.json.tmp docs/events.schema.json

# The JS client (clients/js, docs/webapp.md). Its tests need node (18+) and nothing installed; pytest
# runs them (tests/functional/test_js_client.py), so `make test` does. `make types` regenerates the
# TypeScript event types from docs/events.schema.json (after `make schema`; needs npm and the
# registry: `npm exec` fetches json-schema-to-typescript); `make client` rebuilds the classic-script
# copy the monitor and examples/webapp load (monitor/dagcast-client.js) after a change in
# clients/js/src; `make fixtures` records the streams the node tests fold, from `dagcast up`. Each
# output is committed, and a test fails while it is stale.
types:
	node clients/js/scripts/gen-types.mjs

client:
	node clients/js/scripts/build-global.mjs

jstest:
	node --test clients/js/test/

fixtures: install
	$(BIN)/python -m tests.support.record_streams

# The local stack in the foreground on 127.0.0.1:8000.
up: install
	$(BIN)/dagcast up

# AWS: `make deploy STAGE=dev` (chalice deploy + template.yaml, wired; needs the sam and aws CLIs and
# credentials; docs/deploy.md). `make deploy STAGE=prod DRY_RUN=1` prints the plan only; REGION=…,
# CORS_ORIGINS=https://app.example.com,… and (destroy) DELETE_DATA=1 pass the flags of the same names;
# SSE_PROFILE=managed-instances SSE_SUBNETS=subnet-…,subnet-… SSE_SECURITY_GROUPS=sg-… pick the SSE
# profile (the other --sse-* flags: call `dagcast deploy` itself).
STAGE ?= dev
deploy: install
	$(BIN)/dagcast deploy --stage $(STAGE) $(if $(REGION),--region $(REGION)) \
		$(if $(CORS_ORIGINS),--cors-origins '$(CORS_ORIGINS)') $(if $(DRY_RUN),--dry-run) \
		$(if $(SSE_PROFILE),--sse-profile $(SSE_PROFILE)) $(if $(SSE_SUBNETS),--sse-subnets $(SSE_SUBNETS)) \
		$(if $(SSE_SECURITY_GROUPS),--sse-security-groups $(SSE_SECURITY_GROUPS))

destroy: install
	$(BIN)/dagcast destroy --stage $(STAGE) $(if $(REGION),--region $(REGION)) \
		$(if $(DELETE_DATA),--delete-data) $(if $(DRY_RUN),--dry-run)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info test-artifacts
