"""Pins moto's Lambda invoke hook that dagcast/local/moto/invoker.py replaces
(``moto.awslambda.models.LambdaFunction._invoke_lambda``)."""

from __future__ import annotations

import inspect
import json

import boto3
from moto.awslambda.models import LambdaFunction

from dagcast.local.lambdas import function_name


def test_lambda_invoke_hook_still_exists_with_the_same_signature(stack):
    assert hasattr(LambdaFunction, "_invoke_lambda"), "moto no longer has LambdaFunction._invoke_lambda"
    original = stack.invoker.replaced
    assert original.__module__ == "moto.awslambda.models"
    params = list(inspect.signature(original).parameters)
    assert params == ["self", "event"], f"LambdaFunction._invoke_lambda now takes {params}"


def test_boto3_invoke_reaches_the_in_process_handler_and_errors_keep_lambdas_shape(stack):
    client = boto3.client("lambda")

    def handler(event, context):
        if event.get("boom"):
            raise KeyError("missing")
        return {"echo": event, "fn": context.function_name}

    with stack.handler_override("finalize", handler):
        ok = client.invoke(FunctionName=function_name("finalize"), Payload=json.dumps({"a": 1}))
        bad = client.invoke(FunctionName=function_name("finalize"), Payload=json.dumps({"boom": True}))
    assert json.loads(ok["Payload"].read()) == {"echo": {"a": 1}, "fn": function_name("finalize")}
    assert bad["FunctionError"] == "Handled"
    body = json.loads(bad["Payload"].read())
    assert body["errorType"] == "KeyError" and body["errorMessage"] == "'missing'"
