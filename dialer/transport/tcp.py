"""The asyncio adapter between TCP connections and a sans-IO SIP endpoint.

Each connection gets its own ``StreamFramer`` (RFC 3261 §18.3: Content-Length
cuts the stream into messages). The endpoint learns which peers are on a
stream, so what it sends to them comes out of ``take_stream_messages`` and
is written to that connection. A peer whose stream cannot be framed is
disconnected: after a framing error nothing later on the stream can be
trusted to start at a message boundary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from dialer.sip.errors import RemoteProtocolError
from dialer.sip.framing import StreamFramer
from dialer.sip.message import Request, Response
from dialer.transport.udp import Address

log = logging.getLogger(__name__)
READ_SIZE = 65536


class StreamEndpoint(Protocol):
    def stream_opened(self, peer: Address) -> None: ...

    def stream_closed(self, peer: Address) -> None: ...

    def receive_stream_message(
        self, message: Request | Response, source: Address, now: float
    ) -> None: ...

    def take_stream_messages(self) -> list[tuple[bytes, Address]]: ...

    def handle_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...


class TcpServer:
    def __init__(
        self,
        endpoint: StreamEndpoint,
        *,
        max_message_bytes: int = 65536,
        on_activity: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.max_message_bytes = max_message_bytes
        self.framing_errors = 0
        self._on_activity = on_activity
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def local_address(self) -> Address:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def connect(self, host: str, port: int) -> Address:
        """Open a stream to a peer (a TCP trunk or customer); returns its address key.

        Once this returns, whatever the endpoint sends to that address goes
        on this connection, and what the peer sends back comes in on it.
        """
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
        peer_host, peer_port = writer.get_extra_info("peername")[:2]
        peer = (str(peer_host), int(peer_port))
        self._register(peer, writer)
        task = asyncio.create_task(self._read(peer, reader, writer), name=f"sip-tcp-{peer}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return peer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = (str(host), int(port))
        self._register(peer, writer)
        await self._read(peer, reader, writer)

    def _register(self, peer: Address, writer: asyncio.StreamWriter) -> None:
        self._writers[peer] = writer
        self.endpoint.stream_opened(peer)

    async def _read(
        self, peer: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framer = StreamFramer(max_size=self.max_message_bytes)
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(READ_SIZE):
                try:
                    messages = framer.feed(data)
                except RemoteProtocolError as exc:
                    self.framing_errors += 1
                    log.info("closing TCP from %s:%d: %s", *peer, exc.reason)
                    break
                pings = framer.pings
                for message in messages:
                    try:
                        self.endpoint.receive_stream_message(message, peer, loop.time())
                    except Exception:
                        log.exception("endpoint failed on a message from %s:%d", *peer)
                if pings:
                    framer.pings = 0
                    writer.write(b"\r\n" * pings)  # RFC 5626 §4.4.1 pong
                self.flush()
        except ConnectionError as exc:
            log.info("TCP connection to %s:%d lost: %s", *peer, exc)
        finally:
            self._writers.pop(peer, None)
            self.endpoint.stream_closed(peer)
            writer.close()

    def send_pending(self) -> None:
        """Write what the endpoint queued for stream peers, nothing else."""
        for data, destination in self.endpoint.take_stream_messages():
            writer = self._writers.get(destination)
            if writer is not None and not writer.is_closing():
                writer.write(data)

    def flush(self) -> None:
        self.send_pending()
        loop = asyncio.get_running_loop()
        deadline = self.endpoint.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._fire)
        if self._on_activity is not None:
            self._on_activity()

    def _fire(self) -> None:
        self._timer = None
        self.endpoint.handle_timer(asyncio.get_running_loop().time())
        self.flush()
