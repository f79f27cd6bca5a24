"""Our own SIP endpoint on a real UDP socket, as the integration tests drive it."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from dialer.events import CallEnded, CallEvent, Event, IncomingCall
from dialer.sip.call import LegConfig, OutboundCall
from dialer.sip.endpoint import SipEndpoint
from dialer.transport.tcp import TcpServer
from dialer.transport.udp import UdpAdapter, open_udp

OFFER = (
    b"v=0\r\no=dialer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
)


@dataclass
class LiveEndpoint:
    endpoint: SipEndpoint
    adapter: UdpAdapter
    tcp: TcpServer | None = None
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> tuple[str, int]:
        return self.adapter.local_address

    auto_answer: bool = False

    def drain(self) -> None:
        fresh = self.endpoint.take_events()
        self.events.extend(fresh)
        if self.auto_answer:
            for event in fresh:
                if isinstance(event, IncomingCall):
                    # Not from inside the adapter's flush: answer on the next turn.
                    asyncio.get_running_loop().call_soon(self.answer, event.call_id)
        self.changed.set()

    def flush(self) -> None:
        self.adapter.flush()
        if self.tcp is not None:
            self.tcp.flush()

    def answer(self, call_id: str) -> None:
        self.endpoint.answer(call_id, OFFER, self.now())
        self.flush()
        self.drain()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call(self, target: str, destination: tuple[str, int], **extra: object) -> OutboundCall:
        host, port = self.address
        config = LegConfig(
            call_id=str(uuid.uuid4()),
            target=target,
            local_uri=f"sip:dialer@{host}",
            contact=f"sip:dialer@{host}:{port}",
            via_host=host,
            via_port=port,
            sdp=OFFER,
            **extra,  # type: ignore[arg-type]
        )
        call = self.endpoint.place_call(config, destination, self.now())
        self.flush()
        self.drain()
        return call

    def hangup(self, call_id: str) -> None:
        self.endpoint.hangup(call_id, self.now())
        self.flush()
        self.drain()

    def of_call(self, call_id: str) -> list[CallEvent]:
        return [e for e in self.events if isinstance(e, CallEvent) and e.call_id == call_id]

    async def wait_for(
        self, call_id: str, kind: type[CallEvent], within: float = 30.0
    ) -> CallEvent:
        async with asyncio.timeout(within):
            while True:
                for event in self.of_call(call_id):
                    if isinstance(event, kind):
                        return event
                self.changed.clear()
                await self.changed.wait()

    async def ended(self, call_id: str, within: float = 30.0) -> CallEnded:
        event = await self.wait_for(call_id, CallEnded, within)
        assert isinstance(event, CallEnded)
        return event


@asynccontextmanager
async def live_endpoint(*, tcp: bool = False, **kwargs: object) -> AsyncIterator[LiveEndpoint]:
    """Our endpoint on UDP (and, with ``tcp``, on a TCP listener of its own port)."""
    endpoint = SipEndpoint(("127.0.0.1", 0), rng=random.Random(), **kwargs)  # type: ignore[arg-type]
    holder: list[LiveEndpoint] = []
    adapter = await open_udp(endpoint, "127.0.0.1", 0, on_activity=lambda: holder[0].drain())  # noqa: PLW0108 - bound later
    endpoint.local = adapter.local_address
    server = None
    if tcp:
        server = TcpServer(endpoint, on_activity=lambda: holder[0].drain())  # noqa: PLW0108
        await server.start(*endpoint.local)
    live = LiveEndpoint(endpoint, adapter, server)
    holder.append(live)
    try:
        yield live
    finally:
        adapter.close()
        if server is not None:
            await server.close()
