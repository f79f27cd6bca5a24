from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.media.dtmf import (
    DIGITS,
    FLASH,
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    TimedPacket,
)
from dialer.media.errors import LocalMediaError, RemoteMediaError
from dialer.media.rtp import RtpPacket

SSRC = 0x1234ABCD


def test_golden_payload() -> None:
    data = b"\x05\x8a\x03\x20"  # event 5, E=1, R=0, volume 10, duration 800
    event = TelephoneEvent.parse(data)
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert event.to_bytes() == data


def test_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.parse(b"\x0b\x4a\x00\xa0") == TelephoneEvent(11, False, 10, 160)


@pytest.mark.parametrize("size", [0, 3, 5, 8])
def test_payload_must_be_four_octets(size: int) -> None:
    with pytest.raises(RemoteMediaError) as caught:
        TelephoneEvent.parse(bytes(size))
    assert caught.value.reason == f"telephone-event payload must be 4 octets, got {size}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((256, False, 0, 0), "event 256 does not fit in 8 bits"),
        ((1, False, 64, 0), r"volume 64 is not in 0\.\.63 \(-dBm0\)"),
        ((1, False, 0, 65536), "duration 65536 does not fit in 16 bits"),
    ],
)
def test_bad_event_is_a_local_error(fields: tuple[int, bool, int, int], message: str) -> None:
    with pytest.raises(LocalMediaError, match=f"^{message}$"):
        TelephoneEvent(*fields)


@given(
    st.builds(
        TelephoneEvent,
        event=st.integers(0, 255),
        end=st.booleans(),
        volume=st.integers(0, 63),
        duration=st.integers(0, 0xFFFF),
    )
)
def test_payload_round_trip_property(event: TelephoneEvent) -> None:
    assert TelephoneEvent.parse(event.to_bytes()) == event


def events(timed: list[TimedPacket]) -> list[TelephoneEvent]:
    return [TelephoneEvent.parse(t.packet.payload) for t in timed]


def test_sender_packet_sequence_for_100_ms() -> None:
    timed = DtmfSender(SSRC).packets("5", 100, sequence=1000, timestamp=16000)
    assert [t.offset for t in timed] == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert [t.packet.sequence for t in timed] == [1000, 1001, 1002, 1003, 1004]
    assert {t.packet.timestamp for t in timed} == {16000}
    assert {t.packet.ssrc for t in timed} == {SSRC}
    assert {t.packet.payload_type for t in timed} == {101}
    assert [t.packet.marker for t in timed] == [True, False, False, False, False]
    assert events(timed) == [
        TelephoneEvent(5, False, 10, 0),
        TelephoneEvent(5, False, 10, 400),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
    ]
    # The golden bytes of the first end packet, as a phone would see them.
    assert timed[2].packet.to_bytes() == (
        b"\x80\x65\x03\xea\x00\x00\x3e\x80\x12\x34\xab\xcd\x05\x8a\x03\x20"
    )


def test_sender_duration_not_a_multiple_of_50_ms() -> None:
    timed = DtmfSender(SSRC, payload_type=96, volume=5).packets("#", 120, 65534, 0xFFFFFF00)
    assert [t.offset for t in timed] == [0.0, 0.05, 0.1, 0.12, 0.17, 0.22]
    assert [t.packet.sequence for t in timed] == [65534, 65535, 0, 1, 2, 3]
    assert [(e.event, e.end, e.volume, e.duration) for e in events(timed)] == [
        (11, False, 5, 0),
        (11, False, 5, 400),
        (11, False, 5, 800),
        (11, True, 5, 960),
        (11, True, 5, 960),
        (11, True, 5, 960),
    ]


@pytest.mark.parametrize(
    ("digit", "duration_ms", "message"),
    [
        ("E", 100, r"^'E' is not a DTMF digit \(0-9 \* # A-D !\)$"),
        ("1", 0, r"^duration 0 ms is not in 1\.\.8191 ms$"),
        ("1", 8192, r"^duration 8192 ms is not in 1\.\.8191 ms$"),
    ],
)
def test_sender_rejects_bad_requests(digit: str, duration_ms: int, message: str) -> None:
    with pytest.raises(LocalMediaError, match=message):
        DtmfSender(SSRC).packets(digit, duration_ms, 0, 0)


def test_sender_rejects_bad_volume_at_construction() -> None:
    with pytest.raises(LocalMediaError, match="volume 99"):
        DtmfSender(SSRC, volume=99)


def feed(receiver: DtmfReceiver, timed: list[TimedPacket], start: float) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for t in timed:
        out += receiver.handle_packet(t.packet, start + t.offset)
    return out


def test_receiver_reports_once_despite_three_end_packets() -> None:
    receiver = DtmfReceiver()
    timed = DtmfSender(SSRC).packets("7", 100, 0, 8000)
    got = [receiver.handle_packet(t.packet, 10.0 + t.offset) for t in timed]
    assert got == [[], [], [DtmfDigit("7", 100, SSRC)], [], []]
    assert receiver.next_deadline() is None
    assert receiver.handle_timer(99.0) == []


