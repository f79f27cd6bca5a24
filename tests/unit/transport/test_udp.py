from __future__ import annotations

import asyncio

from dialer.transport.udp import Address, open_udp


class DelayedEcho:
    """Answers each datagram after 50 ms of loop time; b"boom" raises."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, bytes, Address]] = []
        self.out: list[tuple[bytes, Address]] = []

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        if data == b"boom":
            raise ValueError("endpoint bug")
        self.pending.append((now + 0.05, data.upper(), source))

    def handle_timer(self, now: float) -> None:
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        self.out.extend((data, addr) for _, data, addr in due)

    def next_deadline(self) -> float | None:
        return min((p[0] for p in self.pending), default=None)

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        out, self.out = self.out, []
        return out


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)


async def test_timer_driven_replies_and_a_failing_datagram_does_not_stop_the_socket() -> None:
    endpoint = DelayedEcho()
    adapter = await open_udp(endpoint, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    client, collector = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    try:
        client.sendto(b"boom", adapter.local_address)
        client.sendto(b"hello", adapter.local_address)
        started = loop.time()
        reply = await asyncio.wait_for(collector.queue.get(), timeout=5)
        assert reply == b"HELLO"
        assert loop.time() - started >= 0.04  # sent by the timer, not on receipt
        assert adapter.errors == 1
    finally:
        client.close()
        adapter.close()
        await asyncio.wait_for(adapter.closed, timeout=5)
