"""Search of the list of executions (issue 22, items 3 and 4): tags and metadata on a job, and
``GET /api/v1/dag-executions?status=&tag=&since=&until=&limit=&cursor=`` on the list index.

A table of its own for what a search finds page by page (the shared stack's list holds every other
test's executions); the shared stack for the route, what a real execution carries and the bad
inputs (each a 400 that stores nothing).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from chalicelib.domain.model import ExecutionStatus
from chalicelib.domain.search import ListQuery, encode_cursor
from chalicelib.persistence import listing
from chalicelib.persistence.executions import DynamoStore
from chalicelib.persistence.keys import DEFAULT_SCOPE, LIST_SHARDS, table_definition
from chalicelib.persistence.listing import Labels
from tests.functional.conftest import echo, wait_for_end

STATUSES = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.RUNNING)


@pytest.fixture(scope="module")
def own_store(stack):
    client = boto3.client("dynamodb")
    client.create_table(**table_definition("dagcast-search"))
    return DynamoStore(client, "dagcast-search")


@pytest.fixture(scope="module")
def sixty(own_store) -> list[dict[str, Any]]:
    """60 executions, created at 1,000 + n ms: every third failed, every fifth still running, the
    rest completed; tags "even"/"odd", "five" on multiples of 5, "nightly" on n < 40."""
    made = []
    for n in range(60):
        eid = f"dag-exec_s{n:04d}"
        tags = (
            ("even" if n % 2 == 0 else "odd",)
            + (("five",) if n % 5 == 0 else ())
            + (("nightly",) if n < 40 else ())
        )
        own_store.create_execution(
            eid, created_at=1_000 + n, original_request=f"r{n}", tasks=[], sink_ids=[],
            labels=Labels(DEFAULT_SCOPE, tags, json.dumps({"n": n})),
        )  # fmt: skip
        status = STATUSES[2] if n % 5 == 0 else STATUSES[1] if n % 3 == 0 else STATUSES[0]
        if status != ExecutionStatus.RUNNING:
            assert own_store.finish_execution(eid, status, 2_000 + n)
        made.append({"id": eid, "n": n, "tags": set(tags), "status": status})
    return made


def _all_pages(store: DynamoStore, query: ListQuery, limit: int) -> tuple[list[str], int]:
    """Every id a search lists, following its positions; and how many pages it took."""
    ids, position, pages = [], None, 0
    while True:
        found, position = store.listing.search(query, limit, position)
        ids += [m["executionId"] for m in found]
        pages += 1
        if position is None:
            return ids, pages
        assert pages < 100


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        (ListQuery(scope=DEFAULT_SCOPE), lambda x: True),
        (ListQuery(status=ExecutionStatus.FAILED, scope=DEFAULT_SCOPE), lambda x: x["status"] == "failed"),
        (ListQuery(tags=("nightly",), scope=DEFAULT_SCOPE), lambda x: "nightly" in x["tags"]),
        (
            ListQuery(tags=("nightly", "even"), scope=DEFAULT_SCOPE),
            lambda x: {"nightly", "even"} <= x["tags"],
        ),
        (
            ListQuery(status=ExecutionStatus.RUNNING, tags=("odd",), scope=DEFAULT_SCOPE),
            lambda x: x["status"] == "running" and "odd" in x["tags"],
        ),
        (ListQuery(since=1_010, until=1_029, scope=DEFAULT_SCOPE), lambda x: 10 <= x["n"] <= 29),
        (
            ListQuery(
                status=ExecutionStatus.COMPLETED,
                tags=("nightly",),
                since=1_005,
                until=1_050,
                scope=DEFAULT_SCOPE,
            ),
            lambda x: x["status"] == "completed" and "nightly" in x["tags"] and 5 <= x["n"] <= 50,
        ),
        (ListQuery(tags=("nobody",), scope=DEFAULT_SCOPE), lambda x: False),
        (ListQuery(scope="another-tenant"), lambda x: False),
    ],
)
@pytest.mark.parametrize("limit", [1, 4, 25, 100])
def test_every_search_lists_exactly_its_matches_newest_first_across_pages(
    own_store, sixty, query, expect, limit
):
    ids, _ = _all_pages(own_store, query, limit)
    assert ids == [x["id"] for x in reversed(sixty) if expect(x)]


def test_a_rare_match_pages_short_instead_of_reading_the_whole_list(own_store, sixty, monkeypatch):
    """A page examines at most MAX_EXAMINED index items: a filter that matches rarely answers a
    short page (even an empty one) with a position to go on from, and following it finds them all."""
    monkeypatch.setattr(listing, "MAX_EXAMINED", 8)
    query = ListQuery(status=ExecutionStatus.RUNNING, tags=("even",), scope=DEFAULT_SCOPE)
    ids: list[str] = []
    pages: list[tuple[int, bool]] = []
    position = None
    while len(pages) < 100:
        found, position = own_store.listing.search(query, 2, position)
        ids += [m["executionId"] for m in found]
        pages.append((len(found), position is not None))
        if position is None:
            break
    assert ids == [x["id"] for x in reversed(sixty) if x["status"] == "running" and "even" in x["tags"]]
    assert (0, True) in pages or (1, True) in pages  # a short page that says where to go on


def test_the_view_and_the_created_event_carry_tags_and_metadata(own_store, sixty):
    found, _ = own_store.listing.search(ListQuery(tags=("five", "nightly"), scope=DEFAULT_SCOPE), 1)
    (latest,) = found
    assert latest["executionId"] == "dag-exec_s0035" and latest["tags"] == ["odd", "five", "nightly"]
    assert json.loads(latest["metadataJson"]) == {"n": 35}
    (created,) = own_store.events_after("dag-exec_s0035", 0)[:1]
    assert created["tags"] == ["odd", "five", "nightly"] and created["metadata"] == {"n": 35}
    assert LIST_SHARDS == 8


# ------------------------------------------------------------------------------------- the route


def _post(client, body: Any, headers: dict[str, str] | None = None):
    return client.http.post(
        "/api/v1/execute-dag",
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(body),
    )


def _get(client, query: str):
    return client.http.get(f"/api/v1/dag-executions?{query}")


def test_tags_and_metadata_travel_from_the_job_to_the_event_the_view_and_the_search(client, services):
    tag = f"t-{uuid.uuid4().hex[:12]}"
    job = {
        "tasks": [echo(1, "x")],
        "tags": [tag, "nightly:eu", tag],
        "metadata": {"team": "data", "n": [1, 2]},
    }
    eid = _post(client, job).json_body["executionId"]
    events = wait_for_end(services, eid)
    assert events[0]["tags"] == [tag, "nightly:eu"] and events[0]["metadata"] == {"team": "data", "n": [1, 2]}
    view = client.http.get(f"/api/v1/dag-executions/{eid}").json_body
    assert view["tags"] == [tag, "nightly:eu"] and view["metadata"] == {"team": "data", "n": [1, 2]}
    page = _get(client, f"tag={tag}&tag=nightly:eu&status=completed").json_body
    assert [e["executionId"] for e in page["executions"]] == [eid] and page["nextCursor"] is None
    assert page["executions"][0]["metadata"] == {"team": "data", "n": [1, 2]}
    assert _get(client, f"tag={tag}&status=failed").json_body["executions"] == []
    created = view["createdAt"]
    assert [
        e["executionId"]
        for e in _get(client, f"tag={tag}&since={created}&until={created}").json_body["executions"]
    ] == [eid]
    assert _get(client, f"tag={tag}&since={created + 1}").json_body["executions"] == []
    assert _get(client, f"tag={tag}&until={created - 1}").json_body["executions"] == []


def test_metadata_is_redacted_where_it_is_written(client, services):
    job = {"tasks": [echo(1, "x")], "metadata": {"password": "hunter2-hunter2", "note": "ok"}}
    eid = _post(client, job).json_body["executionId"]
    events = wait_for_end(services, eid)
    assert events[0]["metadata"] == {"password": "[REDACTED]", "note": "ok"}
    assert "hunter2" not in json.dumps(client.http.get(f"/api/v1/dag-executions/{eid}").json_body)


def test_pages_go_on_by_cursor_and_a_changed_cursor_is_a_400(client, services):
    tag = f"p-{uuid.uuid4().hex[:12]}"
    ids = [
        _post(client, {"tasks": [echo(1, str(n))], "tags": [tag]}).json_body["executionId"] for n in range(5)
    ]
    seen, cursor = [], None
    while True:
        page = _get(client, f"tag={tag}&limit=2" + (f"&cursor={cursor}" if cursor else "")).json_body
        seen += [e["executionId"] for e in page["executions"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    first = _get(client, f"tag={tag}&limit=2").json_body["nextCursor"]
    version, payload, check = first.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for bad in (f"{version}.{flipped}.{check}", first[:-3], "nonsense", f"{version}.{payload}.{check[::-1]}"):
        reply = _get(client, f"tag={tag}&limit=2&cursor={bad}")
        assert reply.status_code == 400 and "cursor" in reply.json_body["error"], bad
    other = _get(client, f"tag={tag}&limit=2&status=running&cursor={first}")
    assert other.status_code == 400 and "another search" in other.json_body["error"]
    # a checksum that fits but a position that is not a listSK: refused as well
    forged = encode_cursor("not-a-position", ListQuery(tags=(tag,), scope=DEFAULT_SCOPE))
    assert _get(client, f"tag={tag}&limit=2&cursor={forged}").status_code == 400


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=exploded", "status must be one of"),
        ("tag=a%23b", "tag must be"),
        ("tag=" + "x" * 65, "tag must be"),
        ("since=yesterday", "since must be"),
        ("until=-1", "until must be"),
        ("since=10&until=5", "is after until"),
        ("limit=0", "limit must be"),
        ("limit=101", "limit must be"),
    ],
)
def test_bad_search_parameters_are_400s_that_say_which(client, query, says):
    reply = _get(client, query)
    assert reply.status_code == 400 and says in reply.json_body["error"], reply.json_body


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"tags": ["a#b"]}, "tags[0]"),
        ({"tags": ["x" * 65]}, "tags[0]"),
        ({"tags": [str(n) for n in range(21)]}, "tags"),
        ({"tags": "nightly"}, "tags"),
        ({"metadata": {"blob": "y" * 4_100}}, "metadata"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
    ],
)
def test_bad_tags_and_metadata_are_400s_and_nothing_is_stored(client, services, extra, path):
    before = [m["executionId"] for m in services.store.list_executions(100)]
    reply = _post(client, {"tasks": [echo(1, "x")], **extra})
    assert reply.status_code == 400, reply.json_body
    assert path in {p["path"] for p in reply.json_body["problems"]}
    assert [m["executionId"] for m in services.store.list_executions(100)] == before
