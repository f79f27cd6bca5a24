from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.media.errors import LocalMediaError, RemoteMediaError
from dialer.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesItem,
    SdesType,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_middle,
    parse_compound,
    serialise_compound,
)

SR_GOLDEN = (
    b"\x81\xc8\x00\x0c"  # V=2 RC=1 PT=SR length=12 words
    b"\x11\x22\x33\x44"  # sender SSRC
    b"\xe9\x4a\x2b\x3c\x80\x00\x00\x00"  # NTP timestamp
    b"\x00\x01\xf4\x00"  # RTP timestamp 128000
    b"\x00\x00\x03\x20"  # packet count 800
    b"\x00\x01\xf4\x00"  # octet count 128000
    b"\xaa\xbb\xcc\xdd"  # report block: source SSRC
    b"\x07"  # fraction lost 7/256
    b"\x00\x00\x03"  # cumulative lost 3
    b"\x00\x01\x00\x05"  # extended highest seq: 1 cycle, seq 5
    b"\x00\x00\x00\x12"  # jitter 18
    b"\x2b\x3c\x80\x00"  # LSR
    b"\x00\x01\x80\x00"  # DLSR 1.5 s
)
SDES_GOLDEN = (
    b"\x81\xca\x00\x06"  # V=2 SC=1 PT=SDES length=6 words
    b"\x11\x22\x33\x44"  # chunk SSRC
    b"\x01\x11"  # CNAME, 17 octets
    b"agent42@10.0.0.17"
    b"\x00"  # terminator, which also ends the word
)
SR = SenderReport(
    ssrc=0x11223344,
    ntp_timestamp=0xE94A2B3C80000000,
    rtp_timestamp=128000,
    packet_count=800,
    octet_count=128000,
    reports=(ReportBlock(0xAABBCCDD, 7, 3, 0x00010005, 18, 0x2B3C8000, 0x00018000),),
)


def test_sdes_golden_is_as_long_as_it_claims() -> None:
    assert len(SDES_GOLDEN) == 4 * (6 + 1)
    assert len(SR_GOLDEN) == 4 * (12 + 1)


def test_compound_sr_sdes_parses_exactly_and_round_trips() -> None:
    data = SR_GOLDEN + SDES_GOLDEN
    packets = parse_compound(data)
    cname = b"agent42@10.0.0.17"
    assert packets == [
        SR,
        SourceDescription((SdesChunk(0x11223344, (SdesItem(SdesType.CNAME, cname),)),)),
    ]
    sdes = packets[1]
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == cname.decode()
    assert serialise_compound(packets) == data


def test_for_cname_builds_the_golden_sdes() -> None:
    sdes = SourceDescription.for_cname(0x11223344, "agent42@10.0.0.17")
    assert sdes.to_bytes() == SDES_GOLDEN


def test_sdes_chunk_on_a_word_boundary_gets_a_whole_null_word() -> None:
    # 4 octets of SSRC + 2 + 2 of item = 8: the terminator needs a word of its own.
    sdes = SourceDescription.for_cname(1, "ab")
    assert sdes.to_bytes() == b"\x81\xca\x00\x03\x00\x00\x00\x01\x01\x02ab\x00\x00\x00\x00"
    assert parse_compound(sdes.to_bytes()) == [sdes]


def test_receiver_report_and_bye_with_reason() -> None:
    data = (
        b"\x80\xc9\x00\x01\x00\x00\x00\x2a"  # RR from SSRC 42, no blocks
        b"\x82\xcb\x00\x04"  # BYE with two sources, 4 words
        b"\x00\x00\x00\x2a\x00\x00\x00\x2b"
        b"\x06hangup\x00"  # reason, padded to the word
    )
    packets = parse_compound(data)
    assert packets == [ReceiverReport(42), Bye((42, 43), "hangup")]
    assert serialise_compound(packets) == data


def test_bye_without_reason() -> None:
    data = b"\x81\xcb\x00\x01\x00\x00\x00\x07"
    assert parse_compound(data) == [Bye((7,))]
    assert Bye((7,)).to_bytes() == data


def test_negative_cumulative_lost_is_24_bit_twos_complement() -> None:
    block = ReportBlock(1, 0, -2, 100, 0)
    data = ReceiverReport(9, (block,)).to_bytes()
    assert data[12:16] == b"\x00\xff\xff\xfe"
    assert parse_compound(data) == [ReceiverReport(9, (block,))]


def test_unknown_types_survive_a_round_trip() -> None:
    app = b"\x81\xcc\x00\x02\x00\x00\x00\x01NAME"  # APP, subtype 1
    pli = b"\x81\xce\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02"  # PSFB PLI
    packets = parse_compound(app + pli)
    assert packets == [
        UnknownRtcp(204, 1, b"\x00\x00\x00\x01NAME"),
        UnknownRtcp(206, 1, b"\x00\x00\x00\x01\x00\x00\x00\x02"),
    ]
    assert serialise_compound(packets) == app + pli


def test_padding_is_removed() -> None:
    data = b"\xa0\xc9\x00\x02\x00\x00\x00\x2a\x00\x00\x00\x04"
    assert parse_compound(data) == [ReceiverReport(42)]


def test_sr_profile_extension_is_kept() -> None:
    sr = SenderReport(1, 2, 3, 4, 5, extension=b"\x01\x02\x03\x04")
    assert parse_compound(sr.to_bytes()) == [sr]


