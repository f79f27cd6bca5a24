"""RTP data packets (RFC 3550 §5.1) and sequence/timestamp arithmetic.

Fixed header, as on the wire::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  (CC times) |
    |      defined by profile       |            length             |  (X=1)
    |                        header extension                       |  (X=1)

Padding content carries no meaning (only its last octet, the count, does), so
a packet keeps the padding *length* and re-emits zero octets before the count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from dialer.media.errors import LocalMediaError, RemoteMediaError

VERSION = 2
HEADER_SIZE = 12
MAX_CSRCS = 15

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_FAST = struct.Struct("!BHII")  # the fixed header after its first octet

# RFC 5761 §4: with RTP and RTCP multiplexed, RTCP packet types 200-204 show
# up as a marker bit plus payload types 72-76; they must never be RTP.
_RTCP_PAYLOAD_TYPES = range(72, 77)


def seq_diff(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in ``[-32768, 32767]`` (wraps)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, in ``[-2**31, 2**31 - 1]`` (wraps)."""
    return ((a - b + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: does this datagram on a muxed port hold RTCP?"""
    return len(data) >= 2 and 200 <= data[1] <= 204


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise LocalMediaError(f"{name} {value} does not fit in {bits} bits")


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """RFC 3550 §5.3.1 header extension: a profile id and whole 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("extension profile", self.profile, 16)
        if len(self.data) % 4:
            raise LocalMediaError(
                f"extension data must be whole 32-bit words, got {len(self.data)} octets"
            )
        if len(self.data) > 0xFFFF * 4:
            raise LocalMediaError(f"extension data of {len(self.data)} octets is too long")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP data packet; ``padding`` is the number of padding octets (0: none)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: HeaderExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        _check_uint("payload type", self.payload_type, 7)
        _check_uint("sequence", self.sequence, 16)
        _check_uint("timestamp", self.timestamp, 32)
        _check_uint("SSRC", self.ssrc, 32)
        if len(self.csrcs) > MAX_CSRCS:
            raise LocalMediaError(f"{len(self.csrcs)} CSRCs, at most {MAX_CSRCS} fit")
        for csrc in self.csrcs:
            _check_uint("CSRC", csrc, 32)
        if self.marker and self.payload_type in _RTCP_PAYLOAD_TYPES:
            raise LocalMediaError(
                f"payload type {self.payload_type} with marker would be read as RTCP (RFC 5761)"
            )
        # The count octet is itself padding, so a padded packet has 1..255.
        _check_uint("padding", self.padding, 8)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raise ``RemoteMediaError`` saying what is wrong."""
        size = len(data)
        if size < HEADER_SIZE:
            raise RemoteMediaError(f"RTP packet truncated: {size} octets, header needs 12")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != VERSION:
            raise RemoteMediaError(f"RTP version {version}, expected 2")
        marker = bool(second & 0x80)
        payload_type = second & 0x7F
        if marker and payload_type in _RTCP_PAYLOAD_TYPES:
            raise RemoteMediaError(f"RTCP packet type {second} on the RTP port")
        csrc_count = first & 0x0F
        offset = HEADER_SIZE + 4 * csrc_count
        if offset > size:
            raise RemoteMediaError(
                f"RTP CSRC count {csrc_count} needs {offset} octets, packet has {size}"
            )
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, HEADER_SIZE) if csrc_count else ()
        extension = None
        if first & 0x10:
            if offset + 4 > size:
                raise RemoteMediaError(
                    f"RTP header extension truncated: needs {offset + 4} octets, packet has {size}"
                )
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            start = offset + 4
            offset = start + 4 * words
            if offset > size:
                raise RemoteMediaError(
                    f"RTP header extension of {words} words needs {offset} octets, "
                    f"packet has {size}"
                )
            extension = HeaderExtension(profile, bytes(data[start:offset]))
        end = size
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0:
                raise RemoteMediaError("RTP padding count is 0")
            if padding > size - offset:
                raise RemoteMediaError(
                    f"RTP padding of {padding} octets exceeds the {size - offset} after the header"
                )
            end = size - padding
        return cls(
            payload_type=payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=marker,
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        first = (VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        parts = [
            _HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


class RtpView(NamedTuple):
    """The fields a relay needs of one received packet, without the full object.

    A bridge handles every packet of every call; building a validated frozen
    ``RtpPacket`` costs several times more than the relaying itself, so the
    common case (V=2, no padding, extension or CSRCs) is read straight off the
    header. Anything else goes through ``RtpPacket.parse`` and its checks.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_view(data: bytes) -> RtpView:
    """Parse one datagram like ``RtpPacket.parse`` (same errors), as an ``RtpView``."""
    if len(data) > HEADER_SIZE and data[0] == 0x80:
        second, sequence, timestamp, ssrc = _FAST.unpack_from(data, 1)
        payload_type = second & 0x7F
        marker = second > 0x7F
        if not (marker and payload_type in _RTCP_PAYLOAD_TYPES):
            return RtpView(payload_type, sequence, timestamp, ssrc, marker, data[HEADER_SIZE:])
    packet = RtpPacket.parse(data)
    return RtpView(
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
        packet.payload,
    )
