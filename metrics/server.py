"""The ``/metrics`` and ``/healthz`` endpoint, served from the service's own event loop.

prometheus_client's bundled servers run in a thread; ours runs on the loop
that owns the state being exported, so a scrape reads the collectors between
two events and never sees half an update. Parsing and response building are
sans-IO (``metrics.http``); this module only moves bytes, with a deadline on
every read and write. One request per connection: the connection closes
after the answer.

    async with MetricsServer(registry, "127.0.0.1", 9464) as server:
        ...  # server.port is the bound port (useful with port 0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from metrics.http import HeadBuffer, HttpError, RequestHead, parse_head, response

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
PATHS = ("/metrics", "/healthz")
ALLOWED = ("GET", "HEAD")
# After answering, how long and how much of a client's leftover input is read and dropped.
LINGER_SECONDS = 2.0
LINGER_BYTES = 65536


class MetricsServer:
    """An async context manager listening on ``host:port`` until the block ends.

    ``healthy``, if given, decides ``/healthz``: 200 when it returns True,
    503 otherwise. ``timeout`` bounds the wait for a request head and for
    sending the answer, so an idle or slow client cannot hold a connection.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        healthy: Callable[[], bool] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._healthy = healthy
        self._timeout = timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port actually bound (the one asked for, or the OS's pick for 0)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> MetricsServer:
        self._server = await asyncio.start_server(self._connection, self._host, self._port)
        log.info("metrics: serving /metrics on %s:%d", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=self._timeout)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            answer = await self._answer(reader)
            if answer is not None:
                writer.write(answer)
                await asyncio.wait_for(writer.drain(), self._timeout)
                await self._linger(reader, writer)
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._timeout)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then discard what the client still sends until it closes too.

        Closing with unread bytes in the receive buffer (the rest of an
        oversized head) makes the kernel send a reset, which can destroy the
        answer before the client reads it. So the answer is followed by a
        short, bounded drain (RFC 9112 §9.6).
        """
        if not writer.can_write_eof():
            return
        writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self._timeout, LINGER_SECONDS)
        discarded = 0
        while discarded < LINGER_BYTES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                chunk = await asyncio.wait_for(reader.read(4096), remaining)
            except TimeoutError:
                return
            if not chunk:
                return
            discarded += len(chunk)

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        """The response bytes for the request on this connection; None if it never came."""
        buffer = HeadBuffer()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return _error(HttpError(408, "no complete request head in time"))
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), remaining)
                except TimeoutError:
                    return _error(HttpError(408, "no complete request head in time"))
                if not chunk:
                    return None
                raw = buffer.feed(chunk)
                if raw is not None:
                    break
            return self._route(parse_head(raw))
        except HttpError as exc:
            return _error(exc)

    def _route(self, head: RequestHead) -> bytes:
        head_only = head.method == "HEAD"
        if head.path not in PATHS:
            missing = HttpError(404, f"nothing at {head.path[:80]!r}; try /metrics or /healthz")
            return _error(missing, head_only=head_only)
        if head.method not in ALLOWED:
            return response(
                405,
                f"{head.method} is not allowed; use GET or HEAD\n".encode(),
                TEXT,
                head_only=head_only,
                extra=(("Allow", ", ".join(ALLOWED)),),
            )
        if head.path == "/healthz":
            ok = self._healthy() if self._healthy is not None else True
            return response(
                200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", TEXT, head_only=head_only
            )
        try:
            body = generate_latest(self._registry)
        except Exception:
            log.exception("metrics: a collector failed while rendering /metrics")
            return response(
                500, b"a collector failed; see the service log\n", TEXT, head_only=head_only
            )
        return response(200, body, CONTENT_TYPE_PLAIN_0_0_4, head_only=head_only)


def _error(exc: HttpError, *, head_only: bool = False) -> bytes:
    # RFC 9110 §9.3.2: the answer to HEAD has the headers of GET's, never its content.
    return response(exc.status, f"{exc}\n".encode(), TEXT, head_only=head_only)
