from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.media.errors import LocalMediaError, RemoteMediaError
from dialer.media.rtp import (
    HeaderExtension,
    RtpPacket,
    RtpView,
    is_rtcp,
    parse_view,
    seq_diff,
    ts_diff,
)

# A PCMU packet as a phone sends it: V=2, no P/X/CC, M=0, PT=0.
PCMU_GOLDEN = (
    b"\x80"  # V=2 P=0 X=0 CC=0
    b"\x00"  # M=0 PT=0
    b"\x12\x34"  # sequence 0x1234
    b"\xde\xad\xbe\xef"  # timestamp
    b"\x01\x02\x03\x04" + b"\xff" * 160  # SSRC  # 20 ms of µ-law silence
)

# Every optional part at once: padding, extension, two CSRCs, marker.
FULL_GOLDEN = (
    b"\xb2"  # V=2 P=1 X=1 CC=2
    b"\xe5"  # M=1 PT=101
    b"\xff\xff"  # sequence 65535
    b"\x00\x00\x00\xa0"  # timestamp 160
    b"\xca\xfe\xba\xbe"  # SSRC
    b"\x0a\x0b\x0c\x0d"  # CSRC 1
    b"\x11\x12\x13\x14"  # CSRC 2
    b"\xbe\xde\x00\x01"  # extension profile 0xBEDE, 1 word
    b"\x10\xff\x00\x00"  # extension data
    b"\x05\x8a\x03\x20"  # payload (a telephone-event)
    b"\x00\x00\x03"  # 3 octets of padding, count last
)


def test_golden_pcmu_parses_exactly_and_round_trips() -> None:
    packet = RtpPacket.parse(PCMU_GOLDEN)
    assert packet == RtpPacket(
        payload_type=0,
        sequence=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0x01020304,
        payload=b"\xff" * 160,
    )
    assert packet.marker is False
    assert packet.csrcs == ()
    assert packet.extension is None
    assert packet.padding == 0
    assert packet.to_bytes() == PCMU_GOLDEN


def test_golden_with_every_optional_part() -> None:
    packet = RtpPacket.parse(FULL_GOLDEN)
    assert packet == RtpPacket(
        payload_type=101,
        sequence=65535,
        timestamp=160,
        ssrc=0xCAFEBABE,
        payload=b"\x05\x8a\x03\x20",
        marker=True,
        csrcs=(0x0A0B0C0D, 0x11121314),
        extension=HeaderExtension(0xBEDE, b"\x10\xff\x00\x00"),
        padding=3,
    )
    assert packet.to_bytes() == FULL_GOLDEN


def test_padding_may_fill_the_whole_payload() -> None:
    data = b"\xa0\x00\x00\x01" + bytes(8) + b"\x00\x00\x00\x04"
    packet = RtpPacket.parse(data)
    assert packet.payload == b""
    assert packet.padding == 4
    assert packet.to_bytes() == data


