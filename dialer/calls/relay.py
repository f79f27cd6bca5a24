"""The I/O around the media bridges: sockets per leg, one tick, the recorder.

Each leg has its own RTP/RTCP port pair; a datagram is handed to the bridge
the leg currently belongs to (a nailed-up agent leg moves from call to call)
and whatever the bridge wants sent goes out at once, from the socket of the
leg it is addressed to. Timers (media timeout, DTMF end) and the recording are
served by one periodic tick for all calls, not a timer per packet: moving a
deadline 50 times a second per call would cost more than the relaying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dialer.events import Event, MediaTimeout, RecordingClosed, RecordingFailed
from dialer.media.bridge import PROMPT_FRAME_SAMPLES, Bridge, Side
from dialer.media.stream import Address, MediaStream
from dialer.recording.repair import RepairedRecording, RepairReport, repair_directory
from dialer.recording.writer import RecordingFailure, RecordingResult, RecordingWriter
from dialer.sip.sdp import NegotiatedMedia
from dialer.transport.rtp import RtpPorts, open_rtp_ports

log = logging.getLogger(__name__)

TICK_S = 0.1
RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2's minimum; two parties per session, no scaling needed


@dataclass
class MediaLeg:
    leg_id: str  # the leg's SIP Call-ID
    side: Side
    ports: RtpPorts
    stream: MediaStream
    bridge: Bridge | None = None

    @property
    def port(self) -> int:
        return self.ports.port


@dataclass
class RelayCounters:
    legs_opened: int = 0
    bridges: int = 0
    relayed: int = 0
    media_timeouts: int = 0
    recordings_closed: int = 0
    recordings_failed: int = 0
    idle_packets: int = 0
    rtcp_sent: int = 0
    prompts_played: int = 0
    prompts_cut: int = 0  # the call ended (or had no media yet) before the message did
    # RTP of closed legs, by side ("customer", "agent"): live legs add theirs when read.
    closed_received: dict[str, int] = field(default_factory=dict)
    closed_lost: dict[str, int] = field(default_factory=dict)


@dataclass
class MediaRelay:
    host: str
    port_min: int
    port_max: int
    media_timeout: float
    emit: Callable[[Event], None]
    wall: Callable[[float], int]
    recordings: Path | None = None
    rng: random.Random = field(default_factory=random.Random)
    legs: dict[str, MediaLeg] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    counters: RelayCounters = field(default_factory=RelayCounters)
    _writer: RecordingWriter | None = None
    _recording: set[str] = field(default_factory=set)
    _sides: dict[str, dict[Side, MediaLeg]] = field(default_factory=dict)
    _rtcp_due: dict[str, float] = field(default_factory=dict)
    cname: bytes = b"dialer@127.0.0.1"
    _tick: asyncio.Task[None] | None = None
    startup_repairs: RepairReport | None = None

    # -- lifecycle -----------------------------------------------------

    async def __aenter__(self) -> MediaRelay:
        loop = asyncio.get_running_loop()
        if self.recordings is not None:
            # Files a crash left open are made valid before new calls are recorded.
            self.startup_repairs = await asyncio.to_thread(repair_directory, self.recordings)
            for broken in self.startup_repairs.unrepairable:
                log.error("recording %s cannot be repaired: %s", broken.path, broken.reason)

            def post(result: RecordingResult | RecordingFailure) -> None:
                loop.call_soon_threadsafe(self._recording_done, result)

            self._writer = RecordingWriter(self.recordings, post)
            self._writer.start()
        self._tick = asyncio.create_task(self._ticker(), name="media-tick")
        return self

    async def __aexit__(self, *exc: object) -> None:
        now = asyncio.get_running_loop().time()
        for call_id in list(self.bridges):
            self.end(call_id, now)
        for leg_id in list(self.legs):
            self.close_leg(leg_id)
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        if self._writer is not None:
            writer = self._writer
            await asyncio.to_thread(writer.stop)
            # Results the worker posted while stopping arrive on the next turns.
            await asyncio.sleep(0)

    # -- legs ----------------------------------------------------------

    async def open_leg(self, leg_id: str, side: Side) -> MediaLeg:
        if leg_id in self.legs:
            raise ValueError(f"leg {leg_id} already has media ports")
        now = asyncio.get_running_loop().time()
        ports = await open_rtp_ports(
            self.host,
            self.port_min,
            self.port_max,
            on_rtp=lambda data, source, at: self._on_rtp(leg_id, data, source, at),
            on_rtcp=lambda data, source, at: self._on_rtcp(leg_id, data, source, at),
            rng=self.rng,
        )
        leg = MediaLeg(
            leg_id, side, ports, MediaStream(side.value, None, timeout=self.media_timeout, now=now)
        )
        self.legs[leg_id] = leg
        self.counters.legs_opened += 1
        return leg

    def negotiated(self, leg_id: str, media: NegotiatedMedia, now: float) -> None:
        leg = self.legs.get(leg_id)
        if leg is None:
            return
        if leg.bridge is not None:
            leg.bridge.update(leg.side, media, now)
        else:
            leg.stream.update(media, now)

    def close_leg(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is not None:
            leg.ports.close()
            side, stats = leg.side.value, leg.stream.stats
            counters = self.counters
            counters.closed_received[side] = counters.closed_received.get(side, 0) + stats.received
            counters.closed_lost[side] = counters.closed_lost.get(side, 0) + max(0, stats.lost)

    def reception(self) -> dict[str, tuple[int, int, float]]:
        """Per side: RTP packets received and lost since start, and the worst jitter now (s)."""
        out: dict[str, tuple[int, int, float]] = {}
        for side in ("customer", "agent"):
            received = self.counters.closed_received.get(side, 0)
            lost = self.counters.closed_lost.get(side, 0)
            jitter = 0.0
            for leg in self.legs.values():
                if leg.side.value == side:
                    stats = leg.stream.stats
                    received += stats.received
                    lost += max(0, stats.lost)
                    jitter = max(jitter, stats.jitter / 8000)  # G.711's 8 kHz clock
            out[side] = (received, lost, jitter)
        return out

    # -- bridges -------------------------------------------------------

    def create_bridge(
        self, call_id: str, customer_leg: str, *, record: bool, record_early_media: bool = False
    ) -> Bridge:
        leg = self.legs[customer_leg]
        bridge = Bridge(
            call_id,
            leg.stream,
            wall=self.wall,
            ssrcs=(self.rng.getrandbits(32), self.rng.getrandbits(32)),
            record=record and self._writer is not None,
            record_early_media=record_early_media,
        )
        leg.bridge = bridge
        self.bridges[call_id] = bridge
        self._sides[call_id] = {Side.CUSTOMER: leg}
        self.counters.bridges += 1
        return bridge

    def connect(self, call_id: str, agent_leg: str, now: float) -> None:
        bridge = self.bridges[call_id]
        leg = self.legs[agent_leg]
        leg.bridge = bridge
        self._sides[call_id][Side.AGENT] = leg
        bridge.attach_agent(leg.stream)
        bridge.connect(now, agent_leg)
        self._open_recording(bridge)
        self._after(bridge)

    def end(self, call_id: str, now: float) -> None:
        """The call is over: stop relaying, close its recording, free the customer leg."""
        bridge = self.bridges.pop(call_id, None)
        if bridge is None:
            return
        self._flush_audio(bridge, now)
        tail = bridge.finish()
        writer = self._writer
        if call_id in self._recording and writer is not None:
            if tail:
                writer.write(call_id, tail)
            writer.close(call_id)
            self._recording.discard(call_id)
        self.counters.relayed += bridge.relayed
        for event in bridge.take_events():
            self.emit(event)
        self._rtcp_due.pop(call_id, None)
        for leg in self._sides.pop(call_id, {}).values():
            if leg.bridge is bridge:
                leg.bridge = None

    def early_audio(self, call_id: str) -> bytes:
        """The customer's early media (mono s16le) since the last ask; b"" if none or gone."""
        bridge = self.bridges.get(call_id)
        return bridge.take_early_audio() if bridge is not None else b""

    async def play(self, call_id: str, pcm: bytes) -> bool:
        """Play mono s16le 8 kHz audio to the call's customer in real time.

        True once all of it went out; False if the call ended first. Paced on
        absolute 20 ms deadlines, so a late wake-up does not stretch the message.
        """
        loop = asyncio.get_running_loop()
        frame = PROMPT_FRAME_SAMPLES * 2
        start = loop.time()
        for index, offset in enumerate(range(0, len(pcm), frame)):
            bridge = self.bridges.get(call_id)
            chunk = pcm[offset : offset + frame].ljust(frame, b"\0")
            if bridge is None or not bridge.prompt_packet(chunk, loop.time(), first=index == 0):
                self.counters.prompts_cut += 1
                return False
            self._after(bridge)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))
        self.counters.prompts_played += 1
        return True

    def _open_recording(self, bridge: Bridge) -> None:
        start = bridge.recording_start
        if self._writer is None or start is None or bridge.call_id in self._recording:
            return
        self._writer.open(bridge.call_id, self.wall(start))
        self._recording.add(bridge.call_id)

    # -- packets -------------------------------------------------------

    def _on_rtp(self, leg_id: str, data: bytes, source: Address, now: float) -> None:
        leg = self.legs.get(leg_id)
        if leg is None:
            return
        bridge = leg.bridge
        if bridge is None:
            # An idle nailed-up agent leg: keep latching and the timeout honest.
            self.counters.idle_packets += 1
            leg.stream.receive(data, source, now)
            return
        bridge.receive(leg.side, data, source, now)
        self._after(bridge)

    def _on_rtcp(self, leg_id: str, data: bytes, source: Address, now: float) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None:
            leg.stream.receive_rtcp(data, source, now)

    def _after(self, bridge: Bridge) -> None:
        datagrams = bridge.take_datagrams()
        if datagrams:
            sides = self._sides[bridge.call_id]
            for side, data, destination in datagrams:
                sides[side].ports.send(data, destination)
        if bridge.mixer is not None and bridge.call_id not in self._recording:
            self._open_recording(bridge)  # early media started the recording

    # -- the tick --------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            for bridge in list(self.bridges.values()):
                try:
                    self._tick_bridge(bridge, now)
                except Exception:
                    log.exception("media tick failed for call %s", bridge.call_id)

    def _tick_bridge(self, bridge: Bridge, now: float) -> None:
        deadline = bridge.next_deadline()
        if deadline is not None and now >= deadline:
            bridge.handle_timer(now)
        for event in bridge.take_events():
            if isinstance(event, MediaTimeout):
                self.counters.media_timeouts += 1
            self.emit(event)
        self._flush_audio(bridge, now)
        self._send_rtcp(bridge, now)

    def _send_rtcp(self, bridge: Bridge, now: float) -> None:
        if bridge.bridged_at is None:
            return
        due = self._rtcp_due.setdefault(bridge.call_id, bridge.bridged_at + RTCP_INTERVAL_S / 2)
        if now < due:
            return
        # ±50 % randomisation (§6.3.1) keeps many calls from reporting in step.
        self._rtcp_due[bridge.call_id] = now + RTCP_INTERVAL_S * self.rng.uniform(0.5, 1.5)
        sides = self._sides.get(bridge.call_id, {})
        for side, data, destination in bridge.rtcp_reports(now, self.cname):
            leg = sides.get(side)
            if leg is not None:
                leg.ports.send_rtcp(data, destination)
                self.counters.rtcp_sent += 1

    def _flush_audio(self, bridge: Bridge, now: float) -> None:
        if bridge.call_id not in self._recording or self._writer is None:
            return
        frames = bridge.take_audio(now)
        if frames:
            self._writer.write(bridge.call_id, frames)

    # -- recorder results (posted from its thread) -----------------------

    def repair_events(self, now: float) -> list[Event]:
        """One ``RecordingClosed(repaired=True)`` per file start-up repair fixed."""
        report = self.startup_repairs
        if report is None:
            return []
        return [self._closed(fixed, now, repaired=True) for fixed in report.repaired]

    def _closed(
        self, result: RecordingResult | RepairedRecording, now: float, *, repaired: bool
    ) -> RecordingClosed:
        speech = result.speech
        return RecordingClosed(
            call_id=result.call_id,
            at_ms=self.wall(now),
            mono=now,
            path=str(result.path),
            sha256=result.sha256,
            duration_ms=result.duration_ms,
            size_bytes=result.size_bytes,
            agent_speech_ms=speech.agent_speech_ms,
            customer_speech_ms=speech.customer_speech_ms,
            overlap_ms=speech.overlap_ms,
            longest_silence_ms=speech.longest_silence_ms,
            repaired=repaired,
        )

    def _recording_done(self, result: RecordingResult | RecordingFailure) -> None:
        now = asyncio.get_running_loop().time()
        event: Event
        if isinstance(result, RecordingResult):
            self.counters.recordings_closed += 1
            event = self._closed(result, now, repaired=False)
        else:
            self.counters.recordings_failed += 1
            self._recording.discard(result.call_id)
            event = RecordingFailed(
                call_id=result.call_id,
                at_ms=self.wall(now),
                mono=now,
                path=str(result.path),
                reason=result.reason,
            )
        self.emit(event)