def test_ntp_middle_is_what_lsr_echoes() -> None:
    assert ntp_middle(0xE94A2B3C80000000) == 0x2B3C8000


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "RTCP packet truncated: 0 octets, header needs 4"),
        (b"\x80\xc9\x00", "RTCP packet truncated: 3 octets, header needs 4"),
        (
            b"\x80\xc9\x00\x01\x00\x00\x00\x2a\x80\xc9",
            "RTCP packet truncated: 2 octets, header needs 4",
        ),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x2a", "RTCP version 1, expected 2"),
        (b"\xc0\xc9\x00\x01\x00\x00\x00\x2a", "RTCP version 3, expected 2"),
        (b"\x80\xc9\x00\x02\x00\x00\x00\x2a", "RTCP length 2 (12 octets) exceeds the 8 left"),
        (
            b"\x80\xc9\x00\x00",
            "RTCP RR truncated: 4 octets, SSRC needs 8",
        ),
        (
            b"\x81\xc9\x00\x01\x00\x00\x00\x2a",
            "RTCP RR with 1 report blocks needs 32 octets, has 8",
        ),
        (b"\x80\xc8\x00\x01\x00\x00\x00\x2a", "RTCP SR truncated: 8 octets, sender info needs 28"),
        (
            SR_GOLDEN[:1] + b"\xc8\x00\x06" + SR_GOLDEN[4:28],
            "RTCP SR with 1 report blocks needs 52 octets, has 28",
        ),
        (
            b"\xa0\xc9\x00\x01\x00\x00\x00\x00",
            "RTCP padding count 0 invalid for a 8-octet packet",
        ),
        (
            b"\xa0\xc9\x00\x01\x00\x00\x00\x08",
            "RTCP padding count 8 invalid for a 8-octet packet",
        ),
        (
            b"\xa0\xc9\x00\x02\x00\x00\x00\x2a\x00\x00\x00\x03",
            "RTCP padding count 3 invalid for a 12-octet packet",
        ),
        (b"\x81\xca\x00\x00", "RTCP SDES truncated: chunk 1 missing"),
        (
            b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x02ab",
            "RTCP SDES chunk for SSRC 1 is not terminated",
        ),
        (
            b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09ab",
            "RTCP SDES item type 1 truncated",
        ),
        (
            b"\x82\xca\x00\x02\x00\x00\x00\x01\x01\x01a\x00",
            "RTCP SDES truncated: chunk 2 missing",
        ),
        (b"\x82\xcb\x00\x01\x00\x00\x00\x01", "RTCP BYE with 2 sources needs 12 octets, has 8"),
        (
            b"\x81\xcb\x00\x02\x00\x00\x00\x01\x09abc",
            "RTCP BYE reason of 9 octets exceeds the 3 left",
        ),
        (b"\x81\xcb\x00\x02\x00\x00\x00\x01\x02\xff\xfe\x00", "RTCP BYE reason is not UTF-8"),
    ],
)
def test_parse_errors_are_remote_and_precise(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteMediaError) as caught:
        parse_compound(data)
    assert caught.value.reason == reason


def test_sdes_item_type_zero_is_the_terminator_not_an_item() -> None:
    # A chunk whose first octet after the SSRC is 0 has no items at all.
    data = b"\x81\xca\x00\x02\x00\x00\x00\x05\x00\x00\x00\x00"
    assert parse_compound(data) == [SourceDescription((SdesChunk(5, ()),))]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ReportBlock(1, 256, 0, 0, 0), "fraction lost 256 does not fit in 8 bits"),
        (
            lambda: ReportBlock(1, 0, 1 << 23, 0, 0),
            "cumulative lost 8388608 does not fit in 24 signed bits",
        ),
        (lambda: ReceiverReport(1, (ReportBlock(1, 0, 0, 0, 0),) * 32), "32 report blocks"),
        (lambda: SdesItem(0, b""), "SDES item type 0 is not in 1..255"),
        (lambda: SdesItem(1, bytes(256)), "SDES item of 256 octets, at most 255 fit"),
        (lambda: Bye((1,), "x" * 256), "BYE reason longer than 255 octets"),
        (lambda: UnknownRtcp(204, 0, b"abc"), "profile extension must be whole 32-bit words"),
    ],
)
def test_building_a_bad_packet_is_a_local_error(build: Callable[[], object], message: str) -> None:
    with pytest.raises(LocalMediaError, match=message):
        build()


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-(1 << 23), (1 << 23) - 1),
    highest_seq=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
rtcp_packets = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, (1 << 64) - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=st.lists(blocks, max_size=31).map(tuple),
    ),
    st.builds(ReceiverReport, ssrc=u32, reports=st.lists(blocks, max_size=31).map(tuple)),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(
                    st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=255)), max_size=4
                ).map(tuple),
            ),
            max_size=31,
        ).map(tuple),
    ),
    st.builds(
        Bye,
        st.lists(u32, max_size=31).map(tuple),
        st.none() | st.text(max_size=60),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_compound_round_trip_property(packets: list[object]) -> None:
    data = serialise_compound(packets)  # type: ignore[arg-type]
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_raise_remote_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RemoteMediaError:
        return
    assert sum(len(packet.to_bytes()) for packet in packets) <= len(data)