def test_payload_type_72_without_marker_is_rtp() -> None:
    packet = RtpPacket.parse(b"\x80\x48" + bytes(10))
    assert packet.payload_type == 72
    assert not packet.marker


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "RTP packet truncated: 0 octets, header needs 12"),
        (b"\x80\x00" + bytes(9), "RTP packet truncated: 11 octets, header needs 12"),
        (b"\x40\x00" + bytes(10), "RTP version 1, expected 2"),
        (b"\xc0\x00" + bytes(10), "RTP version 3, expected 2"),
        (b"\x00\x00" + bytes(10), "RTP version 0, expected 2"),
        (b"\x80\xc8" + bytes(10), "RTCP packet type 200 on the RTP port"),
        (b"\x81\xc9" + bytes(30), "RTCP packet type 201 on the RTP port"),
        (b"\x80\xca" + bytes(10), "RTCP packet type 202 on the RTP port"),
        (b"\x80\xcb" + bytes(10), "RTCP packet type 203 on the RTP port"),
        (b"\x80\xcc" + bytes(10), "RTCP packet type 204 on the RTP port"),
        (b"\x83\x00" + bytes(18), "RTP CSRC count 3 needs 24 octets, packet has 20"),
        (b"\x8f\x00" + bytes(10), "RTP CSRC count 15 needs 72 octets, packet has 12"),
        (
            b"\x90\x00" + bytes(12),
            "RTP header extension truncated: needs 16 octets, packet has 14",
        ),
        (
            b"\x90\x00" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),
            "RTP header extension of 2 words needs 24 octets, packet has 20",
        ),
        (b"\xa0\x00" + bytes(10) + b"\x01\x02\x00", "RTP padding count is 0"),
        (
            b"\xa0\x00" + bytes(10) + b"\x01\x02\x03\x09",
            "RTP padding of 9 octets exceeds the 4 after the header",
        ),
        (b"\xa0\x00" + bytes(10), "RTP padding count is 0"),
    ],
)
def test_parse_errors_are_remote_and_precise(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteMediaError) as caught:
        RtpPacket.parse(data)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "payload type 128 does not fit in 7 bits"),
        ({"sequence": 65536}, "sequence 65536 does not fit in 16 bits"),
        ({"timestamp": -1}, "timestamp -1 does not fit in 32 bits"),
        ({"ssrc": 1 << 32}, "SSRC 4294967296 does not fit in 32 bits"),
        ({"csrcs": tuple(range(16))}, "16 CSRCs, at most 15 fit"),
        ({"padding": 256}, "padding 256 does not fit in 8 bits"),
        (
            {"payload_type": 73, "marker": True},
            "payload type 73 with marker would be read as RTCP (RFC 5761)",
        ),
    ],
)
def test_building_a_bad_packet_is_a_local_error(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    with pytest.raises(LocalMediaError, match=f"^{re.escape(message)}$"):
        RtpPacket(**base | fields)  # type: ignore[arg-type]


def test_extension_must_be_whole_words() -> None:
    with pytest.raises(
        LocalMediaError, match=r"^extension data must be whole 32-bit words, got 3 octets$"
    ):
        HeaderExtension(0x1000, b"abc")


def test_seq_diff_wraps_at_16_bits() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(10, 5) == 5
    assert seq_diff(7, 7) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768


def test_ts_diff_wraps_at_32_bits() -> None:
    assert ts_diff(0, 0xFFFFFFFF) == 1
    assert ts_diff(0xFFFFFF60, 0x000000A0) == -320
    assert ts_diff(160, 0) == 160
    assert ts_diff(0x7FFFFFFF, 0) == 0x7FFFFFFF
    assert ts_diff(0x80000000, 0) == -0x80000000


def test_is_rtcp_demultiplexes_by_second_octet() -> None:
    assert is_rtcp(b"\x80\xc8")
    assert is_rtcp(b"\x81\xcc")
    assert not is_rtcp(b"\x80\xcd")  # 205 is RTPFB: RFC 5761 leaves it to the session
    assert not is_rtcp(PCMU_GOLDEN)
    assert not is_rtcp(b"\x80")


u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    payload_type = draw(st.integers(0, 127))
    extension = draw(
        st.none()
        | st.builds(
            HeaderExtension,
            profile=st.integers(0, 0xFFFF),
            data=st.lists(st.binary(min_size=4, max_size=4), max_size=5).map(b"".join),
        )
    )
    return RtpPacket(
        payload_type=payload_type,
        sequence=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=200)),
        # RFC 5761 forbids exactly this combination (it reads as RTCP).
        marker=draw(st.booleans()) and not 72 <= payload_type <= 76,
        csrcs=tuple(draw(st.lists(u32, max_size=15))),
        extension=extension,
        padding=draw(st.integers(0, 255)),
    )


@given(rtp_packets())
def test_round_trip_property(packet: RtpPacket) -> None:
    data = packet.to_bytes()
    assert RtpPacket.parse(data) == packet
    assert RtpPacket.parse(data).to_bytes() == data


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_remote_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RemoteMediaError:
        return
    # What parses re-serialises to the same length (padding content aside).
    assert len(packet.to_bytes()) == len(data)


def _view_of(packet: RtpPacket) -> RtpView:
    return RtpView(
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
        packet.payload,
    )


@given(rtp_packets())
def test_fast_view_reads_what_the_full_parser_reads(packet: RtpPacket) -> None:
    assert parse_view(packet.to_bytes()) == _view_of(packet)


@given(st.binary(max_size=64) | st.binary(min_size=13, max_size=40).map(lambda b: b"\x80" + b))
def test_fast_view_accepts_and_refuses_exactly_what_the_parser_does(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RemoteMediaError as exc:
        with pytest.raises(RemoteMediaError, match=re.escape(exc.reason)):
            parse_view(data)
        return
    assert parse_view(data) == _view_of(packet)
