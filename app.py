"""dagcast's Chalice app: the REST API and the task Lambdas. Thin on purpose — the logic is in
chalicelib/ (http: the REST handlers, the gate and the error map; orchestration: the state machine
steps; fanout: the stream consumer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Tracer
from chalice.app import Chalice, CloudWatchEvent, CORSConfig, Rate, Request, Response

from chalicelib.config import SettingsError
from chalicelib.domain.errors import DagcastError
from chalicelib.domain.model import SFN_ENDED_WITHOUT_FINALIZE
from chalicelib.factory import BuiltOnce, build_services
from chalicelib.http import api, errors, gate, webhook_routes

app = Chalice(app_name="dagcast")
# X-Ray segments around every Lambda (boto3 and httpx calls included); off outside Lambda.
tracer = Tracer(service="dagcast")


# Built on first use (the environment is read then), once, however many threads ask at the same time.
services = BuiltOnce(build_services)


def _json(reply: tuple[int, dict[str, Any], dict[str, str]]) -> Response:
    status, body, headers = reply
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **headers})


def _request() -> Request:
    request = app.current_request
    if request is None:  # pragma: no cover - Chalice sets it for every route call
        raise RuntimeError("no current request")
    return request


# Where the gate leaves the caller's tenant for the routes: a key of the request's context, which
# only dagcast writes (API Gateway's own keys are camelCase words without a prefix).
TENANT_CONTEXT = "dagcast.tenant"


def _tenant() -> str:
    tenant = (_request().context or {}).get(TENANT_CONTEXT)
    if not tenant:  # the gate runs before every route; a route without it must fail, never be open
        raise RuntimeError("the request has no tenant: the front gate did not run")
    return str(tenant)


def _base_url() -> str:
    request = _request()
    host = request.headers.get("host", "")
    if not host:
        return ""
    stage = (request.context or {}).get("stage", "")
    scheme = "http" if host.startswith(("127.0.0.1", "localhost")) else "https"
    prefix = f"/{stage}" if stage and scheme == "https" else ""
    return f"{scheme}://{host}{prefix}"


@app.middleware("http")
def front_gate(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """API keys, the per-client rate and the CORS allow-list for every route (chalicelib/http/gate.py).
    Preflights (OPTIONS) pass: API Gateway answers them itself in AWS."""
    try:
        gate = services().gate
    except SettingsError:
        return get_response(request)  # the route fails too (500); its log says what is wrong
    try:
        if request.method != "OPTIONS":
            identity = (request.context or {}).get("identity") or {}
            tenant = gate.check(request.headers, str(identity.get("sourceIp") or "unknown"))
            request.context[TENANT_CONTEXT] = tenant  # the routes read it: _tenant()
    except DagcastError as exc:
        answer = errors.answer_for(exc) or errors.INTERNAL_ERROR
        response = Response(
            body=answer.body,
            status_code=answer.status,
            headers={
                "Content-Type": "application/json",
                "Access-Control-Allow-Origin": "*",
                **answer.headers,
            },
        )
    else:
        response = get_response(request)
    gate.cors(request.headers.get("origin"), response.headers)
    return response


# Browsers may send Idempotency-Key from another origin: the preflight (API Gateway's) allows it.
SUBMIT_CORS = CORSConfig(allow_origin="*", allow_headers=["Idempotency-Key"])


@app.route("/api/v1/execute-dag", methods=["POST"], content_types=["application/json"], cors=SUBMIT_CORS)
def execute_dag() -> Response:
    request = _request()
    raw = request.raw_body
    raw = raw.encode() if isinstance(raw, str) else raw
    key = request.headers.get("idempotency-key")
    return _json(api.answer(lambda: api.execute_dag(services(), raw, _base_url(), key, tenant=_tenant())))


@app.route("/api/v1/dag-executions", methods=["GET"], cors=True)
def list_executions() -> Response:
    query = _request().query_params
    return _json(api.answer(lambda: api.list_executions(services(), query, tenant=_tenant())))


@app.route("/api/v1/dag-executions/{execution_id}", methods=["GET"], cors=True)
def get_execution(execution_id: str) -> Response:
    return _json(api.answer(lambda: api.get_execution(services(), execution_id, tenant=_tenant())))


@app.route("/api/v1/dag-executions/{execution_id}/stream-token", methods=["POST"], cors=True)
def stream_token(execution_id: str) -> Response:
    return _json(
        api.answer(lambda: api.stream_token(services(), execution_id, _base_url(), tenant=_tenant()))
    )


@app.route("/api/v1/stream-tokens", methods=["POST"], cors=True)
def many_run_token() -> Response:
    """A token for the many-run stream (GET /api/v1/dag-executions/events), scoped to its tags."""
    raw = _request().raw_body
    raw = raw.encode() if isinstance(raw, str) else raw
    return _json(api.answer(lambda: api.many_run_token(services(), raw, _base_url(), tenant=_tenant())))


@app.route("/api/v1/dag-executions/{execution_id}/cancel", methods=["POST"], cors=True)
def cancel_execution(execution_id: str) -> Response:
    return _json(api.answer(lambda: api.cancel_execution(services(), execution_id, tenant=_tenant())))


@app.route("/api/v1/dag-executions/{execution_id}", methods=["DELETE"], cors=True)
def delete_execution(execution_id: str) -> Response:
    return _json(api.answer(lambda: api.delete_execution(services(), execution_id, tenant=_tenant())))


# No content_types: the body is optional (a bare POST reruns from failure).
@app.route("/api/v1/dag-executions/{execution_id}/rerun", methods=["POST"], cors=True)
def rerun_execution(execution_id: str) -> Response:
    raw = _request().raw_body
    raw = raw.encode() if isinstance(raw, str) else raw
    return _json(
        api.answer(lambda: api.rerun_execution(services(), execution_id, raw, _base_url(), tenant=_tenant()))
    )


@app.route("/api/v1/dag-executions/{execution_id}/result", methods=["GET"], cors=True)
def final_result(execution_id: str) -> Response:
    query = _request().query_params
    return _json(api.answer(lambda: api.final_result(services(), execution_id, query, tenant=_tenant())))


@app.route("/api/v1/dag-executions/{execution_id}/tasks/{task_id}/result", methods=["GET"], cors=True)
def task_result(execution_id: str, task_id: str) -> Response:
    query = _request().query_params
    return _json(
        api.answer(lambda: api.task_result(services(), execution_id, task_id, query, tenant=_tenant()))
    )


@app.route(
    "/api/v1/dag-executions/{execution_id}/tasks/{task_id}/decision",
    methods=["POST"],
    content_types=["application/json"],
    cors=True,
)
def decide_task(execution_id: str, task_id: str) -> Response:
    """An approval task's decision: the one route whose code sends a task token (docs/security.md)."""
    request = _request()
    raw = request.raw_body.encode() if isinstance(request.raw_body, str) else request.raw_body
    tenant = _tenant()
    caller = gate.caller(request.headers, tenant)
    return _json(
        api.answer(lambda: api.decide_task(services(), execution_id, task_id, raw, caller, tenant=tenant))
    )


