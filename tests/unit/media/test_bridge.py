"""The bridge fed synthetic packets: relaying, latching, drops, DTMF, timeout, recording."""

from __future__ import annotations

import random
import struct
from array import array
from dataclasses import dataclass

import pytest

from dialer.events import CallBridged, DtmfReceived, MediaTimeout
from dialer.media.bridge import Bridge, Side
from dialer.media.dtmf import TelephoneEvent
from dialer.media.g711 import alaw_decode, ulaw_decode, ulaw_to_alaw
from dialer.media.rtcp import ReceiverReport, SenderReport, SourceDescription, parse_compound
from dialer.media.rtp import RtpPacket
from dialer.media.stream import Drop, MediaStream
from dialer.sip.sdp import Direction, NegotiatedMedia

CUSTOMER = ("10.0.0.1", 4000)
AGENT = ("10.0.0.2", 5000)
FRAME = 160  # 20 ms at 8 kHz


def media(
    remote: tuple[str, int],
    codec: str = "PCMU",
    *,
    te: int | None = 101,
    direction: Direction = Direction.SENDRECV,
) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote=remote,
        remote_rtcp=(remote[0], remote[1] + 1),
        payload_type=0 if codec == "PCMU" else 8,
        codec=codec,
        telephone_event=te,
        direction=direction,
        ptime=20,
    )


def rtp(
    seq: int, ts: int, ssrc: int, payload: bytes, *, pt: int = 0, marker: bool = False
) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker
    ).to_bytes()


def make_bridge(
    customer: NegotiatedMedia | None = None,
    agent: NegotiatedMedia | None = None,
    *,
    timeout: float = 5.0,
) -> Bridge:
    bridge = Bridge(
        "call-1",
        MediaStream("customer", customer or media(CUSTOMER), timeout=timeout, now=0.0),
        wall=lambda now: 1_700_000_000_000 + round(now * 1000),
        ssrcs=(0xA6E17, 0xC057),
    )
    bridge.attach_agent(MediaStream("agent", agent or media(AGENT), timeout=timeout, now=0.0))
    return bridge


def test_nothing_is_relayed_before_connect_and_early_audio_is_kept() -> None:
    bridge = make_bridge()
    payload = bytes(range(FRAME))
    bridge.receive(Side.CUSTOMER, rtp(1, 0, 7, payload), CUSTOMER, 0.0)
    bridge.receive(Side.AGENT, rtp(1, 0, 8, payload), AGENT, 0.0)
    assert bridge.take_datagrams() == []
    assert bridge.dropped_unbridged == 2
    assert bridge.take_early_audio() == ulaw_decode(payload)
    assert bridge.take_early_audio() == b""


def test_connect_relays_under_our_own_ssrc_and_reports_the_instant() -> None:
    bridge = make_bridge()
    bridge.connect(1.5, "agent-leg")
    [event] = bridge.take_events()
    assert isinstance(event, CallBridged)
    assert (event.mono, event.at_ms, event.agent_leg) == (1.5, 1_700_000_001_500, "agent-leg")
    payload = b"\x11" * FRAME
    bridge.receive(Side.CUSTOMER, rtp(100, 8000, 7, payload), CUSTOMER, 1.52)
    [(side, data, destination)] = bridge.take_datagrams()
    assert (side, destination) == (Side.AGENT, AGENT)
    out = RtpPacket.parse(data)
    assert (out.ssrc, out.payload_type, out.payload) == (0xA6E17, 0, payload)
    assert (out.sequence, out.timestamp) == (100, 8000)


