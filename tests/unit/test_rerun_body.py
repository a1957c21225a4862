"""What a rerun's body may say (docs/api.md § POST …/rerun)."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import BadRequest
from chalicelib.orchestration.rerun import parse_rerun


@pytest.mark.parametrize("body", [None, {}, {"from": "failed"}])
def test_no_body_an_empty_one_or_from_failed_is_a_rerun_from_failure(body):
    assert parse_rerun(body) == frozenset()


def test_tasks_are_forced_by_id():
    assert parse_rerun({"tasks": [2, 5]}) == frozenset({2, 5})


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"from": "start"}, '"from" can only be'),
        ({"tasks": []}, '"tasks" must be a list'),
        ({"tasks": ["2"]}, '"tasks" must be a list'),
        ({"tasks": [1], "from": "failed"}, "a rerun body is"),
        ([1, 2], "a rerun body is"),
    ],
)
def test_anything_else_is_refused_saying_what_a_body_may_be(body, says):
    with pytest.raises(BadRequest, match=says):
        parse_rerun(body)
