"""DTMF as RFC 4733 telephone-events: payload, receiver, sender.

Payload (§2.3)::

     0                   1                   2                   3
    |     event     |E|R| volume    |          duration             |

All packets of one event share its RTP timestamp (the event's start); the
duration grows with each update and the end packet (E) is sent three times
(§2.5.1.4). So a receiver keys events by timestamp and must tolerate loss
and reordering of any of them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dialer.media.errors import LocalMediaError, RemoteMediaError
from dialer.media.rtp import RtpPacket, RtpView, ts_diff

FLASH = "!"  # hook flash (event 16), spelled as SIP INFO dtmf-relay spells it
DIGITS = "0123456789*#ABCD" + FLASH  # index = RFC 4733 event code (§3.2)
_EVENT_CODES = {digit: code for code, digit in enumerate(DIGITS)}

_PAYLOAD = struct.Struct("!BBH")
END_REPEATS = 3  # §2.5.1.4
UPDATE_INTERVAL_MS = 50


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload; ``duration`` is in RTP timestamp units."""

    event: int
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise LocalMediaError(f"event {self.event} does not fit in 8 bits")
        if not 0 <= self.volume <= 63:
            raise LocalMediaError(f"volume {self.volume} is not in 0..63 (-dBm0)")
        if not 0 <= self.duration <= 0xFFFF:
            raise LocalMediaError(f"duration {self.duration} does not fit in 16 bits")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) != _PAYLOAD.size:
            raise RemoteMediaError(f"telephone-event payload must be 4 octets, got {len(payload)}")
        event, flags, duration = _PAYLOAD.unpack(payload)
        # The R bit is reserved: senders set 0, receivers ignore it (§2.3).
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A completed key press, reported exactly once."""

    digit: str
    duration_ms: int
    ssrc: int


@dataclass(slots=True)
class _Current:
    ssrc: int
    timestamp: int
    event: int
    duration: int
    last_arrival: float
    closed: bool


class DtmfReceiver:
    """Turns telephone-event packets into ``DtmfDigit``s, once per key press.

    A digit is reported on the first end packet of its event; repeats and
    stragglers of that event are ignored afterwards. If every end packet is
    lost, the digit is reported with the last duration seen when the next
    event starts (new timestamp or SSRC) or when ``handle_timer`` finds the
    event silent for ``timeout`` seconds. Packets of other payload types and
    events that are not DTMF (tones, fax signals) are ignored.
    """

    def __init__(self, payload_type: int = 101, clock_rate: int = 8000, timeout: float = 1.0):
        self._payload_type = payload_type
        self._clock_rate = clock_rate
        self._timeout = timeout
        self._current: _Current | None = None

    @property
    def payload_type(self) -> int:
        return self._payload_type

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` may close an event whose end packets were lost."""
        current = self._current
        if current is None or current.closed:
            return None
        return current.last_arrival + self._timeout

    def handle_packet(self, packet: RtpPacket | RtpView, now: float) -> list[DtmfDigit]:
        """Feed one RTP packet; raise ``RemoteMediaError`` on a bad payload."""
        if packet.payload_type != self._payload_type:
            return []
        event = TelephoneEvent.parse(packet.payload)
        if event.event >= len(DIGITS):
            return []
        emitted: list[DtmfDigit] = []
        current = self._current
        if current is not None and current.ssrc == packet.ssrc:
            age = ts_diff(packet.timestamp, current.timestamp)
            if age < 0:
                return []  # a straggler of an event already reported
            if age == 0:
                if current.closed:
                    return []  # end packet repeat, or a late update
                current.duration = max(current.duration, event.duration)
                current.last_arrival = now
                if event.end:
                    emitted.append(self._close(current))
                return emitted
        if current is not None and not current.closed:
            emitted.append(self._close(current))
        current = _Current(packet.ssrc, packet.timestamp, event.event, event.duration, now, False)
        self._current = current
        if event.end:
            emitted.append(self._close(current))
        return emitted

    def handle_timer(self, now: float) -> list[DtmfDigit]:
        current = self._current
        if current is None or current.closed or now < current.last_arrival + self._timeout:
            return []
        return [self._close(current)]

    def _close(self, current: _Current) -> DtmfDigit:
        current.closed = True
        return DtmfDigit(
            DIGITS[current.event], current.duration * 1000 // self._clock_rate, current.ssrc
        )


@dataclass(frozen=True, slots=True)
class TimedPacket:
    """A packet to send ``offset`` seconds after the key press began."""

    offset: float
    packet: RtpPacket


class DtmfSender:
    """Builds the packets of one key press (§2.5.1).

    Packets go out every 50 ms, each carrying the duration elapsed so far:
    the first (marker set) at 0, updates while the key is down, then the end
    packet at the full duration and its two repeats 50 ms apart. Every packet
    takes the next sequence number but keeps the start timestamp.
    """

    def __init__(
        self, ssrc: int, payload_type: int = 101, clock_rate: int = 8000, volume: int = 10
    ) -> None:
        self._ssrc = ssrc
        self._payload_type = payload_type
        self._clock_rate = clock_rate
        self._volume = volume
        TelephoneEvent(0, False, volume, 0)  # validates the volume now, not per key press

    def packets(
        self, digit: str, duration_ms: int, sequence: int, timestamp: int
    ) -> list[TimedPacket]:
        code = _EVENT_CODES.get(digit)
        if code is None:
            raise LocalMediaError(f"{digit!r} is not a DTMF digit (0-9 * # A-D {FLASH})")
        total = duration_ms * self._clock_rate // 1000
        if not 0 < total <= 0xFFFF:
            # Longer presses need RFC 4733 §2.5.1.3 segments, which we never send.
            raise LocalMediaError(f"duration {duration_ms} ms is not in 1..8191 ms")
        step = UPDATE_INTERVAL_MS * self._clock_rate // 1000
        schedule = [
            (index * UPDATE_INTERVAL_MS, elapsed, False)
            for index, elapsed in enumerate(range(0, total, step))
        ]
        schedule += [
            (duration_ms + repeat * UPDATE_INTERVAL_MS, total, True)
            for repeat in range(END_REPEATS)
        ]
        out = []
        for index, (offset_ms, elapsed, end) in enumerate(schedule):
            packet = RtpPacket(
                payload_type=self._payload_type,
                sequence=(sequence + index) & 0xFFFF,
                timestamp=timestamp,
                ssrc=self._ssrc,
                payload=TelephoneEvent(code, end, self._volume, elapsed).to_bytes(),
                marker=index == 0,
            )
            out.append(TimedPacket(offset_ms / 1000, packet))
        return out