def test_ssrc_change_keeps_our_stream_continuous_and_sets_the_marker() -> None:
    bridge = make_bridge()
    bridge.connect(0.0, "a")
    payload = b"\x22" * FRAME
    bridge.receive(Side.CUSTOMER, rtp(10, 1000, 7, payload), CUSTOMER, 0.02)
    bridge.receive(Side.CUSTOMER, rtp(11, 1160, 7, payload), CUSTOMER, 0.04)
    # A new source (e.g. the carrier switched media servers), 60 ms later.
    bridge.receive(Side.CUSTOMER, rtp(5000, 999_999, 9, payload), CUSTOMER, 0.10)
    packets = [RtpPacket.parse(d) for _, d, _ in bridge.take_datagrams()]
    assert [p.sequence for p in packets] == [10, 11, 12]
    assert [p.timestamp for p in packets] == [1000, 1160, 1160 + 480]
    assert [p.marker for p in packets] == [False, False, True]
    assert {p.ssrc for p in packets} == {0xA6E17}


def test_transcodes_between_laws() -> None:
    bridge = make_bridge(agent=media(AGENT, "PCMA"))
    bridge.connect(0.0, "a")
    payload = bytes(range(0, 256, 2))[:FRAME]
    bridge.receive(Side.CUSTOMER, rtp(1, 0, 7, payload), CUSTOMER, 0.02)
    [(_, data, _)] = bridge.take_datagrams()
    out = RtpPacket.parse(data)
    assert (out.payload_type, out.payload) == (8, ulaw_to_alaw(payload))


def test_latches_to_the_real_source_port_then_refuses_others() -> None:
    bridge = make_bridge()
    bridge.connect(0.0, "a")
    natted = (CUSTOMER[0], 40123)  # same IP as the SDP, another port: NAT
    bridge.receive(Side.CUSTOMER, rtp(1, 0, 7, b"\x01" * FRAME), natted, 0.02)
    assert bridge.streams[Side.CUSTOMER].latched == natted
    assert bridge.streams[Side.CUSTOMER].destination == natted
    bridge.receive(Side.CUSTOMER, rtp(2, 160, 7, b"\x01" * FRAME), CUSTOMER, 0.04)
    bridge.receive(Side.CUSTOMER, rtp(3, 320, 7, b"\x01" * FRAME), ("10.9.9.9", 40123), 0.06)
    assert len(bridge.take_datagrams()) == 1
    assert bridge.streams[Side.CUSTOMER].drops[Drop.STRANGER] == 2
    # Agent audio now goes to where the customer really is.
    bridge.receive(Side.AGENT, rtp(1, 0, 8, b"\x02" * FRAME), AGENT, 0.05)
    [(side, _, destination)] = bridge.take_datagrams()
    assert (side, destination) == (Side.CUSTOMER, natted)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00\x01", Drop.MALFORMED),  # truncated header
        (b"\x40" + bytes(171), Drop.MALFORMED),  # RTP version 1
        (b"garbage that is long enough to look like a header", Drop.MALFORMED),
        (rtp(1, 0, 7, b"\x00" * FRAME, pt=18), Drop.UNKNOWN_PAYLOAD),  # G.729, not negotiated
        (rtp(1, 0, 7, b"\x00" * FRAME, pt=8), Drop.UNKNOWN_PAYLOAD),  # PCMA, not negotiated
    ],
)
def test_bad_packets_are_dropped_counted_and_never_relayed_or_recorded(
    data: bytes, reason: Drop
) -> None:
    bridge = make_bridge()
    bridge.connect(0.0, "a")
    bridge.receive(Side.CUSTOMER, data, CUSTOMER, 0.02)
    assert bridge.take_datagrams() == []
    assert bridge.streams[Side.CUSTOMER].drops[reason] == 1
    assert bridge.streams[Side.CUSTOMER].received == 0
    assert not any(bridge.finish())


def test_a_strangers_packets_never_reach_the_recording() -> None:
    bridge = make_bridge()
    bridge.connect(0.0, "a")
    bridge.receive(Side.CUSTOMER, rtp(1, 0, 7, b"\x10" * FRAME), ("192.0.2.66", 4000), 0.02)
    assert bridge.take_datagrams() == []
    assert not any(bridge.finish())


