"""The client a stream counts against: behind the function URL, the Web Adapter's request context
(``x-amzn-request-context``, which the adapter overwrites) wins over ``X-Forwarded-For``, which
any client can write; a context that does not parse falls back to today's rule."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.errors import TooManyStreams
from chalicelib.stream.client_ip import REQUEST_CONTEXT_HEADER, client_ip, context_source_ip
from chalicelib.stream.endpoint import StreamRequest
from chalicelib.stream.limits import Limits
from tests.support.asgi import events_scope


def function_url_context(source_ip: str) -> str:
    """What the adapter writes for a function URL invocation (lambda_http's ApiGatewayV2 request
    context, serialised camelCase: aws-lambda-rust-runtime lambda-events apigw/mod.rs)."""
    return json.dumps(
        {
            "routeKey": "$default",
            "accountId": "anonymous",
            "stage": "$default",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.eu-west-1.on.aws",
            "time": "05/Dec/2026:09:00:00 +0000",
            "timeEpoch": 1796461200000,
            "http": {
                "method": "GET",
                "path": "/api/v1/dag-executions/e/events",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "Mozilla/5.0",
            },
        }
    )


def ip_of(*headers: tuple[str, str], trust_proxy: bool = True) -> str:
    return StreamRequest.parse(events_scope(*headers), trust_proxy=trust_proxy).client_ip


def test_behind_the_adapter_a_spoofed_forwarded_for_does_not_move_a_client_to_another_bucket() -> None:
    context = (REQUEST_CONTEXT_HEADER, function_url_context("203.0.113.7"))
    seen = {ip_of(context, ("x-forwarded-for", spoof)) for spoof in ("198.51.100.1", "198.51.100.2, 1.1.1.1")}
    assert seen == {"203.0.113.7"}
    limits = Limits(per_ip=1, per_execution=100)  # the cap, counted by what parse found
    limits.acquire(ip_of(context, ("x-forwarded-for", "198.51.100.1")), "e1")
    with pytest.raises(TooManyStreams):
        limits.acquire(ip_of(context, ("x-forwarded-for", "198.51.100.2")), "e2")


def test_without_the_context_header_the_first_forwarded_for_address_counts_as_before() -> None:
    assert ip_of(("x-forwarded-for", "198.51.100.1, 10.0.0.1")) == "198.51.100.1"
    assert ip_of() == "127.0.0.1"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "not json",
        "{",
        "null",
        "[1, 2]",
        '"203.0.113.7"',
        json.dumps({"http": "203.0.113.7"}),
        json.dumps({"http": {"method": "GET"}}),  # no sourceIp
        json.dumps({"http": {"sourceIp": 203}}),
        json.dumps({"http": {"sourceIp": "not-an-ip"}}),
        json.dumps({"identity": {"sourceIp": "203.0.113.7"}}),  # a REST API's shape: not what we run
        json.dumps({"http": {"sourceIp": "203.0.113.7"}, "pad": "x" * 20_000}),  # too long
    ],
)
def test_a_context_header_that_does_not_parse_falls_back_to_forwarded_for(header: str) -> None:
    assert context_source_ip(header) is None
    assert ip_of((REQUEST_CONTEXT_HEADER, header), ("x-forwarded-for", "198.51.100.9")) == "198.51.100.9"
    assert ip_of((REQUEST_CONTEXT_HEADER, header)) == "127.0.0.1"


def test_an_ipv6_source_is_normalised_so_one_client_has_one_spelling() -> None:
    assert context_source_ip(function_url_context("2001:DB8:0:0::1")) == "2001:db8::1"
    assert context_source_ip(function_url_context(" 203.0.113.7 ")) == "203.0.113.7"


def test_without_trust_proxy_nothing_the_client_sends_is_read() -> None:
    """A server clients reach directly (the local stack) counts by the socket's peer: a client could
    write the context header as easily as X-Forwarded-For."""
    forged = (REQUEST_CONTEXT_HEADER, function_url_context("203.0.113.7"))
    assert ip_of(forged, ("x-forwarded-for", "198.51.100.1"), trust_proxy=False) == "127.0.0.1"
    assert client_ip({}, None, trust_proxy=False) == "unknown"
