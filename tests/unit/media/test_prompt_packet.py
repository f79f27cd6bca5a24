"""Bridge.prompt_packet: our own audio (the abandon message) to the customer, as one RTP stream.

The prompt goes out under the bridge's customer-direction SSRC, numbered on
from whatever the bridge sent that way before, so the customer's phone (and
a later bridge to an agent) sees one continuous stream. Payloads are built
from samples G.711 represents exactly, so decoding must give them back.
"""

from __future__ import annotations

import random

import pytest

from dialer.media.bridge import PROMPT_FRAME_SAMPLES, Bridge, Side
from dialer.media.g711 import alaw_decode, ulaw_decode
from dialer.media.rtcp import SenderReport, parse_compound
from dialer.media.rtp import RtpPacket
from dialer.media.stream import MediaStream
from dialer.sip.sdp import Direction, NegotiatedMedia

CUSTOMER = ("10.0.0.1", 4000)
AGENT = ("10.0.0.2", 5000)
AGENT_SSRC, CUSTOMER_SSRC = 0xA6E17, 0xC057  # ours, towards the agent and the customer
FRAME = PROMPT_FRAME_SAMPLES  # samples in 20 ms at 8 kHz
DECODE = {"PCMU": ulaw_decode, "PCMA": alaw_decode}


def media(remote: tuple[str, int], codec: str = "PCMU") -> NegotiatedMedia:
    return NegotiatedMedia(
        remote=remote,
        remote_rtcp=(remote[0], remote[1] + 1),
        payload_type=0 if codec == "PCMU" else 8,
        codec=codec,
        telephone_event=101,
        direction=Direction.SENDRECV,
        ptime=20,
    )


def customer_only(codec: str = "PCMU") -> Bridge:
    """A predictive customer's bridge: answered, no agent leg attached."""
    return Bridge(
        "call-1",
        MediaStream("customer", media(CUSTOMER, codec), timeout=5.0, now=0.0),
        wall=lambda now: 1_700_000_000_000 + round(now * 1000),
        ssrcs=(AGENT_SSRC, CUSTOMER_SSRC),
    )


def with_agent(codec: str = "PCMU") -> Bridge:
    bridge = customer_only(codec)
    bridge.attach_agent(MediaStream("agent", media(AGENT, codec), timeout=5.0, now=0.0))
    return bridge


def prompt(codec: str, frames: int, seed: int = 3) -> list[bytes]:
    """``frames`` 20 ms frames of s16le samples that ``codec`` carries without loss."""
    rng = random.Random(seed)
    return [DECODE[codec](rng.randbytes(FRAME)) for _ in range(frames)]


def play(bridge: Bridge, frames: list[bytes], start: float) -> list[bool]:
    return [
        bridge.prompt_packet(pcm, start + 0.02 * i, first=i == 0) for i, pcm in enumerate(frames)
    ]


def sent(bridge: Bridge) -> list[RtpPacket]:
    out = bridge.take_datagrams()
    assert {(side, destination) for side, _, destination in out} <= {(Side.CUSTOMER, CUSTOMER)}
    return [RtpPacket.parse(data) for _, data, _ in out]


@pytest.mark.parametrize(("codec", "payload_type"), [("PCMU", 0), ("PCMA", 8)])
def test_a_prompt_goes_to_the_customer_as_one_stream_that_decodes_back(
    codec: str, payload_type: int
) -> None:
    bridge = customer_only(codec)
    frames = prompt(codec, 5)
    assert play(bridge, frames, 1.0) == [True] * 5
    out = bridge.take_datagrams()
    assert [(side, destination) for side, _, destination in out] == [(Side.CUSTOMER, CUSTOMER)] * 5
    packets = [RtpPacket.parse(data) for _, data, _ in out]
    assert {(p.ssrc, p.payload_type) for p in packets} == {(CUSTOMER_SSRC, payload_type)}
    assert [p.marker for p in packets] == [True, False, False, False, False]
    first = packets[0]
    assert [p.sequence for p in packets] == [(first.sequence + i) & 0xFFFF for i in range(5)]
    assert [p.timestamp for p in packets] == [first.timestamp + FRAME * i for i in range(5)]
    assert [DECODE[codec](p.payload) for p in packets] == frames
    assert bridge.relayed == 0  # nothing of anyone else's was relayed