def test_dtmf_is_reported_and_relayed_only_to_a_side_that_takes_events() -> None:
    bridge = make_bridge(customer=media(CUSTOMER, te=None))
    bridge.connect(0.0, "a")
    for i, (end, duration) in enumerate([(False, 160), (False, 320), (True, 640)]):
        event = TelephoneEvent(event=5, end=end, volume=10, duration=duration).to_bytes()
        bridge.receive(Side.AGENT, rtp(20 + i, 4000, 8, event, pt=101), AGENT, 0.1 + i * 0.02)
    events = bridge.take_events()
    digits = [e for e in events if isinstance(e, DtmfReceived)]
    assert [(d.leg, d.digit, d.duration_ms) for d in digits] == [("agent", "5", 80)]
    assert bridge.take_datagrams() == []  # the customer leg negotiated no telephone-event


def test_dtmf_relayed_with_the_other_sides_payload_type() -> None:
    bridge = make_bridge(customer=media(CUSTOMER, te=96))
    bridge.connect(0.0, "a")
    event = TelephoneEvent(event=1, end=True, volume=10, duration=800).to_bytes()
    bridge.receive(Side.AGENT, rtp(1, 0, 8, event, pt=101), AGENT, 0.1)
    [(side, data, _)] = bridge.take_datagrams()
    assert side is Side.CUSTOMER
    assert RtpPacket.parse(data).payload_type == 96


def test_media_timeout_is_a_dead_line_but_not_during_hold() -> None:
    bridge = make_bridge(timeout=5.0)
    bridge.connect(10.0, "a")
    bridge.take_events()
    for i in range(10):
        bridge.receive(Side.AGENT, rtp(i, i * FRAME, 8, b"\x01" * FRAME), AGENT, 10 + i * 0.02)
    # The customer is silent; at 15.0 their line is dead.
    assert bridge.next_deadline() == pytest.approx(15.0)
    bridge.handle_timer(14.99)
    assert bridge.take_events() == []
    bridge.handle_timer(15.2)
    [event] = bridge.take_events()
    assert isinstance(event, MediaTimeout)
    assert (event.leg, event.silent_s) == ("customer", 5.2)

    held = make_bridge(timeout=5.0)
    held.connect(0.0, "a")
    # The customer put us on hold with a=inactive: silence from them is expected.
    held.update(Side.CUSTOMER, media(CUSTOMER, direction=Direction.INACTIVE), 1.0)
    held.streams[Side.AGENT].last_received = 1e9  # the agent keeps talking
    held.handle_timer(60.0)
    assert not any(isinstance(e, MediaTimeout) for e in held.take_events())


# --- the recording lines up to the sample ----------------------------------


