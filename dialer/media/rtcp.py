"""RTCP packets (RFC 3550 §6.4-§6.6) and compound datagrams (§6.1).

Every RTCP packet starts with the same word::

     0                   1                   2                   3
    |V=2|P|    RC   |      PT       |     length (words - 1)        |

One class per packet type. Types we do not interpret (APP, RFC 4585
feedback, XR) survive a parse/serialise round trip as ``UnknownRtcp``, so a
relay never drops what it does not understand. Padding (P bit) is removed on
parse and never emitted: we do not encrypt, so we never need to pad.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from dialer.media.errors import LocalMediaError, RemoteMediaError

VERSION = 2
MAX_COUNT = 31  # the 5-bit RC/SC field


class PacketType(IntEnum):
    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204


class SdesType(IntEnum):
    """RFC 3550 §6.5 item types (0 is the chunk terminator, never an item)."""

    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IBBHIIII")  # cumulative lost split as 8 + 16 bits
_SR_INFO = struct.Struct("!IQIII")
_BLOCK_SIZE = _BLOCK.size  # 24
_CUMULATIVE_MIN = -(1 << 23)
_CUMULATIVE_MAX = (1 << 23) - 1


def ntp_middle(ntp_timestamp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: what LSR echoes (§6.4.1)."""
    return (ntp_timestamp >> 16) & 0xFFFF_FFFF


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise LocalMediaError(f"{name} {value} does not fit in {bits} bits")


