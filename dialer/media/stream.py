"""One call leg's RTP stream as the bridge sees it: validation, latching, timeout.

Symmetric RTP (RFC 4961) with latching: the remote's SDP says where it will
send from only implicitly, and phones behind NAT send from a port other than
the one they advertised. So a stream accepts its first packets from the
negotiated IP address on any port, latches to the exact address the first
valid packet came from, sends there from then on, and drops packets from any
other address as a stranger's. A re-INVITE with a new address unlatches.

Every drop is counted by its reason; nothing dropped reaches the other leg or
a recording.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from dialer.media.errors import RemoteMediaError
from dialer.media.g711 import alaw_decode, ulaw_decode
from dialer.media.rtcp import SenderReport, parse_compound
from dialer.media.rtp import RtpView, is_rtcp, parse_view
from dialer.media.stats import ReceptionStats
from dialer.sip.sdp import NegotiatedMedia

Address = tuple[str, int]

_DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}


class Drop(StrEnum):
    """Why a datagram on a media port was not used."""

    MALFORMED = "malformed"  # truncated, wrong version, bad padding, ...
    UNKNOWN_PAYLOAD = "unknown_payload"  # a payload type the SDP did not negotiate
    STRANGER = "stranger"  # not from the negotiated/latched address
    NOT_RECEIVING = "not_receiving"  # the leg has no negotiated media (yet)


@dataclass(frozen=True, slots=True)
class Audio:
    """A validated audio packet; ``pcm()`` decodes it, only for who needs the samples.

    Relaying needs no samples (the payload is copied, or transcoded law to
    law), so decoding is left to the recording and early-media paths.
    """

    packet: RtpView
    decode: Callable[[bytes], bytes]

    def pcm(self) -> bytes:
        return self.decode(self.packet.payload)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated RFC 4733 telephone-event packet."""

    packet: RtpView


Accepted = Audio | Event


class MediaStream:
    """The receiving half of one leg's RTP session, plus where to send to it."""

    def __init__(
        self, name: str, media: NegotiatedMedia | None, *, timeout: float, now: float
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.media: NegotiatedMedia | None = None
        self.latched: Address | None = None
        self.stats = ReceptionStats()
        self.drops: dict[Drop, int] = dict.fromkeys(Drop, 0)
        self.received = 0
        self.rtcp_received = 0
        self.ssrc: int | None = None
        self.last_received = now
        self.sender_report: SenderReport | None = None
        if media is not None:
            self.update(media, now)

    # -- negotiation ---------------------------------------------------

    def update(self, media: NegotiatedMedia, now: float) -> None:
        """Apply a (re-)negotiation: new address unlatches, hold stops the timeout."""
        previous = self.media
        self.media = media
        if previous is None or previous.remote != media.remote:
            self.latched = None
        # Silence from a party that just resumed is not a dead line yet.
        self.last_received = now

    @property
    def destination(self) -> Address | None:
        """Where RTP for this leg goes: the latched source, else the negotiated address."""
        media = self.media
        if media is None or not media.direction.sends or media.remote[1] == 0:
            return None
        return self.latched or media.remote

    @property
    def expects_media(self) -> bool:
        media = self.media
        return media is not None and media.direction.receives and media.remote[1] != 0

    # -- receiving -----------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> Accepted | None:
        """Validate one RTP datagram; ``None`` means dropped (and counted)."""
        media = self.media
        if media is None:
            self._drop(Drop.NOT_RECEIVING)
            return None
        if not self._admit(source, media):
            self._drop(Drop.STRANGER)
            return None
        if is_rtcp(data):
            self.receive_rtcp(data, source, now)
            return None
        try:
            packet = parse_view(data)
        except RemoteMediaError:
            self._drop(Drop.MALFORMED)
            return None
        if packet.payload_type == media.payload_type:
            decode = _DECODERS.get(media.codec)
            if decode is None:
                self._drop(Drop.UNKNOWN_PAYLOAD)
                return None
            self._note_ssrc(packet)
            accepted: Accepted = Audio(packet, decode)
        elif packet.payload_type == media.telephone_event:
            self._note_ssrc(packet)
            accepted = Event(packet)
        else:
            self._drop(Drop.UNKNOWN_PAYLOAD)
            return None
        if self.latched is None:
            self.latched = source
        self.received += 1
        self.last_received = now
        self.stats.update(packet.sequence, packet.timestamp, now)
        return accepted

    def receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        """An RTCP datagram (on the RTCP port or muxed); keeps the last sender report."""
        media = self.media
        if media is None or source[0] != media.remote[0]:
            self._drop(Drop.STRANGER)
            return
        try:
            packets = parse_compound(data)
        except RemoteMediaError:
            self._drop(Drop.MALFORMED)
            return
        self.rtcp_received += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.sender_report = packet
                self.stats.on_sender_report(packet, now)

    def _admit(self, source: Address, media: NegotiatedMedia) -> bool:
        if self.latched is not None:
            return source == self.latched
        return source[0] == media.remote[0]

    def _note_ssrc(self, packet: RtpView) -> None:
        if packet.ssrc == self.ssrc:
            return
        changed = self.ssrc is not None
        self.ssrc = packet.ssrc
        if changed:
            # A new source restarts sequence and jitter accounting (RFC 3550 §8.2).
            self.stats.reset()

    def _drop(self, reason: Drop) -> None:
        self.drops[reason] += 1

    # -- timeout -------------------------------------------------------

    def deadline(self) -> float | None:
        """When silence from this party becomes a dead line, if it is expected to send."""
        if not self.expects_media or self.timeout <= 0:
            return None
        return self.last_received + self.timeout

    def timed_out(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline
