"""The metrics endpoint over a real loopback socket: scrapes, health, and bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from dialer.events import CallAssigned, Direction
from metrics.registry import FloorMetrics
from metrics.server import MetricsServer

HOST = "127.0.0.1"


async def exchange(port: int, *chunks: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``chunks`` (draining between them), read to EOF, split status, headers and body."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def fed_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = FloorMetrics(registry, now_ms=lambda: 0, tz=ZoneInfo("UTC"))
    metrics.observe(
        CallAssigned(
            call_id="k1",
            at_ms=0,
            mono=0.0,
            campaign="c1",
            lead_id=None,
            agent=None,
            mode="predictive",
            direction=Direction.OUTBOUND,
            number="+8613800000001",
        )
    )
    return registry


async def test_a_scrape_returns_the_registry_in_the_text_format() -> None:
    async with MetricsServer(fed_registry(), HOST, 0) as server:
        status, headers, body = await exchange(server.port, get("/metrics"))
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("dialer_dial_attempts_total", (("campaign", "c1"),))] == 1
    assert samples[("dialer_calls_in_progress", (("campaign", "c1"),))] == 1
    assert b"+8613800000001" not in body and b"k1" not in body  # no numbers, no call ids


async def test_head_gives_the_headers_of_get_without_the_body() -> None:
    async with MetricsServer(fed_registry(), HOST, 0) as server:
        _, got, body = await exchange(server.port, get("/metrics"))
        status, headers, empty = await exchange(server.port, get("/metrics", "HEAD"))
    assert status == 200
    assert empty == b""
    assert headers["content-length"] == got["content-length"] == str(len(body))


async def test_head_of_a_missing_path_is_a_404_without_content() -> None:
    async with MetricsServer(CollectorRegistry(), HOST, 0) as server:
        status, headers, body = await exchange(server.port, get("/nope", "HEAD"))
    assert (status, body) == (404, b"")
    assert int(headers["content-length"]) > 0  # what GET would have carried


async def test_a_request_in_pieces_is_answered() -> None:
    async with MetricsServer(CollectorRegistry(), HOST, 0) as server:
        status, _, body = await exchange(
            server.port, b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"
        )
    assert (status, body) == (200, b"ok\n")


async def test_health_follows_the_callable() -> None:
    healthy = {"now": True}
    async with MetricsServer(
        CollectorRegistry(), HOST, 0, healthy=lambda: healthy["now"]
    ) as server:
        assert (await exchange(server.port, get("/healthz")))[0] == 200
        healthy["now"] = False
        status, _, body = await exchange(server.port, get("/healthz"))
    assert (status, body) == (503, b"unhealthy\n")


@pytest.mark.parametrize(
    ("request_bytes", "status", "says"),
    [
        (get("/"), 404, b"nothing at '/'"),
        (get("/metrics/extra"), 404, b"nothing at"),
        (get("/metrics", "POST"), 405, b"POST is not allowed"),
        (get("/healthz", "DELETE"), 405, b"DELETE is not allowed"),
        (b"hello\r\n\r\n", 400, b"malformed request line"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400, b"needs one Host header"),
        (b"GET /metrics HTTP/3.0\r\nHost: x\r\n\r\n", 505, b"only HTTP/1.x"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, b"request line is longer"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-Pad: " + b"p" * 3000 + b"\r\n") * 7,
            431,
            b"head is longer",
        ),
    ],
)
async def test_bad_requests_get_their_status_and_reason(
    request_bytes: bytes, status: int, says: bytes
) -> None:
    async with MetricsServer(fed_registry(), HOST, 0) as server:
        got, headers, body = await exchange(server.port, request_bytes)
        # The server survives it and serves the next client.
        after = await exchange(server.port, get("/healthz"))
    assert got == status
    assert says in body
    assert headers["connection"] == "close"
    if status == 405:
        assert headers["allow"] == "GET, HEAD"
    assert after[0] == 200


async def test_a_silent_client_is_answered_408_and_dropped() -> None:
    async with MetricsServer(CollectorRegistry(), HOST, 0, timeout=0.2) as server:
        status, _, body = await exchange(server.port, b"GET /metr")
    assert status == 408
    assert b"no complete request head in time" in body


async def test_a_client_that_leaves_early_does_not_disturb_the_next() -> None:
    async with MetricsServer(CollectorRegistry(), HOST, 0) as server:
        _, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"GET /met")
        writer.close()
        await writer.wait_closed()
        assert (await exchange(server.port, get("/healthz")))[0] == 200


class Broken:
    def collect(self) -> Iterable[Metric]:
        raise RuntimeError("collector bug")


async def test_a_failing_collector_is_a_500_not_a_dead_server() -> None:
    registry = CollectorRegistry()
    registry.register(Broken())
    async with MetricsServer(registry, HOST, 0) as server:
        status, _, body = await exchange(server.port, get("/metrics"))
        assert (await exchange(server.port, get("/healthz")))[0] == 200
    assert status == 500
    assert body == b"a collector failed; see the service log\n"


async def test_leaving_the_block_closes_the_port_even_with_a_client_waiting() -> None:
    server = MetricsServer(CollectorRegistry(), HOST, 0, timeout=30)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    async with server:
        port = server.port
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # and then nothing
        await writer.drain()
    # The idle connection was closed by the server, not left for its 30 s timeout.
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, port)
