"""The asyncio adapter between a UDP socket and a sans-IO endpoint.

It only moves bytes and re-arms one timer (aioquic's asyncio/protocol.py is
the model): the endpoint decides everything, given the datagram and ``now``
from the loop's monotonic clock. A failure inside the endpoint while handling
one datagram is logged and counted, never allowed to end the receive loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

Address = tuple[str, int]

log = logging.getLogger(__name__)


class DatagramEndpoint(Protocol):
    """What a sans-IO protocol object offers to its datagram adapter."""

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def take_datagrams(self) -> list[tuple[bytes, Address]]: ...


class UdpAdapter(asyncio.DatagramProtocol):
    def __init__(self, endpoint: DatagramEndpoint, on_activity: Callable[[], None] | None = None):
        self.endpoint = endpoint
        self.errors = 0
        self._on_activity = on_activity
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()

    @property
    def local_address(self) -> Address:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass
        # asyncio.DatagramTransport, so an isinstance check would reject it.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        try:
            self.endpoint.receive_datagram(data, source, self._loop.time())
        except Exception:
            # A bug on one message must not take the socket down for every call.
            self.errors += 1
            log.exception("endpoint failed on a datagram from %s:%d", *source)
        self.flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction timers handle it.
        log.debug("udp error: %s", exc)

    def _fire(self) -> None:
        self._timer = None
        try:
            self.endpoint.handle_timer(self._loop.time())
        except Exception:
            self.errors += 1
            log.exception("endpoint failed in its timer")
        self.flush()

    def flush(self) -> None:
        """Send what the endpoint queued and re-arm the single timer."""
        if self._transport is None or self._transport.is_closing():
            return
        self.send_pending()
        deadline = self.endpoint.next_deadline()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._fire)
        if self._on_activity is not None:
            self._on_activity()

    def send_pending(self) -> None:
        """Send what the endpoint queued, nothing else (for a sibling transport's hook)."""
        if self._transport is None or self._transport.is_closing():
            return
        for data, destination in self.endpoint.take_datagrams():
            self._transport.sendto(data, destination)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(
    endpoint: DatagramEndpoint,
    host: str,
    port: int,
    on_activity: Callable[[], None] | None = None,
) -> UdpAdapter:
    """Bind ``host:port`` (0 lets the OS choose) and serve ``endpoint`` on it.

    ``on_activity`` runs after every datagram and timer the endpoint handled:
    the hook for whoever drains the endpoint's events.
    """
    loop = asyncio.get_running_loop()
    _, adapter = await loop.create_datagram_endpoint(
        lambda: UdpAdapter(endpoint, on_activity), local_addr=(host, port)
    )
    return adapter
