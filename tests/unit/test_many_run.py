"""The many-run stream's pure parts: the once-a-second updates (UpdateCoalescer), the signed
positions, the query tokens, the tag query, and which updates the fan-out leaves out of the
activity log. On moto: tests/functional/test_many_run_stream.py."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain.errors import BadRequest, TokenForAnotherExecution, TokenForAnotherQuery, TokenInvalid
from chalicelib.domain.tagquery import tag_query
from chalicelib.fanout import stale_updates
from chalicelib.persistence.activity import Activity, end_of
from chalicelib.persistence.keys import activity_sk
from chalicelib.stream.auth import TokenSigner
from chalicelib.stream.manyrun import UpdateCoalescer
from chalicelib.stream.positions import PositionCodec

SECRET = "unit-many-run-secret"


def entry(kind: str, seq: int, eid: str = "e1", at: int = 1000) -> Activity:
    return Activity(activity_sk(at + seq, eid, seq), eid, seq, str(kind), "{}", ())


def test_updates_of_one_execution_go_out_at_most_once_a_second_and_the_newest_held_one_follows():
    c = UpdateCoalescer(interval_ms=1000)
    assert c.admit(entry(ev.EXECUTION_UPDATED, 2), now=0) == [entry(ev.EXECUTION_UPDATED, 2)]
    assert c.admit(entry(ev.EXECUTION_UPDATED, 3), now=100) == []
    assert c.admit(entry(ev.EXECUTION_UPDATED, 4), now=200) == []
    assert c.due(now=999) == []
    assert [e.seq for e in c.due(now=1000)] == [4]  # the newest of the second, once it is over
    assert c.admit(entry(ev.EXECUTION_UPDATED, 5, eid="e2"), now=1000) != []  # per execution


def test_an_execution_that_ends_drops_its_held_update_and_no_seq_goes_out_twice():
    c = UpdateCoalescer(interval_ms=1000)
    c.admit(entry(ev.EXECUTION_UPDATED, 2), now=0)
    c.admit(entry(ev.EXECUTION_UPDATED, 3), now=10)
    assert [e.seq for e in c.admit(entry(ev.EXECUTION_COMPLETED, 4), now=20)] == [4]
    assert c.due(now=5000) == []
    assert c.admit(entry(ev.EXECUTION_COMPLETED, 4), now=30) == []  # a late write read twice
    assert c.admit(entry(ev.EXECUTION_UPDATED, 3), now=5000) == []  # older than what was sent


def test_no_id_goes_past_an_update_held_back():
    c = UpdateCoalescer(interval_ms=1000)
    first, held, other = (
        entry(ev.EXECUTION_UPDATED, 2),
        entry(ev.EXECUTION_UPDATED, 3),
        entry(ev.EXECUTION_CREATED, 1, "e2", at=5000),
    )
    c.admit(first, now=0)
    c.admit(held, now=10, before=first.position)
    assert c.safe(other.position) == first.position  # a cut resumes before the held update
    c.due(now=1000)
    assert c.safe(other.position) == other.position


def test_a_position_reads_back_only_unaltered_and_for_its_own_tenant():
    codec = PositionCodec(SECRET)
    position = activity_sk(1_700_000_000_000, "dag-exec_x", 7)
    encoded = codec.encode(position, "acme")
    assert codec.decode(encoded, "acme") == position
    assert codec.decode(codec.encode(end_of(5), "acme"), "acme") == end_of(5)
    payload, mac = encoded.split(".")
    for bad in (
        f"{payload}x.{mac}",
        f"{payload}.{mac[:-1]}",
        "7",
        "",
        PositionCodec("another-secret-16").encode(position, "acme"),
    ):
        with pytest.raises(BadRequest):
            codec.decode(bad, "acme")
    with pytest.raises(BadRequest, match="another tenant"):
        codec.decode(encoded, "globex")


def test_a_query_token_opens_only_its_tags_and_no_execution_and_the_reverse():
    signer = TokenSigner(SECRET)
    query = signer.issue_query(("nightly", "eu"), "acme", now=100).token
    assert signer.verify_query(query, ("eu", "nightly"), now=101) == "acme"
    with pytest.raises(TokenForAnotherQuery):
        signer.verify_query(query, ("nightly",), now=101)
    with pytest.raises(TokenForAnotherExecution):
        signer.verify(query, "dag-exec_x", now=101)
    with pytest.raises(TokenForAnotherQuery):
        signer.verify_query(signer.issue("dag-exec_x", now=100).token, (), now=101)
    with pytest.raises(TokenInvalid, match="expired"):
        signer.verify_query(query, ("eu", "nightly"), now=100 + signer.ttl_seconds)


def test_a_tag_query_is_canonical_and_refuses_bad_tags():
    assert tag_query(["b", "a", "b"]) == ("a", "b")
    for bad in (["has space"], ["x" * 65], [""], [3], [f"t{i}" for i in range(21)]):
        with pytest.raises(BadRequest):
            tag_query(bad)


def _record(eid: str, seq: int, kind: str) -> dict[str, Any]:
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"PK": {"S": f"EXEC#{eid}"}, "SK": {"S": f"EVT#{seq:012d}"}},
            "NewImage": {"type": {"S": kind}},
        },
    }


def test_the_fan_out_leaves_out_updates_a_later_record_of_the_batch_supersedes():
    records = [
        _record("a", 1, ev.EXECUTION_CREATED),
        _record("a", 2, ev.EXECUTION_UPDATED),
        _record("b", 5, ev.EXECUTION_UPDATED),
        _record("a", 3, ev.SUBSTEP_STARTED),
        _record("a", 4, ev.EXECUTION_UPDATED),
        _record("c", 8, ev.EXECUTION_UPDATED),
        _record("c", 9, ev.EXECUTION_FAILED),
    ]
    assert stale_updates(records) == {("a", 2), ("c", 8)}
