"""A simulated telephone line: a desk phone or a customer, over real SIP and RTP.

Each line is the production ``SipEndpoint`` on its own UDP port. When called,
it rings for a while and then does what its plan says: answer and talk (a
tone, 20 ms RTP packets, until either side hangs up, or until its own talk
time is up), or refuse with a SIP status (busy, invalid number, ...). The
demo floor and the tests use it where a real phone would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dialer.events import CallEnded, Event, IncomingCall
from dialer.media.g711 import ulaw_encode
from dialer.sip.endpoint import Clock, SipEndpoint
from dialer.sip.sdp import NegotiatedMedia, SessionDescription
from dialer.sip.sdp import answer as answer_sdp
from dialer.transport.rtp import RtpPorts, open_rtp_ports
from dialer.transport.udp import UdpAdapter, open_udp

log = logging.getLogger(__name__)

Address = tuple[str, int]
_HEADER = struct.Struct("!BBHII")
_FRAME = 160  # 20 ms of 8 kHz audio


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """What a line does with one incoming call."""

    status: int = 200  # 200 answers; anything else refuses with that status
    ring_s: float = 0.5
    talk_s: float | None = None  # hang up ourselves after this much talk; None: wait


def tone_frames(frequency: float, seconds: float = 1.0, amplitude: float = 0.3) -> list[bytes]:
    """A sine as μ-law 20 ms frames, one second long so that it loops without a click."""
    count = round(seconds * 8000)
    peak = amplitude * 32767
    pcm = struct.pack(
        f"<{count}h",
        *(round(peak * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(count)),
    )
    coded = ulaw_encode(pcm)
    return [coded[i : i + _FRAME] for i in range(0, len(coded), _FRAME)]


@dataclass
class _Talk:
    ports: RtpPorts
    task: asyncio.Task[None] | None = None


@dataclass
class SimLine:
    name: str
    plan: Callable[[IncomingCall], AnswerPlan]
    tone_hz: float = 440.0
    host: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (40000, 49999)
    rng: random.Random = field(default_factory=random.Random)
    endpoint: SipEndpoint | None = None
    adapter: UdpAdapter | None = None
    events: list[Event] = field(default_factory=list)
    answered: int = 0
    refused: int = 0
    packets_sent: int = 0
    _talks: dict[str, _Talk] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _frames: list[bytes] = field(default_factory=list)

    async def start(self, clock: Clock) -> None:
        endpoint = SipEndpoint((self.host, 0), clock=clock, rng=self.rng, accept_calls=True)
        self.adapter = await open_udp(endpoint, self.host, 0, on_activity=self._activity)
        endpoint.local = self.adapter.local_address
        self.endpoint = endpoint
        self._frames = tone_frames(self.tone_hz)

    @property
    def address(self) -> Address:
        assert self.adapter is not None
        return self.adapter.local_address

    def _activity(self) -> None:
        assert self.endpoint is not None
        for event in self.endpoint.take_events():
            self.events.append(event)
            if isinstance(event, IncomingCall):
                self._spawn(self._handle_call(event))
            elif isinstance(event, CallEnded):
                self._stop_talking(event.call_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_call(self, offered: IncomingCall) -> None:
        assert self.endpoint is not None and self.adapter is not None
        plan = self.plan(offered)
        await asyncio.sleep(plan.ring_s)
        call = self.endpoint.inbound.get(offered.call_id)
        if call is None:
            return  # cancelled while ringing
        loop = asyncio.get_running_loop()
        if plan.status != 200:
            self.refused += 1
            self.endpoint.reject(offered.call_id, plan.status, loop.time())
            self.adapter.flush()
            return
        ports = await open_rtp_ports(
            self.host,
            *self.rtp_ports,
            on_rtp=lambda data, source, now: None,
            on_rtcp=lambda data, source, now: None,
            rng=self.rng,
        )
        sdp, media = answer_sdp(
            SessionDescription.parse(call.remote_sdp),
            self.host,
            ports.port,
            session_id=self.rng.getrandbits(31),
            version=1,
        )
        if offered.call_id not in self.endpoint.inbound:
            ports.close()
            return
        self.answered += 1
        self.endpoint.answer(offered.call_id, sdp.to_bytes(), loop.time())
        self.adapter.flush()
        talk = _Talk(ports)
        self._talks[offered.call_id] = talk
        talk.task = loop.create_task(self._talk(offered.call_id, ports, media, plan.talk_s))

    async def _talk(
        self, call_id: str, ports: RtpPorts, media: NegotiatedMedia, talk_s: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        ssrc = self.rng.getrandbits(32)
        seq, ts = self.rng.getrandbits(16), self.rng.getrandbits(32)
        start = loop.time()
        n = 0
        while talk_s is None or n * 0.02 < talk_s:
            payload = self._frames[n % len(self._frames)]
            header = _HEADER.pack(
                0x80, media.payload_type, (seq + n) & 0xFFFF, (ts + n * _FRAME) & 0xFFFFFFFF, ssrc
            )
            ports.send(header + payload, media.remote)
            self.packets_sent += 1
            n += 1
            # Paced against the start, so the stream does not drift with loop delays.
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))
        assert self.endpoint is not None and self.adapter is not None
        self.endpoint.hangup(call_id, loop.time())
        self.adapter.flush()

    def _stop_talking(self, call_id: str) -> None:
        talk = self._talks.pop(call_id, None)
        if talk is None:
            return
        if talk.task is not None and talk.task is not asyncio.current_task():
            talk.task.cancel()
        talk.ports.close()

    async def close(self) -> None:
        for call_id in list(self._talks):
            self._stop_talking(call_id)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.adapter is not None:
            self.adapter.close()
