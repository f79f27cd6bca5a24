"""The sans-IO request head reader and parser of the metrics endpoint."""

from __future__ import annotations

import pytest

from metrics.http import HeadBuffer, HttpError, parse_head, response

PROMETHEUS_SCRAPE = (
    b"GET /metrics HTTP/1.1\r\n"
    b"Host: 127.0.0.1:9464\r\n"
    b"User-Agent: Prometheus/2.42.0\r\n"
    b"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    b"\r\n"
)


def test_a_head_fed_one_byte_at_a_time_comes_out_whole_once() -> None:
    buffer = HeadBuffer()
    got = [buffer.feed(PROMETHEUS_SCRAPE[i : i + 1]) for i in range(len(PROMETHEUS_SCRAPE))]
    assert got[:-1] == [None] * (len(PROMETHEUS_SCRAPE) - 1)
    assert got[-1] == PROMETHEUS_SCRAPE
    head = parse_head(PROMETHEUS_SCRAPE)
    assert (head.method, head.path, head.version) == ("GET", "/metrics", (1, 1))
    assert head.header("host") == ["127.0.0.1:9464"]
    assert head.header("accept-encoding") == ["gzip"]


def test_empty_lines_before_the_request_line_are_ignored() -> None:
    buffer = HeadBuffer()
    assert buffer.feed(b"\r\n\r\n") is None
    assert buffer.feed(b"GET /healthz HTTP/1.0\r\n\r\n") == b"GET /healthz HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/metrics?name[]=up", "/metrics"),
        (b"http://node-1:9464/metrics", "/metrics"),
        (b"http://node-1:9464", "/"),
        (b"/", "/"),
    ],
)
def test_the_path_is_taken_from_origin_and_absolute_forms(target: bytes, path: str) -> None:
    head = parse_head(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.path == path


def test_an_http_1_0_request_needs_no_host() -> None:
    assert parse_head(b"HEAD /metrics HTTP/1.0\r\n\r\n").method == "HEAD"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GET /metrics\r\n\r\n", 400, "malformed request line b'GET /metrics'"),
        (b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed request line"),
        (b"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed method b'G(T'"),
        (b"GET /metrics HTTP/1\r\nHost: x\r\n\r\n", 400, "malformed HTTP version b'HTTP/1'"),
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, "only HTTP/1.x is served"),
        (b"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, "is not a path"),
        (b"GET /m\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "non-ASCII byte"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400, "needs one Host header, got 0"),
        (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "got 2"),
        (b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header name b'Host '"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400, "has no colon"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", 400, "obsolete line folding"),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
            400,
            "header 'Host' has a forbidden byte",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 413, "not accepted"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length '-1'"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
            400,
            "conflicting Content-Length",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer"),
    ],
)
def test_malformed_heads_are_refused_with_the_status_and_what_is_wrong(
    raw: bytes, status: int, reason: str
) -> None:
    with pytest.raises(HttpError) as caught:
        parse_head(raw)
    assert caught.value.status == status
    assert reason in caught.value.reason


def test_a_zero_content_length_is_no_body() -> None:
    assert parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").path == "/"


def test_too_many_header_fields_are_refused() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 100 + b"\r\n"
    with pytest.raises(HttpError) as caught:
        parse_head(raw)
    assert caught.value.status == 431


def test_a_long_request_line_is_refused_before_it_ends() -> None:
    buffer = HeadBuffer(max_line=64, max_head=256)
    assert buffer.feed(b"GET /" + b"a" * 59) is None  # exactly 64 bytes so far
    with pytest.raises(HttpError) as caught:
        buffer.feed(b"a")
    assert (caught.value.status, caught.value.reason) == (
        414,
        "the request line is longer than 64 bytes",
    )


def test_an_endless_head_is_refused_at_the_cap() -> None:
    buffer = HeadBuffer(max_line=64, max_head=256)
    assert buffer.feed(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    with pytest.raises(HttpError) as caught:
        for _ in range(100):
            buffer.feed(b"X-Filler: 0123456789\r\n")
    assert caught.value.status == 431
    assert caught.value.reason == "the request head is longer than 256 bytes"


def test_a_complete_head_over_the_cap_is_refused_too() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 40 + b"\r\n"
    with pytest.raises(HttpError) as caught:
        HeadBuffer(max_line=64, max_head=200).feed(raw)
    assert caught.value.status == 431


def test_responses_close_the_connection_and_head_has_no_body() -> None:
    full = response(200, b"ok\n", "text/plain; charset=utf-8")
    assert full == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\n"
        b"Connection: close\r\n"
        b"Cache-Control: no-store\r\n"
        b"\r\n"
        b"ok\n"
    )
    assert response(200, b"ok\n", "text/plain", head_only=True).endswith(b"\r\n\r\n")
    assert b"Content-Length: 3\r\n" in response(200, b"ok\n", "text/plain", head_only=True)
