"""The redactor: secret names, shapes in text, values, streams of chunks, log records, and the http
kind's header rule."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.kinds import HttpParams
from chalicelib.redact import MIN_VALUE_CHARS, REDACTED, Redactor, redact_log_records


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET http://127.0.0.1:9/v1?api_key=sk-LEAKME123&page=2: ConnectError",
            "GET http://127.0.0.1:9/v1?api_key=[REDACTED]&page=2: ConnectError",
        ),
        ("https://bob:pa55word@host.test/x", "https://[REDACTED]@host.test/x"),
        (
            "s3 url ?X-Amz-Signature=abc123&X-Amz-Date=20250101",
            "s3 url ?X-Amz-Signature=[REDACTED]&X-Amz-Date=20250101",
        ),
        ("sig=abcdef&sessionToken=zz&auth=1", "sig=[REDACTED]&sessionToken=[REDACTED]&auth=[REDACTED]"),
        ("answered 401: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "answered 401: Bearer [REDACTED]"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
        ("key AKIAIOSFODNN7EXAMPLE and ASIAIOSFODNN7EXAMPLE", "key [REDACTED] and [REDACTED]"),
        ('body {"password": "hunter22", "user": "ada"}', 'body {"password": "[REDACTED]", "user": "ada"}'),
        ("{'X-Api-Key': 'abc'}", "{'X-Api-Key': '[REDACTED]'}"),
        # a field quoted inside a harmless field's quoted value (a body in an error's dict)
        ("""{'body': '{"password":"hunter22"}'}""", """{'body': '{"password":"[REDACTED]"}'}"""),
        ("X-Api-Key: abc123\nX-Test: shown", "X-Api-Key: [REDACTED]\nX-Test: shown"),
        # names that only look like it keep their values
        ("max_tokens=5&author=ada&design=x&monkey=1", "max_tokens=5&author=ada&design=x&monkey=1"),
    ],
)
def test_secret_shapes_are_redacted_from_text(text, expected):
    assert Redactor().text(text) == expected


def test_secret_names_by_word_and_by_suffix():
    r = Redactor(extra_keys=["internalRef"])
    for name in ("api_key", "X-Amz-Signature", "githubToken", "db_password", "sessionId", "AWSAccessKeyId"):
        assert r.is_sensitive(name), name
    for name in ("total_tokens", "keyword", "author", "signal", "description", "monkey"):
        assert not r.is_sensitive(name), name
    assert r.is_sensitive("my_internal_ref")  # DAGCAST_REDACT_KEYS: by suffix


def test_values_are_redacted_anywhere_but_not_when_shorter_than_8_characters():
    r = Redactor(values=["s3cr3t-value-1", "short"])
    assert r.text("x=s3cr3t-value-1/and/s3cr3t-value-1tail") == f"x={REDACTED}/and/{REDACTED}tail"
    assert r.text("a short word") == "a short word"
    assert MIN_VALUE_CHARS == 8
    assert r.apply({"s3cr3t-value-1": ["in s3cr3t-value-1"]}) == {REDACTED: [f"in {REDACTED}"]}


def test_a_url_encoded_value_is_redacted_too():
    r = Redactor(values=["p@ss word/1"])
    assert r.text("GET /x?q=p%40ss%20word%2F1 and p%40ss+word%2F1") == f"GET /x?q={REDACTED} and {REDACTED}"


@given(st.text(alphabet="ab =&:/?@\"'\n", max_size=60))
def test_redacting_twice_changes_nothing(text):
    r = Redactor(values=["abab=abab"])
    once = r.text("Bearer abcdefghij token=" + text)
    assert r.text(once) == once


@given(
    before=st.text(alphabet="xyz \n:=", max_size=40),
    after=st.text(alphabet="xyz \n:=", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_a_stream_of_chunks_is_redacted_as_the_whole_text_would_be(before, after, cuts):
    """A secret split across chunks anywhere — a value, a Bearer token, a name=value — is found."""
    r = Redactor(values=["VALUE-0123456789"])
    text = f"{before} VALUE-0123456789 Bearer abcdefghijk api_key=qwertyuiop {after}"
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    stream = r.stream()
    out = "".join(stream.feed(c) for c in chunks) + stream.close()
    assert out == r.text(text)
    assert "VALUE-0123456789" not in out and "abcdefghijk" not in out and "qwertyuiop" not in out


def test_log_records_are_redacted_message_and_traceback(caplog):
    factory = logging.getLogRecordFactory()
    try:
        redact_log_records(Redactor())
        log = logging.getLogger("dagcast.test-redact")
        with caplog.at_level(logging.INFO, logger="dagcast.test-redact"):
            log.info("HTTP Request: GET %s", "https://h.test/?token=tok-abcdef")
            try:
                raise ValueError("https://u:pw-123456@h.test")
            except ValueError:
                log.exception("failed")
        assert "tok-abcdef" not in caplog.text and "pw-123456" not in caplog.text
        assert "token=[REDACTED]" in caplog.text
    finally:
        logging.setLogRecordFactory(factory)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer abcdefgh12345"},
        {"X-Api-Key": "abc"},
        {"Cookie": "a=b"},
        {"Proxy-Authorization": "x"},
        {"X-Anything": "Basic dXNlcjpwYXNzd29yZA=="},
    ],
)
def test_an_http_header_carrying_a_literal_credential_is_refused(headers):
    with pytest.raises(ValidationError, match="give it as a reference"):
        HttpParams.model_validate({"url": "https://x.test", "headers": headers})


def test_an_http_header_may_be_a_reference_or_a_plain_value():
    p = HttpParams.model_validate(
        {"url": "https://x.test", "headers": {"Authorization": {"env": "X_API_KEY"}, "Accept": "text/plain"}}
    )
    assert p.headers["Accept"] == "text/plain"