@pytest.mark.parametrize(("digit", "code"), [*zip(DIGITS, range(17), strict=True)])
def test_every_digit_and_flash(digit: str, code: int) -> None:
    receiver = DtmfReceiver()
    timed = DtmfSender(SSRC).packets(digit, 60, 0, 0)
    assert TelephoneEvent.parse(timed[0].packet.payload).event == code
    assert feed(receiver, timed, 0.0) == [DtmfDigit(digit, 60, SSRC)]
    assert DIGITS[16] == FLASH == "!"


def test_lost_end_packets_are_closed_by_the_timer() -> None:
    receiver = DtmfReceiver(timeout=1.0)
    timed = DtmfSender(SSRC).packets("3", 200, 0, 0)
    updates = [t for t in timed if not TelephoneEvent.parse(t.packet.payload).end]
    assert feed(receiver, updates, 5.0) == []
    last = 5.0 + updates[-1].offset
    assert receiver.next_deadline() == last + 1.0
    assert receiver.handle_timer(last + 0.999) == []
    assert receiver.handle_timer(last + 1.0) == [DtmfDigit("3", 150, SSRC)]
    assert receiver.handle_timer(last + 2.0) == []
    assert receiver.next_deadline() is None
    # An end packet that finally limps in must not report the digit again.
    late = timed[-1].packet
    assert receiver.handle_packet(late, last + 3.0) == []


def test_lost_end_packets_are_closed_by_the_next_event() -> None:
    receiver = DtmfReceiver()
    sender = DtmfSender(SSRC)
    first = [t for t in sender.packets("1", 100, 0, 0) if not t.packet.payload[1] & 0x80]
    second = sender.packets("1", 100, len(first), 1600)
    assert feed(receiver, first, 0.0) == []
    got = [receiver.handle_packet(t.packet, 0.3 + t.offset) for t in second]
    assert got[0] == [DtmfDigit("1", 50, SSRC)]  # the same key again is a new press
    assert got[2] == [DtmfDigit("1", 100, SSRC)]
    assert sum(len(g) for g in got) == 2


def test_stragglers_of_a_previous_event_are_ignored() -> None:
    receiver = DtmfReceiver()
    sender = DtmfSender(SSRC)
    first = sender.packets("4", 100, 0, 0)
    second = sender.packets("5", 100, 5, 1600)
    assert feed(receiver, first[:3], 0.0) == [DtmfDigit("4", 100, SSRC)]
    assert feed(receiver, second[:1], 0.3) == []
    assert feed(receiver, first[3:], 0.31) == []  # late repeats of the first end
    assert feed(receiver, second[1:], 0.3) == [DtmfDigit("5", 100, SSRC)]


def test_ssrc_change_closes_the_open_event() -> None:
    receiver = DtmfReceiver()
    a = DtmfSender(1).packets("9", 100, 0, 0)
    b = DtmfSender(2).packets("8", 100, 0, 0)
    assert feed(receiver, a[:2], 0.0) == []
    assert receiver.handle_packet(b[0].packet, 0.2) == [DtmfDigit("9", 50, 1)]
    assert feed(receiver, b[1:], 0.2) == [DtmfDigit("8", 100, 2)]


def test_other_payload_types_and_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver(payload_type=101)
    audio = RtpPacket(payload_type=0, sequence=1, timestamp=0, ssrc=SSRC, payload=bytes(160))
    assert receiver.handle_packet(audio, 0.0) == []
    answer_tone = RtpPacket(101, 2, 0, SSRC, TelephoneEvent(32, True, 10, 800).to_bytes())
    assert receiver.handle_packet(answer_tone, 0.0) == []
    assert receiver.next_deadline() is None


def test_bad_payload_is_a_remote_error() -> None:
    receiver = DtmfReceiver()
    with pytest.raises(RemoteMediaError, match="got 2"):
        receiver.handle_packet(RtpPacket(101, 1, 0, SSRC, b"\x01\x02"), 0.0)


@given(st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_loss_duplication_and_reordering_report_exactly_once(order: list[int]) -> None:
    receiver = DtmfReceiver()
    timed = DtmfSender(SSRC).packets("0", 100, 0, 0)  # 5 packets, indexes 0..4
    got: list[DtmfDigit] = []
    for step, index in enumerate(order):
        got += receiver.handle_packet(timed[index].packet, step * 0.02)
    got += receiver.handle_timer(100.0)
    assert len(got) == 1
    digit = got[0]
    assert digit.digit == "0"
    assert digit.ssrc == SSRC
    # An end packet carries the full duration; otherwise the longest update seen.
    seen = {TelephoneEvent.parse(timed[i].packet.payload).duration for i in order}
    assert digit.duration_ms == max(seen) // 8
