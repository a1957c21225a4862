"""Pins the patch of dagcast/local/moto/patches/action_lookup.py
(``moto.core.responses.method_names_from_class``)."""

from __future__ import annotations

import inspect

import boto3


def test_a_response_class_is_listed_once_and_requests_still_find_their_method(stack, monkeypatch):
    """list_actions_once: moto listed the response class's members (inspect.getmembers) on every
    request. Now each class is listed once; a request still reaches its method."""
    from moto.core import responses as core_responses
    from moto.core import utils as core_utils
    from moto.dynamodb.responses import DynamoHandler

    from dagcast.local.moto.patches import action_lookup

    assert core_responses.__dict__["method_names_from_class"] is action_lookup._listed_once, (
        "list_actions_once was not applied"
    )
    assert "method_names_from_class(self.__class__)" in inspect.getsource(
        core_responses.BaseResponse.call_action
    ), "BaseResponse.call_action no longer lists the class's methods this way"
    assert {"get_item", "put_item", "query"} <= action_lookup._listed_once(DynamoHandler)
    listed: list[object] = []
    real = core_utils.method_names_from_class

    def spy(clazz: object) -> list[str]:
        listed.append(clazz)
        return real(clazz)

    monkeypatch.setattr(core_utils, "method_names_from_class", spy)
    db = boto3.client("dynamodb")
    for _ in range(3):
        db.get_item(TableName=stack.table_name, Key={"PK": {"S": "nothing"}, "SK": {"S": "here"}})
    assert listed == []  # DynamoHandler was listed before: no request lists it again
