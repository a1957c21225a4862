"""Pins the switch of dagcast/local/moto/patches/in_process_dispatch.py
(``moto.core.models.botocore_stubber``)."""

from __future__ import annotations

import boto3


def test_this_process_reaches_moto_in_process_and_other_processes_over_http(stack):
    """dispatch_in_process: no socket for this process's calls, the same backends
    for everyone else (the front of `dagcast up`, a CLI) through the server."""
    import os

    from moto.core.models import botocore_stubber

    from chalicelib.persistence.table import to_item

    assert botocore_stubber.enabled, "dispatch_in_process was not applied"
    assert "AWS_ENDPOINT_URL" not in os.environ, "this process's boto3 must not be pointed at the server"
    sent: list[str] = []
    local = boto3.client("dynamodb")
    local.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    local.put_item(TableName="dagcast-functional", Item=to_item({"PK": "dispatch", "SK": "ROW", "n": 7}))
    assert sent and all(u.startswith("https://dynamodb.us-east-1.amazonaws.com") for u in sent), sent

    remote = boto3.client("dynamodb", endpoint_url=stack.endpoint)
    got = remote.get_item(TableName="dagcast-functional", Key=to_item({"PK": "dispatch", "SK": "ROW"}))
    assert got["Item"]["n"] == {"N": "7"}