def _check_count(name: str, count: int) -> None:
    if count > MAX_COUNT:
        raise LocalMediaError(f"{count} {name}, at most {MAX_COUNT} fit in one packet")


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    return _HEADER.pack((VERSION << 6) | count, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (§6.4.1); jitter in timestamp units."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_uint("fraction lost", self.fraction_lost, 8)
        if not _CUMULATIVE_MIN <= self.cumulative_lost <= _CUMULATIVE_MAX:
            raise LocalMediaError(
                f"cumulative lost {self.cumulative_lost} does not fit in 24 signed bits"
            )
        _check_uint("highest sequence", self.highest_seq, 32)
        _check_uint("jitter", self.jitter, 32)
        _check_uint("LSR", self.lsr, 32)
        _check_uint("DLSR", self.dlsr, 32)

    @classmethod
    def _parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(
            data, offset
        )
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x80_0000:  # 24-bit two's complement: duplicates can make it negative
            lost -= 1 << 24
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)

    def to_bytes(self) -> bytes:
        lost = self.cumulative_lost & 0xFF_FFFF
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost >> 16,
            lost & 0xFFFF,
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _parse_blocks(name: str, body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    needed = offset + count * _BLOCK_SIZE
    if len(body) < needed:
        raise RemoteMediaError(
            f"RTCP {name} with {count} report blocks needs {needed + 4} octets, has {len(body) + 4}"
        )
    return tuple(ReportBlock._parse(body, offset + i * _BLOCK_SIZE) for i in range(count))


def _check_extension(extension: bytes) -> None:
    if len(extension) % 4:
        raise LocalMediaError(
            f"profile extension must be whole 32-bit words, got {len(extension)} octets"
        )


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1): sender info plus reports on the sources we receive."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_uint("NTP timestamp", self.ntp_timestamp, 64)
        _check_uint("RTP timestamp", self.rtp_timestamp, 32)
        # §6.4.1: the counts wrap around, so a sender reduces them modulo 2**32.
        _check_uint("packet count", self.packet_count, 32)
        _check_uint("octet count", self.octet_count, 32)
        _check_count("report blocks", len(self.reports))
        _check_extension(self.extension)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < _SR_INFO.size:
            raise RemoteMediaError(
                f"RTCP SR truncated: {len(body) + 4} octets, sender info needs 28"
            )
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        reports = _parse_blocks("SR", body, _SR_INFO.size, count)
        extension = body[_SR_INFO.size + count * _BLOCK_SIZE :]
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, bytes(extension))

    def to_bytes(self) -> bytes:
        body = b"".join(
            (
                _SR_INFO.pack(
                    self.ssrc,
                    self.ntp_timestamp,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(block.to_bytes() for block in self.reports),
                self.extension,
            )
        )
        return _header(len(self.reports), PacketType.SR, body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2): sent by a participant that is not sending media."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_count("report blocks", len(self.reports))
        _check_extension(self.extension)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4:
            raise RemoteMediaError(f"RTCP RR truncated: {len(body) + 4} octets, SSRC needs 8")
        (ssrc,) = struct.unpack_from("!I", body)
        reports = _parse_blocks("RR", body, 4, count)
        return cls(ssrc, reports, bytes(body[4 + count * _BLOCK_SIZE :]))

    def to_bytes(self) -> bytes:
        body = b"".join(
            (
                struct.pack("!I", self.ssrc),
                *(block.to_bytes() for block in self.reports),
                self.extension,
            )
        )
        return _header(len(self.reports), PacketType.RR, body)


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item; ``kind`` is an ``SdesType`` value or a future one (1..255)."""

    kind: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.kind <= 255:
            raise LocalMediaError(f"SDES item type {self.kind} is not in 1..255")
        if len(self.value) > 255:
            raise LocalMediaError(f"SDES item of {len(self.value)} octets, at most 255 fit")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one source (§6.5)."""

    ssrc: int
    items: tuple[SdesItem, ...]

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)

    @property
    def cname(self) -> str | None:
        for item in self.items:
            if item.kind == SdesType.CNAME:
                # A CNAME is an identifier, not prose: keep whatever the peer sent.
                return item.value.decode("utf-8", errors="replace")
        return None

    def to_bytes(self) -> bytes:
        items = b"".join(bytes((item.kind, len(item.value))) + item.value for item in self.items)
        # The list ends with at least one null octet, then pads to a word.
        nulls = 4 - len(items) % 4
        return struct.pack("!I", self.ssrc) + items + bytes(nulls)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (§6.5); every compound packet carries our CNAME in one."""

    chunks: tuple[SdesChunk, ...]

    def __post_init__(self) -> None:
        _check_count("SDES chunks", len(self.chunks))

    @classmethod
    def for_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, (SdesItem(SdesType.CNAME, cname.encode()),)),))

    @classmethod
    def _parse(cls, count: int, body: bytes) -> SourceDescription:
        chunks: list[SdesChunk] = []
        offset = 0
        size = len(body)
        for _ in range(count):
            if offset + 4 > size:
                raise RemoteMediaError(f"RTCP SDES truncated: chunk {len(chunks) + 1} missing")
            (ssrc,) = struct.unpack_from("!I", body, offset)
            offset += 4
            items: list[SdesItem] = []
            while True:
                if offset >= size:
                    raise RemoteMediaError(f"RTCP SDES chunk for SSRC {ssrc} is not terminated")
                kind = body[offset]
                if kind == 0:
                    # Skip the terminator and the nulls up to the next word.
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > size or offset + 2 + body[offset + 1] > size:
                    raise RemoteMediaError(f"RTCP SDES item type {kind} truncated")
                length = body[offset + 1]
                items.append(SdesItem(kind, bytes(body[offset + 2 : offset + 2 + length])))
                offset += 2 + length
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def to_bytes(self) -> bytes:
        body = b"".join(chunk.to_bytes() for chunk in self.chunks)
        return _header(len(self.chunks), PacketType.SDES, body)


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (§6.6): these sources leave; ``reason`` is optional UTF-8 text."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        _check_count("BYE sources", len(self.ssrcs))
        for ssrc in self.ssrcs:
            _check_uint("SSRC", ssrc, 32)
        if self.reason is not None and len(self.reason.encode()) > 255:
            raise LocalMediaError("BYE reason longer than 255 octets")

    @classmethod
    def _parse(cls, count: int, body: bytes) -> Bye:
        end = 4 * count
        if len(body) < end:
            raise RemoteMediaError(
                f"RTCP BYE with {count} sources needs {end + 4} octets, has {len(body) + 4}"
            )
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = None
        if len(body) > end:
            length = body[end]
            if end + 1 + length > len(body):
                raise RemoteMediaError(
                    f"RTCP BYE reason of {length} octets exceeds the {len(body) - end - 1} left"
                )
            try:
                reason = body[end + 1 : end + 1 + length].decode()
            except UnicodeDecodeError:
                raise RemoteMediaError("RTCP BYE reason is not UTF-8") from None
        return cls(tuple(ssrcs), reason)

    def to_bytes(self) -> bytes:
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()
            reason = bytes((len(text),)) + text
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.ssrcs), PacketType.BYE, body)


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """A packet type we carry but do not interpret: APP, RTPFB/PSFB, XR, ..."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        _check_uint("packet type", self.packet_type, 8)
        _check_uint("count", self.count, 5)
        _check_extension(self.body)

    def to_bytes(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == PacketType.SR:
        return SenderReport._parse(count, body)
    if packet_type == PacketType.RR:
        return ReceiverReport._parse(count, body)
    if packet_type == PacketType.SDES:
        return SourceDescription._parse(count, body)
    if packet_type == PacketType.BYE:
        return Bye._parse(count, body)
    return UnknownRtcp(packet_type, count, bytes(body))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split and parse a compound RTCP datagram (§6.1).

    The "must start with SR or RR" rule is not enforced: RFC 5506 reduced-size
    RTCP legitimately sends lone feedback packets.
    """
    packets: list[RtcpPacket] = []
    offset = 0
    size = len(data)
    if size == 0:
        raise RemoteMediaError("RTCP packet truncated: 0 octets, header needs 4")
    while offset < size:
        if size - offset < 4:
            raise RemoteMediaError(f"RTCP packet truncated: {size - offset} octets, header needs 4")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        version = first >> 6
        if version != VERSION:
            raise RemoteMediaError(f"RTCP version {version}, expected 2")
        length = 4 * (words + 1)
        if offset + length > size:
            raise RemoteMediaError(
                f"RTCP length {words} ({length} octets) exceeds the {size - offset} left"
            )
        end = offset + length
        if first & 0x20:
            # Content is whole words, so padding is too (else the body is misaligned).
            padding = data[end - 1]
            if padding == 0 or padding % 4 or padding > length - 4:
                raise RemoteMediaError(
                    f"RTCP padding count {padding} invalid for a {length}-octet packet"
                )
            end -= padding
        packets.append(_parse_one(packet_type, first & 0x1F, data[offset + 4 : end]))
        offset += length
    return packets


def serialise_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(packet.to_bytes() for packet in packets)
