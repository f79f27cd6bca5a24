"""The media bridge of one call: customer audio to the agent and back, recorded.

Sans-IO: datagrams come in with the side they arrived on and ``now``; what is
to be sent comes out of ``take_datagrams`` as ``(side to send from, bytes,
destination)``; the recording's stereo frames come out of ``take_audio``.

Before ``connect`` the customer may already be in 183 Session Progress: that
early audio is kept (bounded) for call-progress analysis and, if asked, is
recorded, but never reaches the agent. From ``connect`` on, packets are relayed
under our own SSRC per direction with continuous sequence numbers and
timestamps, so the far end sees one stream even when the near end changes
source (a re-INVITE to a new media server, a transfer at the carrier).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from dialer.events import CallBridged, DtmfReceived, Event, MediaTimeout
from dialer.media.dtmf import DtmfDigit, DtmfReceiver
from dialer.media.errors import RemoteMediaError
from dialer.media.g711 import alaw_encode, alaw_to_ulaw, ulaw_encode, ulaw_to_alaw
from dialer.media.mixer import Channel, RecordingMixer
from dialer.media.rtcp import (
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesItem,
    SdesType,
    SenderReport,
    SourceDescription,
    serialise_compound,
)
from dialer.media.rtp import RtpView
from dialer.media.stream import Address, Audio, Drop, MediaStream
from dialer.sip.sdp import NegotiatedMedia

_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def _ntp(wall_ms: int) -> int:
    """A 64-bit NTP timestamp (RFC 3550 §4) for a UTC instant in milliseconds."""
    seconds, millis = divmod(wall_ms, 1000)
    return ((seconds + _NTP_EPOCH_OFFSET) << 32) | ((millis << 32) // 1000)


_SAMPLE_RATE = 8000

_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
PROMPT_FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the ptime every G.711 peer takes

_TRANSCODERS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("PCMU", "PCMA"): ulaw_to_alaw,
    ("PCMA", "PCMU"): alaw_to_ulaw,
}


class Side(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"

    @property
    def other(self) -> Side:
        return Side.AGENT if self is Side.CUSTOMER else Side.CUSTOMER

    @property
    def channel(self) -> Channel:
        return Channel.AGENT if self is Side.AGENT else Channel.CUSTOMER


# Plain dicts: an enum property costs more than the lookup, on every packet.
_OTHER = {side: side.other for side in Side}
_CHANNEL = {side: side.channel for side in Side}


@dataclass(slots=True)
class _Relay:
    """Our outgoing stream in one direction, mapped from whatever comes in."""

    ssrc: int
    source: int | None = None
    seq_offset: int = 0
    ts_offset: int = 0
    last_seq: int = 0
    last_ts: int = 0
    last_arrival: float = 0.0
    sent: int = 0
    octets: int = 0

    def remap(self, packet: RtpView, arrival: float) -> tuple[int, int, bool]:
        """Our (sequence, timestamp, marker) for ``packet``."""
        marker = packet.marker
        if packet.ssrc != self.source:
            if self.source is not None:
                # Continue our stream where real time says it should be.
                gap = round((arrival - self.last_arrival) * _SAMPLE_RATE)
                self.ts_offset = (self.last_ts + max(gap, 1) - packet.timestamp) & 0xFFFFFFFF
                self.seq_offset = (self.last_seq + 1 - packet.sequence) & 0xFFFF
                marker = True
            self.source = packet.ssrc
        seq = (packet.sequence + self.seq_offset) & 0xFFFF
        ts = (packet.timestamp + self.ts_offset) & 0xFFFFFFFF
        self.last_seq, self.last_ts, self.last_arrival = seq, ts, arrival
        self.sent += 1
        return seq, ts, marker


class Bridge:
    """Relays, records and watches the media of one call (customer + agent)."""

    def __init__(
        self,
        call_id: str,
        customer: MediaStream,
        *,
        wall: Callable[[float], int],
        ssrcs: tuple[int, int],
        record: bool = True,
        record_early_media: bool = False,
        early_media_limit_s: float = 30.0,
    ) -> None:
        self.call_id = call_id
        self.streams: dict[Side, MediaStream] = {Side.CUSTOMER: customer}
        self._wall = wall
        self._relays = {Side.AGENT: _Relay(ssrcs[0]), Side.CUSTOMER: _Relay(ssrcs[1])}
        self._dtmf: dict[Side, DtmfReceiver] = {}
        self.record = record
        self.record_early_media = record_early_media
        self._early = bytearray()
        self._early_limit = int(early_media_limit_s * _SAMPLE_RATE) * 2
        self.mixer: RecordingMixer | None = None
        self.recording_start: float | None = None  # the instant of the recording's sample 0
        self.bridged_at: float | None = None
        self.timed_out: Side | None = None
        self.ended = False
        self.relayed = 0
        self.dropped_unbridged = 0
        self._out: list[tuple[Side, bytes, Address]] = []
        self._events: list[Event] = []
        self._arm_dtmf(Side.CUSTOMER)

    # -- legs ----------------------------------------------------------

    def attach_agent(self, agent: MediaStream) -> None:
        self.streams[Side.AGENT] = agent
        self._arm_dtmf(Side.AGENT)

    def update(self, side: Side, media: NegotiatedMedia, now: float) -> None:
        """A (re-)negotiation on one leg: new address, codec or hold state."""
        self.streams[side].update(media, now)
        self._arm_dtmf(side)

    def _arm_dtmf(self, side: Side) -> None:
        stream = self.streams.get(side)
        media = stream.media if stream is not None else None
        if media is not None and media.telephone_event is not None:
            current = self._dtmf.get(side)
            if current is None or current.payload_type != media.telephone_event:
                self._dtmf[side] = DtmfReceiver(media.telephone_event)

    def connect(self, now: float, agent_leg: str) -> None:
        """Customer and agent are both answered: relay from now; talk time starts."""
        if self.bridged_at is not None:
            return
        if Side.AGENT not in self.streams:
            raise ValueError(f"call {self.call_id}: connect before an agent leg is attached")
        self.bridged_at = now
        if self.record and self.mixer is None:
            self._start_recording(now)
        for stream in self.streams.values():
            stream.last_received = now  # the media timeout counts from the bridge
        self._events.append(
            CallBridged(call_id=self.call_id, at_ms=self._wall(now), mono=now, agent_leg=agent_leg)
        )

    def _start_recording(self, now: float) -> None:
        self.mixer = RecordingMixer(now)
        self.recording_start = now

    # -- packets -------------------------------------------------------

    def receive(self, side: Side, data: bytes, source: Address, now: float) -> None:
        stream = self.streams.get(side)
        if stream is None or self.ended:
            return
        accepted = stream.receive(data, source, now)
        if accepted is None:
            return
        packet = accepted.packet
        if isinstance(accepted, Audio):
            self._on_audio(side, accepted, now)
        else:
            self._on_event(side, packet, now)
            return
        if self.bridged_at is None:
            self.dropped_unbridged += 1
            return
        self._relay(side, packet, now)

    def receive_rtcp(self, side: Side, data: bytes, source: Address, now: float) -> None:
        stream = self.streams.get(side)
        if stream is not None:
            stream.receive_rtcp(data, source, now)

    def _on_audio(self, side: Side, audio: Audio, now: float) -> None:
        pcm: bytes | None = None
        if self.bridged_at is None and side is Side.CUSTOMER:
            room = self._early_limit - len(self._early)
            if room > 0:
                pcm = audio.pcm()
                self._early += pcm[:room]
            if self.record and self.record_early_media and self.mixer is None:
                self._start_recording(now)
        mixer = self.mixer
        if mixer is not None and (self.bridged_at is not None or side is Side.CUSTOMER):
            packet = audio.packet
            mixer.add(_CHANNEL[side], packet.ssrc, packet.timestamp, pcm or audio.pcm(), now)

    def _on_event(self, side: Side, packet: RtpView, now: float) -> None:
        receiver = self._dtmf.get(side)
        if receiver is not None:
            try:
                digits = receiver.handle_packet(packet, now)
            except RemoteMediaError:
                self.streams[side].drops[Drop.MALFORMED] += 1
                return
            self._report_digits(side, digits, now)
        if self.bridged_at is not None:
            self._relay(side, packet, now)

    def _report_digits(self, side: Side, digits: list[DtmfDigit], now: float) -> None:
        for digit in digits:
            self._events.append(
                DtmfReceived(
                    call_id=self.call_id,
                    at_ms=self._wall(now),
                    mono=now,
                    leg=side.value,
                    digit=digit.digit,
                    duration_ms=digit.duration_ms,
                )
            )

    def _relay(self, side: Side, packet: RtpView, now: float) -> None:
        source = self.streams[side].media
        other = _OTHER[side]
        target = self.streams.get(other)
        if target is None or source is None:
            return
        destination = target.destination
        media = target.media
        if destination is None or media is None:
            return
        payload = packet.payload
        if packet.payload_type == source.payload_type:
            payload_type = media.payload_type
            if source.codec != media.codec:
                payload = _TRANSCODERS[(source.codec, media.codec)](payload)
        elif media.telephone_event is not None:
            payload_type = media.telephone_event
        else:
            return  # the other side cannot take telephone-events; the digit was reported
        relay = self._relays[other]
        seq, ts, marker = relay.remap(packet, now)
        header = _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, seq, ts, relay.ssrc)
        self._out.append((other, header + payload, destination))
        relay.octets += len(payload)
        self.relayed += 1

    def prompt_packet(self, pcm: bytes, now: float, *, first: bool) -> bool:
        """Queue one 20 ms frame of our own audio (mono s16le) for the customer.

        For a message played to a customer no agent took (an abandoned
        predictive call): it goes out under our customer-direction SSRC, so a
        later bridge continues the same stream. False if the customer leg has
        no negotiated media to send to yet.
        """
        target = self.streams[Side.CUSTOMER]
        media, destination = target.media, target.destination
        if media is None or destination is None or self.ended:
            return False
        payload = _ENCODERS[media.codec](pcm)
        relay = self._relays[Side.CUSTOMER]
        if relay.source is None:
            relay.source = -1  # ours: a bridged source after it is a change of source
        relay.last_seq = (relay.last_seq + 1) & 0xFFFF
        relay.last_ts = (relay.last_ts + len(pcm) // 2) & 0xFFFFFFFF
        relay.last_arrival = now
        relay.sent += 1
        header = _HEADER.pack(
            0x80,
            (0x80 if first else 0) | media.payload_type,
            relay.last_seq,
            relay.last_ts,
            relay.ssrc,
        )
        self._out.append((Side.CUSTOMER, header + payload, destination))
        relay.octets += len(payload)
        return True

    # -- output --------------------------------------------------------

    def take_datagrams(self) -> list[tuple[Side, bytes, Address]]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def take_audio(self, now: float) -> bytes:
        """Recording frames (stereo s16le, agent left) that are due by ``now``."""
        return self.mixer.take(now) if self.mixer is not None else b""

    def finish(self) -> bytes:
        """End the bridge: no more relaying; returns the recording's last frames."""
        self.ended = True
        return self.mixer.finish() if self.mixer is not None else b""

    def take_early_audio(self) -> bytes:
        """The customer's early media (mono s16le) captured so far, for call-progress analysis."""
        audio = bytes(self._early)
        self._early.clear()
        return audio

    # -- RTCP --------------------------------------------------------

    def rtcp_reports(self, now: float, cname: bytes) -> list[tuple[Side, bytes, Address]]:
        """One compound RTCP packet per leg (RFC 3550 §6.4): what we sent it, what we heard.

        A sender report while we relay to that leg, else a receiver report;
        each carries a reception report on the leg's own source (loss and
        jitter, with LSR/DLSR for the far end's round-trip estimate) and our
        CNAME. Carriers use RTCP to tell a live stream from a dead one.
        """
        reports = []
        ntp = _ntp(self._wall(now))
        for side, stream in self.streams.items():
            media = stream.media
            if media is None or media.remote_rtcp[1] == 0:
                continue
            relay = self._relays[side]
            blocks: tuple[ReportBlock, ...] = ()
            if stream.ssrc is not None and stream.received:
                blocks = (stream.stats.make_report_block(stream.ssrc, now),)
            packet: SenderReport | ReceiverReport
            if relay.sent:
                packet = SenderReport(
                    ssrc=relay.ssrc,
                    ntp_timestamp=ntp,
                    rtp_timestamp=relay.last_ts,
                    packet_count=relay.sent & 0xFFFFFFFF,
                    octet_count=relay.octets & 0xFFFFFFFF,
                    reports=blocks,
                )
            else:
                packet = ReceiverReport(ssrc=relay.ssrc, reports=blocks)
            sdes = SourceDescription((SdesChunk(relay.ssrc, (SdesItem(SdesType.CNAME, cname),)),))
            destination = media.remote_rtcp
            if stream.latched is not None:
                # Symmetric RTCP follows the latched RTP source (RFC 4961), one port up.
                destination = (stream.latched[0], stream.latched[1] + 1)
            reports.append((side, serialise_compound([packet, sdes]), destination))
        return reports

    # -- timers --------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [r.next_deadline() for r in self._dtmf.values()]
        if self.bridged_at is not None and self.timed_out is None and not self.ended:
            deadlines.extend(s.deadline() for s in self.streams.values())
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        for side, receiver in self._dtmf.items():
            self._report_digits(side, receiver.handle_timer(now), now)
        if self.bridged_at is None or self.timed_out is not None or self.ended:
            return
        for side, stream in self.streams.items():
            if stream.timed_out(now):
                self.timed_out = side
                self._events.append(
                    MediaTimeout(
                        call_id=self.call_id,
                        at_ms=self._wall(now),
                        mono=now,
                        leg=side.value,
                        silent_s=round(now - stream.last_received, 3),
                    )
                )
                return
