"""Patches moto's Step Functions interpreter (``moto.stepfunctions.parser.asl``): it parses each
JSONPath once and makes one Lambda client per region, not one per use.

The interpreter parsed every JSONPath it evaluated (``$.executionId``, ``$$.Task.Token``, a
ResultPath…) afresh: ``jsonpath_ng``'s ``parse`` builds a PLY parser, tables and all, each time —
a tenth of the stack's time in bench/dag_makespan. And every Lambda task state built a new boto3
client (``boto_client_for``), a twentieth more. Parsed paths are immutable (evaluating one does not
change it) and boto3 clients are thread-safe, so the patch caches both: paths by their text, the
Lambda client by what ``boto_client_for`` reads (region, whether moto intercepts this process's
calls, moto's port; it ignores the state's credentials).
"""

from __future__ import annotations

import functools
from typing import Any

from jsonpath_ng import parser as jsonpath_parser
from jsonpath_ng.ext import parser as jsonpath_ext_parser
from moto.core.models import botocore_stubber
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils import boto_client, json_path

_MARK = "_dagcast_cached"


@functools.lru_cache(maxsize=1024)
def _parse_ext(path: str) -> Any:
    return jsonpath_ext_parser.parse(path)


@functools.lru_cache(maxsize=1024)
def _parse(path: str) -> Any:
    return jsonpath_parser.parse(path)


@functools.lru_cache(maxsize=64)
def _client(region: str, service: str, intercepted: bool, port: int) -> Any:
    return boto_client.boto_client_for(region=region, service=service)


def _boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    return _client(region, service, bool(botocore_stubber.enabled), int(moto_server_port()))


def cache_interpreter_lookups() -> None:
    if getattr(json_path, _MARK, False):
        return
    setattr(json_path, "parse", _parse_ext)  # noqa: B010
    setattr(result_path, "parse", _parse)  # noqa: B010
    setattr(lambda_eval_utils, "boto_client_for", _boto_client_for)  # noqa: B010
    setattr(json_path, _MARK, True)