def test_a_prompt_continues_the_numbering_of_what_was_relayed_to_the_customer() -> None:
    bridge = with_agent()
    bridge.connect(0.0, "agent-leg")
    bridge.take_events()
    for i in range(3):
        packet = RtpPacket(
            payload_type=0, sequence=700 + i, timestamp=48_000 + FRAME * i, ssrc=99,
            payload=b"\x55" * FRAME,
        )  # fmt: skip
        bridge.receive(Side.AGENT, packet.to_bytes(), AGENT, 0.02 * (i + 1))
    relayed = sent(bridge)
    assert [(p.sequence, p.timestamp, p.ssrc) for p in relayed] == [
        (700 + i, 48_000 + FRAME * i, CUSTOMER_SSRC) for i in range(3)
    ]
    frames = prompt("PCMU", 2)
    assert play(bridge, frames, 0.08) == [True, True]
    packets = sent(bridge)
    assert [(p.sequence, p.timestamp) for p in packets] == [
        (703, 48_000 + FRAME * 3),
        (704, 48_000 + FRAME * 4),
    ]
    assert {p.ssrc for p in packets} == {CUSTOMER_SSRC}
    assert [p.marker for p in packets] == [True, False]


def test_audio_relayed_after_a_prompt_carries_on_its_stream_with_a_marker() -> None:
    bridge = with_agent()
    play(bridge, prompt("PCMU", 2), 0.0)
    last = sent(bridge)[-1]
    bridge.connect(0.04, "agent-leg")
    packet = RtpPacket(payload_type=0, sequence=9, timestamp=123_456, ssrc=42, payload=bytes(FRAME))
    bridge.receive(Side.AGENT, packet.to_bytes(), AGENT, 0.04)
    [relayed] = sent(bridge)
    assert relayed.ssrc == CUSTOMER_SSRC
    assert relayed.sequence == (last.sequence + 1) & 0xFFFF
    assert relayed.timestamp == last.timestamp + FRAME  # 20 ms after the last prompt frame
    assert relayed.marker


def test_sequence_and_timestamp_wrap_around() -> None:
    bridge = with_agent()
    bridge.connect(0.0, "agent-leg")
    packet = RtpPacket(
        payload_type=0, sequence=0xFFFF, timestamp=0xFFFFFFFF - 80, ssrc=5, payload=bytes(FRAME)
    )
    bridge.receive(Side.AGENT, packet.to_bytes(), AGENT, 0.02)
    sent(bridge)
    play(bridge, prompt("PCMU", 1), 0.04)
    [out] = sent(bridge)
    assert (out.sequence, out.timestamp) == (0, FRAME - 81)


def test_the_rtcp_sender_report_counts_the_prompt() -> None:
    bridge = customer_only()
    play(bridge, prompt("PCMU", 4), 0.0)
    last = sent(bridge)[-1]
    [(side, data, _)] = bridge.rtcp_reports(0.1, b"dialer@test")
    report, _ = parse_compound(data)
    assert side is Side.CUSTOMER
    assert isinstance(report, SenderReport)
    assert (report.ssrc, report.packet_count, report.octet_count) == (CUSTOMER_SSRC, 4, 4 * FRAME)
    assert report.rtp_timestamp == last.timestamp


def test_nothing_is_sent_without_negotiated_customer_media_or_after_the_end() -> None:
    silent = Bridge(
        "call-2",
        MediaStream("customer", None, timeout=5.0, now=0.0),
        wall=lambda now: 0,
        ssrcs=(AGENT_SSRC, CUSTOMER_SSRC),
    )
    assert silent.prompt_packet(bytes(2 * FRAME), 0.0, first=True) is False
    assert silent.take_datagrams() == []
    ended = customer_only()
    ended.finish()
    assert ended.prompt_packet(bytes(2 * FRAME), 0.0, first=True) is False
    assert ended.take_datagrams() == []
