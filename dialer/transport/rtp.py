"""RTP and RTCP sockets for one call leg: an even port for RTP, the next for RTCP.

Like the SIP adapter this only moves bytes: each datagram goes to a callback
with the arrival instant from the loop's clock, and ``send`` puts bytes on
the wire. Ports are picked at random from the configured range and bound for
real, so another process on the machine holding a port just means the next
candidate.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

Address = tuple[str, int]
Receiver = Callable[[bytes, Address, float], None]

log = logging.getLogger(__name__)

_BIND_ATTEMPTS = 64


class PortRangeExhaustedError(OSError):
    """No even/odd port pair in the range could be bound."""


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None
        self.errors = 0
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.receiver(data, (str(addr[0]), int(addr[1])), self._loop.time())
        except Exception:
            # One bad packet must not close the media of a call.
            self.errors += 1
            log.exception("media handler failed on a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the far end is not listening yet: harmless.
        log.debug("rtp socket error: %s", exc)


@dataclass
class RtpPorts:
    """A bound RTP/RTCP socket pair."""

    host: str
    port: int
    _rtp: _Socket
    _rtcp: _Socket

    def send(self, data: bytes, destination: Address) -> None:
        transport = self._rtp.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, destination)

    def send_rtcp(self, data: bytes, destination: Address) -> None:
        transport = self._rtcp.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, destination)

    def retarget(self, on_rtp: Receiver, on_rtcp: Receiver) -> None:
        self._rtp.receiver = on_rtp
        self._rtcp.receiver = on_rtcp

    @property
    def errors(self) -> int:
        return self._rtp.errors + self._rtcp.errors

    def close(self) -> None:
        for socket in (self._rtp, self._rtcp):
            if socket.transport is not None:
                socket.transport.close()


async def _bind(host: str, port: int, receiver: Receiver) -> _Socket:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: _Socket(receiver), local_addr=(host, port)
    )
    return protocol


async def open_rtp_ports(
    host: str,
    port_min: int,
    port_max: int,
    *,
    on_rtp: Receiver,
    on_rtcp: Receiver,
    rng: random.Random,
) -> RtpPorts:
    """Bind an even RTP port and the odd RTCP port above it, inside the range."""
    first = port_min + (port_min % 2)
    pairs = (port_max - first) // 2
    if pairs <= 0:
        raise PortRangeExhaustedError(
            f"RTP port range {port_min}-{port_max} holds no even/odd pair"
        )
    for _ in range(_BIND_ATTEMPTS):
        port = first + 2 * rng.randrange(pairs)
        try:
            rtp = await _bind(host, port, on_rtp)
        except OSError:
            continue
        try:
            rtcp = await _bind(host, port + 1, on_rtcp)
        except OSError:
            assert rtp.transport is not None
            rtp.transport.close()
            continue
        return RtpPorts(host, port, rtp, rtcp)
    raise PortRangeExhaustedError(
        f"no free RTP port pair in {port_min}-{port_max} after {_BIND_ATTEMPTS} attempts"
    )
