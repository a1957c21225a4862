"""Every REST answer fits one Lambda response once encoded (http/answer.py): the size model against
Chalice's own serialisation, the page cut for every kind of text, and the views cut to fit."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from chalice.app import Response

from chalicelib.http.answer import (
    ANSWER_BYTES,
    PAGE_TEXT_BYTES,
    encoded_size,
    fit,
    fitting_end,
    proxy_answer,
    text_cost,
)
from chalicelib.orchestration.views import TEXT_CAPS, cut_view
from tests.support.lambda_proxy import SIX_MB

# one of each: what a result's JSON text holds, and the bytes each character becomes in a response
ALPHABETS = {
    "ascii": ("plain text, no escapes ", 1),
    "quotes": ('"', 4),  # \" by Chalice, \\\" in the envelope
    "backslashes": ("\\", 4),
    "cjk": ("天気予報", 7),  # \uXXXX, then \\uXXXX
    "astral": ("😀𝄞", 14),  # a surrogate pair of \uXXXX, each escaped again
}


def lambda_size(status: int, body: Any, headers: Mapping[str, str]) -> int:
    """What Lambda counts: Chalice's own proxy dict for the Response, JSON-encoded."""
    return len(json.dumps(Response(body=body, status_code=status, headers=dict(headers)).to_dict()).encode())


@pytest.mark.parametrize("name", list(ALPHABETS))
def test_the_size_model_is_chalices_serialisation_measured_as_lambda_does(name):
    text, _ = ALPHABETS[name]
    headers = {"Content-Type": "application/json"}
    body = {"executionId": "dag-exec_1", "resultText": text * 1000, "result": {"k": [text, 1, 2.5, None]}}
    assert (
        proxy_answer(200, body, headers)
        == Response(body=body, status_code=200, headers=dict(headers)).to_dict()
    )
    assert encoded_size(200, body, headers) == lambda_size(200, body, headers)


@pytest.mark.parametrize("name", list(ALPHABETS))
def test_text_cost_counts_every_escape_of_both_encodings(name):
    text, per_char = ALPHABETS[name]
    piece = text * 997
    assert text_cost(piece) == sum(per_char if name != "ascii" else 1 for _ in piece)
    with_it = lambda_size(200, {"t": piece}, {})
    without = lambda_size(200, {"t": ""}, {})
    assert with_it - without == text_cost(piece)


def test_a_4mb_result_answered_whole_would_be_over_lambdas_limit():
    """What went wrong: 4,000,000 UTF-8 bytes of CJK, answered whole, is 9.3 MB as a response."""
    cjk = "天" * (4_000_000 // 3)
    assert lambda_size(200, {"executionId": "x", "taskId": 1, "result": cjk}, {}) > 9_000_000


@pytest.mark.parametrize("name", list(ALPHABETS))
def test_fitting_end_takes_the_longest_slice_within_the_budget(name):
    text = ALPHABETS[name][0] * 50_000 + "tail"
    for start, budget in ((0, 100_000), (7, 33_333), (3, 10**9), (5, 13)):
        end = fitting_end(text, start, len(text), budget)
        assert text_cost(text[start:end]) <= budget
        assert end == len(text) or text_cost(text[start : end + 1]) > budget


def mixed_text(chars: int) -> str:
    """Every alphabet at once, in the proportion that packs the most bytes into few characters."""
    pattern = "".join(t for t, _ in ALPHABETS.values())
    return (pattern * (chars // len(pattern) + 1))[:chars]


@pytest.mark.parametrize("name", [*ALPHABETS, "mixed"])
def test_a_page_of_any_text_fits_one_response(name):
    piece = (
        mixed_text(3_000_000) if name == "mixed" else ALPHABETS[name][0] * (6_000_000 // ALPHABETS[name][1])
    )
    end = fitting_end(piece, 0, len(piece), PAGE_TEXT_BYTES)
    body = {
        "executionId": "dag-exec_" + "x" * 118,
        "taskId": 2**53,
        "resultText": piece[:end],
        "offset": 4_000_000,
        "nextOffset": 4_000_000 + end,
        "totalChars": 4_000_000,
        "resultBytes": 16_000_000,
    }
    cors = {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "https://a.example",
        "Vary": "Origin",
    }
    assert lambda_size(200, body, cors) <= SIX_MB
    assert end > PAGE_TEXT_BYTES // 15  # and a page is not needlessly small


def huge_snapshot(tasks: int, text: str) -> dict[str, Any]:
    """A snapshot whose every user text is as long as a job or a task can make it."""

    def chars(n: int) -> str:
        return (text * (n // len(text) + 1))[:n]

    return {
        "executionId": "dag-exec_big",
        "status": "completed",
        "originalRequest": chars(100_000),
        "error": chars(5_000),
        "finalResult": chars(32_000),
        "tasks": [
            {
                "taskId": t,
                "description": chars(2_000),
                "status": "completed",
                "dependencies": list(range(t)),
                "error": chars(2_000),
                **(
                    {"result": chars(16_000)}
                    if t % 2
                    else {
                        "result": chars(16_384),
                        "resultTruncated": True,
                        "resultBytes": 9,
                        "resultUrl": "/u",
                    }
                ),
            }
            for t in range(tasks)
        ],
    }


@pytest.mark.parametrize("name", list(ALPHABETS))
def test_a_snapshot_too_big_for_one_answer_is_cut_until_it_fits(name):
    snapshot = huge_snapshot(400, ALPHABETS[name][0])
    assert encoded_size(200, snapshot) > ANSWER_BYTES  # would have been a 502
    fitted = fit(
        lambda cap: snapshot if cap is None else cut_view(snapshot, cap),
        lambda b: encoded_size(200, b),
        TEXT_CAPS,
    )
    assert lambda_size(200, fitted, {"Content-Type": "application/json"}) <= ANSWER_BYTES
    assert fitted["textsCutTo"] in TEXT_CAPS
    whole = next(t for t in fitted["tasks"] if t["taskId"] == 1)
    assert whole["resultTruncated"] is True and whole["resultUrl"].endswith("/tasks/1/result")
    assert whole["resultBytes"] == len(
        json.dumps(snapshot["tasks"][1]["result"], ensure_ascii=False).encode()
    )
    assert fitted["finalResultTruncated"] is True and fitted["finalResultUrl"].endswith(
        "/dag-executions/dag-exec_big/result"
    )
    assert [t["taskId"] for t in fitted["tasks"]] == list(range(400))  # every task is still there


def test_a_snapshot_that_fits_is_answered_untouched():
    snapshot = huge_snapshot(3, "abc")
    fitted = fit(
        lambda cap: snapshot if cap is None else cut_view(snapshot, cap),
        lambda b: encoded_size(200, b),
        TEXT_CAPS,
    )
    assert fitted is snapshot and "textsCutTo" not in fitted
