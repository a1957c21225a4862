"""Results of megabytes, in any script, read back whole through result pages; and no REST answer
over what Lambda can return (6 MB once encoded: API Gateway answers 502 above it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import tests.support.plugins  # noqa: F401  (registers the python functions the jobs call)
from dagcast.client import Api
from tests.functional.conftest import echo, run_job
from tests.support.jobs import task
from tests.support.lambda_proxy import SIX_MB, lambda_bytes, proxy_call

# (pattern, repeat): about 4 MB of UTF-8 each, 9 to 15 MB once answered whole
BIG = {1: ("天気予報", 330_000), 2: ("😀", 900_000), 3: ('say "hi" \\ ', 250_000)}


def big(tid: int) -> dict[str, Any]:
    pattern, repeat = BIG[tid]
    return task(tid, "python", {"function": "tests.big_text", "args": {"pattern": pattern, "repeat": repeat}})


@pytest.fixture(scope="module")
def app_module(services):
    import app

    return app


def answered(app_module, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The route's answer, after checking it is one Lambda could return."""
    answer = proxy_call(app_module.app, path, query)
    size = lambda_bytes(answer)
    assert size <= SIX_MB, f"GET {path} {query}: a {size}-byte response (Lambda's limit: 6 MB)"
    assert answer["statusCode"] == 200, answer["body"][:300]
    body: dict[str, Any] = json.loads(answer["body"])
    return body


def read_pages(app_module, path: str, name: str) -> tuple[str, int]:
    """The whole JSON text of a result through its pages (from the answer without ?offset=), and how
    many pages it took."""
    body = answered(app_module, path)
    assert name not in body  # too big for one answer: the first page instead
    text, pages = body[f"{name}Text"], 1
    while body["nextOffset"] is not None:
        assert body["nextOffset"] == body["offset"] + len(body[f"{name}Text"])
        body = answered(app_module, path, {"offset": str(body["nextOffset"])})
        text, pages = text + body[f"{name}Text"], pages + 1
    assert len(text) == body["totalChars"]
    assert len(text.encode()) == body[f"{name}Bytes"]
    return text, pages


def test_multi_mb_results_in_any_script_come_back_whole_through_pages(services, app_module):
    eid, events = run_job(services, {"tasks": [big(1), big(2), big(3)], "failurePolicy": "continue"}, 240)
    assert events[-1]["type"] == "execution.completed"
    base = f"/api/v1/dag-executions/{eid}"
    for tid, (pattern, repeat) in BIG.items():
        text, pages = read_pages(app_module, f"{base}/tasks/{tid}/result", "result")
        assert json.loads(text) == pattern * repeat
        assert pages >= 2
    final, pages = read_pages(app_module, f"{base}/result", "finalResult")
    assert json.loads(final) == {str(t): p * r for t, (p, r) in BIG.items()}
    assert pages >= 6  # ~37 MB once encoded
    answered(app_module, base)  # the snapshot (cut results) fits too
    # The client reads every page by itself (here against the same handler, in-process).
    api = Api("http://127.0.0.1:8000", httpx.Client(transport=httpx.MockTransport(via_lambda(app_module))))
    assert api.result(eid, 1) == BIG[1][0] * BIG[1][1]
    assert api.result(eid)["2"] == BIG[2][0] * BIG[2][1]


def via_lambda(app_module: Any) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        answer = proxy_call(app_module.app, request.url.path, dict(request.url.params))
        assert lambda_bytes(answer) <= SIX_MB
        return httpx.Response(
            answer["statusCode"], content=answer["body"].encode(), headers=answer["headers"]
        )

    return handle


def test_a_small_result_is_answered_as_before_and_as_one_page_when_asked(services, app_module):
    eid, _ = run_job(services, {"tasks": [echo(1, 'héllo "😀"')]})
    base = f"/api/v1/dag-executions/{eid}"
    assert answered(app_module, f"{base}/result") == {"executionId": eid, "finalResult": 'héllo "😀"'}
    assert answered(app_module, f"{base}/tasks/1/result") == {
        "executionId": eid,
        "taskId": 1,
        "result": 'héllo "😀"',
    }
    page = answered(app_module, f"{base}/result", {"offset": "0"})
    expected = json.dumps('héllo "😀"', ensure_ascii=False)
    assert page == {
        "executionId": eid,
        "finalResultText": expected,
        "offset": 0,
        "nextOffset": None,
        "totalChars": len(expected),
        "finalResultBytes": len(expected.encode()),
    }
    two = answered(app_module, f"{base}/tasks/1/result", {"offset": "3", "limit": "2"})
    assert (two["resultText"], two["nextOffset"]) == (expected[3:5], 5)
    for bad in ({"offset": "-1"}, {"offset": "x"}, {"limit": "0"}, {"offset": str(len(expected) + 1)}):
        assert proxy_call(app_module.app, f"{base}/result", bad)["statusCode"] == 400


def test_an_execution_whose_views_exceed_one_answer_is_answered_cut_to_fit(services, app_module):
    """30 tasks returning emoji: the snapshot shows each result's first 16,384 characters, 14 bytes
    apiece once encoded (a surrogate pair escaped, its backslashes escaped again) — 6.9 MB."""
    tasks = [
        task(t, "python", {"function": "tests.big_text", "args": {"pattern": "😀", "repeat": 20_000}})
        for t in range(1, 31)
    ]
    eid, events = run_job(services, {"tasks": tasks}, 120)
    assert events[-1]["type"] == "execution.completed"
    snapshot = answered(app_module, f"/api/v1/dag-executions/{eid}")
    assert snapshot["textsCutTo"] > 0 and len(snapshot["tasks"]) == 30
    assert all(t["resultTruncated"] and len(t["result"]) <= snapshot["textsCutTo"] for t in snapshot["tasks"])
    listed = answered(app_module, "/api/v1/dag-executions", {"limit": "100"})
    assert eid in [e["executionId"] for e in listed["executions"]]


def test_a_task_error_longer_than_an_item_holds_is_cut_and_the_execution_still_ends(services, app_module):
    """An error of 150,000 CJK characters (450 KB of UTF-8) kept whole would not fit the task item
    or the execution's META (DynamoDB: 400 KB an item): finalize then found no error to report."""
    failing = task(
        1, "python", {"function": "tests.fail_at_length", "args": {"pattern": "故障", "repeat": 75_000}}
    )
    eid, events = run_job(services, {"tasks": [failing]})
    failed = next(e for e in events if e["type"] == "substep.failed")
    ended = events[-1]
    assert ended["type"] == "execution.failed"
    assert failed["error"].endswith("… (145,904 more characters)") and len(failed["error"]) < 4_200
    assert "故障故障" in ended["error"] and len(ended["error"]) < 4_400
    snapshot = answered(app_module, f"/api/v1/dag-executions/{eid}")
    assert snapshot["tasks"][0]["error"] == failed["error"] and "textsCutTo" not in snapshot
