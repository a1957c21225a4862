"""Pins the patch of dagcast/local/moto/patches/interpreter_caches.py (moto's Step Functions
interpreter: ``json_path.parse``, ``result_path.parse``, ``lambda_eval_utils.boto_client_for``)."""

from __future__ import annotations

import inspect


def test_the_interpreter_parses_a_path_once_and_reuses_its_lambda_client(stack):
    """cache_interpreter_lookups: the interpreter built a PLY parser for every JSONPath it read and
    a boto3 client for every Lambda state. Now both are made once; the paths evaluate as before."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path

    assert getattr(json_path, "_dagcast_cached", False), "cache_interpreter_lookups was not applied"
    json_path_parse, result_path_parse = json_path.__dict__["parse"], result_path.__dict__["parse"]
    assert json_path_parse("$.a.b") is json_path_parse("$.a.b")
    assert result_path_parse("$.release") is result_path_parse("$.release")
    assert json_path.extract_json("$.a.b", {"a": {"b": 7}}) == 7
    assert json_path.extract_json("$.Task.Token", {"Task": {"Token": "t"}}) == "t"
    client_for = lambda_eval_utils.__dict__["boto_client_for"]  # not exported (mypy)
    first = client_for(region="us-east-1", service="lambda", state_credentials=None)
    again = client_for(region="us-east-1", service="lambda", state_credentials=object())
    assert first is again and first.meta.service_model.service_name == "lambda"
    # what the cache keys on is all boto_client_for reads: region, service, the stub, the port
    params = list(inspect.signature(boto_client.boto_client_for).parameters)
    assert params == ["region", "service", "state_credentials"], f"boto_client_for now takes {params}"
    source = inspect.getsource(boto_client.boto_client_for)
    assert "state_credentials" not in source.split("-> BaseClient:", 1)[1], (
        "boto_client_for now reads the state's credentials: the cache must key on them"
    )