@dataclass
class Source:
    """A synthetic talker whose G.711 code at each timeline position is known."""

    seed: int
    ssrc: int
    seq: int = 1000
    ts_base: int = 0

    def code_at(self, position: int) -> bytes:
        rng = random.Random(self.seed * 1_000_003 + position // FRAME)
        # Skip 0x7F/0xFF and 0x00/0x80 (near-silence) so a sample never looks like a gap.
        return bytes(rng.choice(range(0x10, 0x70)) for _ in range(FRAME))


def stereo(frames: bytes) -> tuple[array[int], array[int]]:
    samples = array("h")
    samples.frombytes(frames)
    return samples[0::2], samples[1::2]


def test_recording_channels_line_up_to_the_sample_through_loss_reorder_ssrc_change_and_hold() -> (
    None
):
    rng = random.Random(42)
    start = 100.0
    bridge = make_bridge(timeout=30.0)
    bridge.connect(start, "a")
    agent = Source(seed=1, ssrc=0x1111, ts_base=777)
    customer = Source(seed=2, ssrc=0x2222, ts_base=4_294_960_000)  # wraps during the call
    frames = 500  # 10 s
    hold_from, hold_to = 250, 350  # the customer is held (silent) from 5 s to 7 s
    ssrc_switch = 150  # the customer's source changes at 3 s
    expected = {
        Side.AGENT: bytearray(frames * FRAME * 2),
        Side.CUSTOMER: bytearray(frames * FRAME * 2),
    }
    schedule: list[tuple[float, Side, bytes, tuple[str, int]]] = []
    customer_address = CUSTOMER
    for n in range(frames):
        position = n * FRAME
        for side, source in ((Side.AGENT, agent), (Side.CUSTOMER, customer)):
            if side is Side.CUSTOMER and hold_from <= n < hold_to:
                continue
            if side is Side.CUSTOMER and n == ssrc_switch:
                source.ssrc, source.ts_base, source.seq = 0x3333, rng.getrandbits(32), 7
                source.ts_base = (source.ts_base - position) & 0xFFFFFFFF
            first = n == 0 or (side is Side.CUSTOMER and n in (ssrc_switch, hold_to))
            lost = not first and rng.random() < 0.05
            payload = source.code_at(position)
            if not lost:
                expected[side][position * 2 : (position + FRAME) * 2] = ulaw_decode(payload)
            seq = source.seq + n
            ts = (source.ts_base + position) & 0xFFFFFFFF
            data = rtp(seq & 0xFFFF, ts, source.ssrc, payload)
            # Anchoring packets arrive on time; the rest with up to 40 ms of jitter,
            # which also reorders neighbours.
            jitter = 0.0 if first else rng.uniform(0.0, 0.04)
            address = AGENT if side is Side.AGENT else customer_address
            if not lost:
                schedule.append((start + position / 8000 + jitter, side, data, address))
        if n == hold_to - 1:
            customer_address = ("10.0.0.1", 4100)  # unhold moves the customer's media port
    # The re-INVITEs: hold at 5 s (inactive), unhold at 7 s with a new port.
    hold_at = start + hold_from * FRAME / 8000
    unhold_at = start + hold_to * FRAME / 8000 - 0.001
    schedule.append((hold_at, Side.CUSTOMER, b"hold", CUSTOMER))
    schedule.append((unhold_at, Side.CUSTOMER, b"unhold", CUSTOMER))
    # A late packet from the customer's old port after the move is a stranger's.
    stale = rtp(9, 0, 0x3333, b"\x30" * FRAME)
    schedule.append((unhold_at + 0.5, Side.CUSTOMER, stale, CUSTOMER))
    schedule.sort(key=lambda item: item[0])

    recorded = bytearray()
    next_take = start
    for at, side, data, address in schedule:
        while next_take <= at:
            recorded += bridge.take_audio(next_take)
            next_take += 0.1
        if data == b"hold":
            bridge.update(Side.CUSTOMER, media(CUSTOMER, direction=Direction.INACTIVE), at)
        elif data == b"unhold":
            bridge.update(Side.CUSTOMER, media(("10.0.0.1", 4100)), at)
        else:
            bridge.receive(side, data, address, at)
    recorded += bridge.finish()

    left, right = stereo(bytes(recorded))
    agent_pcm = array("h")
    agent_pcm.frombytes(bytes(expected[Side.AGENT]))
    customer_pcm = array("h")
    customer_pcm.frombytes(bytes(expected[Side.CUSTOMER]))
    assert len(left) >= frames * FRAME
    assert left[: frames * FRAME] == agent_pcm
    assert right[: frames * FRAME] == customer_pcm
    # The hold is silence on the customer's side only.
    assert not any(right[hold_from * FRAME : hold_to * FRAME])
    assert any(left[hold_from * FRAME : hold_to * FRAME])
    assert bridge.streams[Side.CUSTOMER].drops[Drop.STRANGER] == 1


def test_alaw_customer_is_recorded_decoded_from_alaw() -> None:
    bridge = make_bridge(customer=media(CUSTOMER, "PCMA"))
    bridge.connect(0.0, "a")
    payload = bytes(range(0x20, 0x20 + FRAME))
    bridge.receive(Side.CUSTOMER, rtp(1, 0, 7, payload, pt=8), CUSTOMER, 0.0)
    _, right = stereo(bridge.finish())
    want = array("h")
    want.frombytes(alaw_decode(payload))
    assert right[:FRAME] == want


def test_connect_needs_an_agent_leg() -> None:
    bridge = Bridge(
        "call-9",
        MediaStream("customer", media(CUSTOMER), timeout=5.0, now=0.0),
        wall=lambda now: 0,
        ssrcs=(1, 2),
    )
    with pytest.raises(ValueError, match="call-9: connect before an agent leg is attached"):
        bridge.connect(0.0, "a")


def test_header_struct_matches_rtp_packet_serialisation() -> None:
    # The relay packs its header by hand for speed; it must equal the dataclass's bytes.
    packed = struct.pack("!BBHII", 0x80, 0x80 | 8, 65535, 2**32 - 1, 0xDEADBEEF) + b"\x01\x02"
    ours = RtpPacket(
        payload_type=8,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=0xDEADBEEF,
        payload=b"\x01\x02",
        marker=True,
    ).to_bytes()
    assert packed == ours


def test_rtcp_sender_reports_are_kept_and_strangers_rtcp_dropped() -> None:
    bridge = make_bridge()
    report = SenderReport(
        ssrc=7, ntp_timestamp=0x0102030405060708, rtp_timestamp=8000, packet_count=50,
        octet_count=8000,
    )  # fmt: skip
    bridge.receive_rtcp(Side.CUSTOMER, report.to_bytes(), (CUSTOMER[0], 4001), 1.0)
    stream = bridge.streams[Side.CUSTOMER]
    assert stream.sender_report == report
    assert stream.rtcp_received == 1
    bridge.receive_rtcp(Side.CUSTOMER, report.to_bytes(), ("192.0.2.66", 4001), 1.0)
    bridge.receive_rtcp(Side.CUSTOMER, b"\x81\xc8\x00", (CUSTOMER[0], 4001), 1.0)
    assert stream.drops[Drop.STRANGER] == 1
    assert stream.drops[Drop.MALFORMED] == 1
    assert stream.rtcp_received == 1


def test_rtcp_reports_say_what_we_sent_each_leg_and_what_we_heard_from_it() -> None:
    bridge = make_bridge()
    bridge.connect(0.0, "a")
    before = {side: data for side, data, _ in bridge.rtcp_reports(0.0, b"x")}
    rr, _ = parse_compound(before[Side.AGENT])
    assert isinstance(rr, ReceiverReport)  # nothing relayed to the agent yet
    # The customer sends 10 packets with one lost; all 9 reach the agent.
    for seq in (1, 2, 3, 4, 6, 7, 8, 9, 10):
        bridge.receive(
            Side.CUSTOMER, rtp(seq, seq * FRAME, 7, b"\x20" * FRAME), CUSTOMER, 0.02 * seq
        )
    bridge.receive(Side.AGENT, rtp(1, 0, 8, b"\x21" * FRAME), AGENT, 0.2)
    bridge.take_datagrams()
    reports = {
        side: (data, destination)
        for side, data, destination in bridge.rtcp_reports(5.0, b"dialer@test")
    }
    customer_data, customer_rtcp = reports[Side.CUSTOMER]
    sr, sdes = parse_compound(customer_data)
    assert customer_rtcp == (CUSTOMER[0], CUSTOMER[1] + 1)
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (0xC057, 1, FRAME)  # the agent's one
    [block] = sr.reports
    assert (block.ssrc, block.cumulative_lost, block.highest_seq) == (7, 1, 10)
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].items[0].value == b"dialer@test"
    agent_sr, _ = parse_compound(reports[Side.AGENT][0])
    assert isinstance(agent_sr, SenderReport)
    assert (agent_sr.ssrc, agent_sr.packet_count) == (0xA6E17, 9)
    # NTP seconds for 2023-11-14T22:13:25Z (the test clock's wall time at 5.0 s).
    assert agent_sr.ntp_timestamp >> 32 == 1_700_000_005 + 2_208_988_800
