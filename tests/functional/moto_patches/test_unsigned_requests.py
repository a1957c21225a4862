"""Pins the patch of dagcast/local/moto/patches/unsigned_requests.py (botocore's
``BUILTIN_HANDLERS``, the ``choose-signer`` event)."""

from __future__ import annotations

import json
from typing import Any

import boto3


def test_in_process_requests_are_serialised_as_for_aws_but_not_signed(stack, monkeypatch):
    """sign_nothing_in_process: every request this process hands moto in-process was signed
    (SigV4), which moto never checks — ~9% of the stack's CPU per task. Now it goes without an
    Authorization header, its body serialised as before and answered from the same (default)
    account; a client pointed at the server, or any client with the in-process dispatch off, signs
    as before."""
    from botocore.handlers import BUILTIN_HANDLERS
    from moto.core.models import botocore_stubber

    from chalicelib.persistence.table import to_item
    from dagcast.local.moto.patches import unsigned_requests

    signers = [h[1] for h in BUILTIN_HANDLERS if h[0].startswith("choose-signer")]
    assert signers[0] is unsigned_requests._unsigned_in_process, (
        "sign_nothing_in_process was not applied first"
    )

    def sent_by(client: Any) -> list[Any]:
        sent: list[Any] = []
        client.meta.events.register("before-send", lambda request, **_: sent.append(request))
        return sent

    local = boto3.client("dynamodb")
    sent = sent_by(local)
    item = to_item({"PK": "unsigned", "SK": "ROW", "n": 7})
    local.put_item(TableName=stack.table_name, Item=item)
    assert "Authorization" not in sent[0].headers
    assert json.loads(sent[0].body) == {"TableName": stack.table_name, "Item": item}
    # the same account's table: a signed request over HTTP (another process's way) reads it back
    remote = boto3.client("dynamodb", endpoint_url=stack.endpoint)
    signed = sent_by(remote)
    got = remote.get_item(TableName=stack.table_name, Key=to_item({"PK": "unsigned", "SK": "ROW"}))
    assert got["Item"]["n"] == {"N": "7"}
    assert "Authorization" in signed[0].headers  # a client pointed at the server still signs

    monkeypatch.setattr(botocore_stubber, "enabled", False)  # the dispatch off: botocore signs again
    context: dict[str, Any] = {}
    unsigned_requests._mark_in_process({"url": "https://dynamodb.us-east-1.amazonaws.com/"}, context)
    assert unsigned_requests._unsigned_in_process(context) is None