@app.route("/api/v1/webhooks", methods=["POST"], content_types=["application/json"], cors=True)
def create_webhook() -> Response:
    raw = _request().raw_body
    raw = raw.encode() if isinstance(raw, str) else raw
    return _json(api.answer(lambda: webhook_routes.create_webhook(services(), raw, tenant=_tenant())))


@app.route("/api/v1/webhooks", methods=["GET"], cors=True)
def list_webhooks() -> Response:
    return _json(api.answer(lambda: webhook_routes.list_webhooks(services(), tenant=_tenant())))


@app.route("/api/v1/webhooks/{webhook_id}", methods=["GET"], cors=True)
def get_webhook(webhook_id: str) -> Response:
    return _json(api.answer(lambda: webhook_routes.get_webhook(services(), webhook_id, tenant=_tenant())))


@app.route("/api/v1/webhooks/{webhook_id}", methods=["DELETE"], cors=True)
def delete_webhook(webhook_id: str) -> Response:
    return _json(api.answer(lambda: webhook_routes.delete_webhook(services(), webhook_id, tenant=_tenant())))


@app.route("/api/v1/webhooks/{webhook_id}/deliveries", methods=["GET"], cors=True)
def list_deliveries(webhook_id: str) -> Response:
    query = _request().query_params
    return _json(
        api.answer(lambda: webhook_routes.list_deliveries(services(), webhook_id, query, tenant=_tenant()))
    )


@app.route("/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", methods=["POST"], cors=True)
def replay_delivery(webhook_id: str, delivery_id: str) -> Response:
    return _json(
        api.answer(
            lambda: webhook_routes.replay_delivery(services(), webhook_id, delivery_id, tenant=_tenant())
        )
    )


@app.lambda_function(name="register_task")
@tracer.capture_lambda_handler
def register_task(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().orchestrator.register(event)


@app.lambda_function(name="run_task")
@tracer.capture_lambda_handler
def run_task(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().orchestrator.run(event)


@app.lambda_function(name="record_failure")
@tracer.capture_lambda_handler
def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().orchestrator.record_failure(event)


@app.lambda_function(name="finalize")
@tracer.capture_lambda_handler
def finalize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().orchestrator.finalize(event)


# Step Functions ending an execution itself (its TimeoutSeconds, a StopExecution outside dagcast, a
# failure outside Finalize): Finalize never ran, so this writes the terminal event. The pattern
# cannot name the stage's state machine (it is fixed when app.py loads): it matches every dagcast
# stage's parent state machine (not the Distributed Map's children, whose ARNs end in /<map run>),
# and the handler drops another stage's. The local stack calls it from DescribeExecution instead.
STATUS_CHANGE_PATTERN = {
    "source": ["aws.states"],
    "detail-type": ["Step Functions Execution Status Change"],
    "detail": {
        "status": list(SFN_ENDED_WITHOUT_FINALIZE),
        "stateMachineArn": [{"wildcard": "arn:*:states:*:*:stateMachine:dagcast-*-dag"}],
    },
}


@app.on_cw_event(STATUS_CHANGE_PATTERN, name="reconcile_execution")
@tracer.capture_method
def reconcile_execution(event: CloudWatchEvent) -> dict[str, Any]:
    return services().orchestrator.reconcile(event.detail)


@app.lambda_function(name="fanout")
@tracer.capture_lambda_handler
def fanout_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().fanout.handle(event, context)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="webhook_retry")
@tracer.capture_method
def webhook_retry(event: Any) -> None:
    """Sends webhook deliveries whose back-off is over (and lanes the stream handler left)."""
    from chalicelib import fanout  # its metrics helper; the other functions never load the fan-out

    s = services()
    if s.dispatcher is not None:
        fanout.publish_delivery_metrics(s.dispatcher.run_retries(s.settings.webhook_sweep_seconds))
