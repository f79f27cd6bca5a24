"""A predictive campaign against SIPp customers of every kind, with a baresip and a SIPp agent.

Today already has 100 live answers and no abandons (seeded into the pacing
controller as past CDRs), so 3 abandons are allowed today under the 3 % cap
and the controller may dial ahead. Two customers answer after both agents
stepped away: no agent is free within 2 s, so each hears the campaign's
message and is released — two abandons, leaving under the two-abandon
reserve, so the controller must fall back to progressive dialing for the
rest of the day. Then the agents come back and the rest of the list is
dialed: two customers answer and talk, one is busy, one is an invalid
number, one rings out, one plays a recorded announcement in 183 Session
Progress and one plays SIT tones.

The wire (tshark on the abandoned customers' media ports, decoded with a
G.711 decoder of the test's own) is the witness that the message was heard.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audio import tone, write_ulaw, write_wav
from peers import Baresip, Sipp
from peers.ports import LOOPBACK
from peers.tshark import Capture, Frame
from support import (
    AGENT_HZ,
    CUSTOMER_HZ,
    EXTENSION,
    Seen,
    lead,
    open_now,
    peer_missing,
    registered_baresip,
    service_config,
    until,
    until_dialed_out,
    until_ready,
    wind_down,
)

from cdr.record import CallRecord, Outcome
from dialer.app import Service, running_service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.dialing.pacing import PacingSettings
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.dialing.setup import DEFAULT_ABANDON_MESSAGE
from dialer.events import (
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    EarlyMediaScreened,
    HangupBy,
    PacingDecided,
)
from dialer.media.wav import read_prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))

import build as corpus

pytestmark = pytest.mark.integration

SEEDED_LIVE = 100
CAP = 0.03
RING_TIMEOUT_S = 15.0
FRAME_OCTETS = 320  # 20 ms of 16-bit audio at 8 kHz


def _past_calls(now: datetime) -> list[CallRecord]:
    """Today's calls so far: 100 live answers that reached an agent, 100 rang out."""
    at = round(now.timestamp() * 1000) - 1000
    answered = [
        CallRecord(
            call_id=f"past-live-{n}",
            campaign="c1",
            created_at_ms=at - 9000,
            answered_at_ms=at - 4000,
            bridged_at_ms=at - 3990,
            ended_at_ms=at,
            ring_ms=5000,
            talk_ms=120_000,
            outcome=Outcome.ANSWERED,
        )
        for n in range(SEEDED_LIVE)
    ]
    rang_out = [
        CallRecord(
            call_id=f"past-ring-{n}",
            campaign="c1",
            created_at_ms=at - 31_000,
            ended_at_ms=at - 1000,
            ring_ms=30_000,
            outcome=Outcome.NO_ANSWER,
        )
        for n in range(SEEDED_LIVE)
    ]
    return answered + rang_out


def _predictive(
    service: Service, route: Callable[[str], Dial], now: datetime, message: bytes
) -> CampaignRunner:
    """The campaign under test: predictive, screening early media, today's history seeded."""
    campaign = CampaignRunner(
        service.calls,
        campaign_id="c1",
        hours=CampaignHours(open_now(now), "UTC"),
        rules=RetryRules(max_attempts=3),
        route=route,
        ring_timeout_s=RING_TIMEOUT_S,
        mode=DialMode.PREDICTIVE,
        pacing=PacingSettings(abandon_cap=CAP),
        abandon_message=message,
        screen_early_media=True,
    )
    assert campaign.pacing is not None
    assert campaign.pacing.seed_from(_past_calls(now)) == 2 * SEEDED_LIVE
    return campaign


def _announcement() -> bytes:
    """A carrier's powered-off announcement, spoken by espeak-ng, looped with a pause."""
    spoken = corpus.speak(corpus.Speech("cmn", 160, corpus.CHINESE[0]))
    wire: bytes = corpus.to_wire(spoken + corpus.silence(0.5), "ulaw")
    return wire


def _sit() -> bytes:
    """The ITU special-information tone (950/1400/1800 Hz) then a second of silence."""
    itu = next(sit for sit in corpus.SITS if sit.name == "itu")
    audio: list[float] = []
    for hz, seconds in itu.segments:
        audio += corpus.tone([hz], seconds, -24.0)
    wire: bytes = corpus.to_wire(audio + corpus.silence(1.0), "ulaw")
    return wire


def _ulaw_to_linear(octet: int) -> int:
    """G.711 μ-law expansion, written out here so the witness is not the code under test."""
    octet = ~octet & 0xFF
    exponent = (octet >> 4) & 0x07
    magnitude = ((((octet & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -magnitude if octet & 0x80 else magnitude


def _heard(frames: Sequence[Frame], message: bytes) -> float:
    """SNR in dB of the message against what reached the customer, from its first packet."""
    start = next(
        (i for i, f in enumerate(frames) if f.values[1] in ("1", "True")), None
    )  # the marker bit opens our stream
    assert start is not None, "no RTP packet with the marker bit reached the customer"
    count = math.ceil(len(message) / FRAME_OCTETS)
    payloads = [bytes.fromhex(f.values[2].replace(":", "")) for f in frames[start : start + count]]
    received = [_ulaw_to_linear(octet) for payload in payloads for octet in payload]
    sent = memoryview(message).cast("h").tolist()
    assert len(received) >= len(sent), (
        f"{len(received)} of the message's {len(sent)} samples reached the customer"
    )
    signal = sum(x * x for x in sent)
    noise = sum((x - y) ** 2 for x, y in zip(sent, received, strict=False))
    return 10 * math.log10(signal / max(noise, 1))


async def test_predictive_dialing_holds_the_cap_screens_early_media_and_plays_the_message(
    tmp_path: Path, sipp_factory: Callable[..., Sipp], baresip_factory: Callable[..., Baresip]
) -> None:
    missing = corpus.missing_tools()
    if missing:
        peer_missing(f"the announcement is spoken by espeak-ng and sox; missing: {missing}")
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 120))
    announcement = write_ulaw(tmp_path / "announcement.ul", _announcement())
    sit = write_ulaw(tmp_path / "sit.ul", _sit())
    # The two who answer after the agents stepped away: 3 s of ringing, then they wait.
    abandoning = {
        "+8613700000001": sipp_factory("uas_ring_answer.xml", duration_ms=3000, timeout=60),
        "+8613700000002": sipp_factory("uas_ring_answer.xml", duration_ms=3000, timeout=60),
    }
    rest = {
        "+8613700000003": sipp_factory(
            "uas_answer_hangup.xml", rtp_file=talk, duration_ms=3000, timeout=90
        ),
        "+8613700000004": sipp_factory(
            "uas_answer_hangup.xml", rtp_file=talk, duration_ms=3000, timeout=90
        ),
        "+8613700000005": sipp_factory("uas_reject.xml", keys={"status": "486", "cause": "17"}),
        "+8613700000006": sipp_factory("uas_reject.xml", keys={"status": "404", "cause": "1"}),
        "+8613700000007": sipp_factory("uas_ring_until_cancel.xml", timeout=90),
        "+8613700000008": sipp_factory(
            "uas_early_media_until_cancel.xml", rtp_file=announcement, timeout=90
        ),
        "+8613700000009": sipp_factory(
            "uas_early_media_until_cancel.xml", rtp_file=sit, timeout=90
        ),
    }
    peers = abandoning | rest
    phone = sipp_factory("uas_answer.xml", rtp_file=desk, calls=1, timeout=120)
    ports = [peer.media_port for peer in abandoning.values()]
    capture = Capture(
        tmp_path,
        " or ".join(f"udp dst port {port}" for port in ports),
        ("rtp.ssrc", "rtp.marker", "rtp.payload"),
        decode_as=[f"udp.port=={port},rtp" for port in ports],
    )
    await capture.start(probe_to=(LOOPBACK, ports[0]))
    for peer in [*peers.values(), phone]:
        await peer.start()

    def route(number: str) -> Dial:
        peer = peers[number]
        return Dial(f"sip:{number.lstrip('+')}@{peer.address}", (LOOPBACK, peer.port))

    message = read_prompt(DEFAULT_ABANDON_MESSAGE)
    now = datetime.now(UTC)
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        campaign = _predictive(service, route, now, message)
        pacing = campaign.pacing
        assert pacing is not None
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        baresip, desk_phone = await registered_baresip(
            service, baresip_factory, write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 120))
        )
        await campaign.sign_in("a1", desk_phone, extension=EXTENSION)
        await campaign.sign_in("a2", Dial(f"sip:a2@{phone.address}", (LOOPBACK, phone.port)))
        await until_ready(seen, campaign, ["a1", "a2"], 15)

        # Phase 1: two customers dialed for the two ready agents, who then step away.
        campaign.add_leads([lead(f"X{n}", number) for n, number in enumerate(abandoning, 1)])
        await until(seen, lambda: len(campaign.dialed) == 2, 10)
        for agent_id in ("a1", "a2"):
            campaign.pause(agent_id, "break")
        await until(seen, lambda: len(campaign.abandoned_calls) == 2, 30)
        abandoned_at = asyncio.get_running_loop().time()

        # Phase 2: the agents are back; the rest of the list.
        for agent_id in ("a1", "a2"):
            campaign.ready(agent_id)
        campaign.add_leads([lead(f"L{n}", number) for n, number in enumerate(rest, 3)])
        await until_dialed_out(seen, campaign, [f"L{n}" for n in range(3, 10)], 90)
        await wind_down(service, campaign, stop, runner)
        await baresip.stop()
    frames = await capture.stop()

    lead_of = {d.call_id: d.lead_id or "" for d in campaign.dialed}
    call_of = {d.lead_id or "": d.call_id for d in campaign.dialed}
    assert sorted(lead_of.values()) == [
        "L3", "L4", "L5", "L6", "L7", "L8", "L9", "X1", "X2"
    ]  # fmt: skip
    assert len(campaign.dialed) == 9  # every lead once

    # The abandon cap held, today and over 30 days, and the controller fell back to
    # progressive dialing once under the reserve.
    today = pacing.tally.today(now.date())
    assert (today.live_answers, today.abandoned) == (SEEDED_LIVE + 4, 2)
    assert today.rate <= CAP
    assert pacing.tally.rolling(now.date()).rate <= CAP
    decisions = [e for e in seen.events if isinstance(e, PacingDecided)]
    assert any(d.mode == "predictive" and d.ready == 2 for d in decisions)
    after = [d for d in decisions if d.mono > abandoned_at and d.working > 0]
    assert after and all((d.mode, d.limit) == ("progressive", "daily_cap") for d in after)
    assert max(d.abandon_rate_today for d in decisions) <= CAP

    # Every abandoned customer heard the whole message, as the wire shows.
    assert sorted(lead_of[c] for c, heard in campaign.abandoned_calls if heard) == ["X1", "X2"]
    for number, peer in abandoning.items():
        to_customer = [f for f in frames if f.destination_port == peer.media_port]
        assert _heard(to_customer, message) >= 30.0, number
    locked_until = now + pacing.settings.lockout - timedelta(minutes=1)
    for lead_id in ("X1", "X2"):
        locked = campaign.leads[lead_id]
        assert locked.state is LeadState.QUEUED
        assert locked.next_attempt_at is not None and locked.next_attempt_at >= locked_until

    # Only live answers with a free agent were bridged; screened calls never were.
    bridged = {lead_of[e.call_id] for e in seen.events if isinstance(e, CallBridged)}
    assert bridged == {"L3", "L4"}
    screened = {lead_of[e.call_id]: e for e in seen.events if isinstance(e, EarlyMediaScreened)}
    assert sorted(screened) == ["L8", "L9"]
    assert (screened["L8"].verdict, screened["L8"].outcome) == (
        "announcement",
        CallOutcome.UNAVAILABLE,
    )
    assert (screened["L9"].verdict, screened["L9"].outcome) == ("sit", CallOutcome.INVALID_NUMBER)
    answered = {e.call_id for e in seen.events if isinstance(e, CallAnswered)}
    ended = {e.call_id: e for e in seen.events if isinstance(e, CallEnded)}
    # Rings are timed on the loop's clock: the wall clock may be stepped or slewed meanwhile.
    assigned = {e.call_id: e.mono for e in seen.events if isinstance(e, CallAssigned)}
    for lead_id in ("L8", "L9"):
        call_id = call_of[lead_id]
        assert call_id not in answered
        assert ended[call_id].mono - assigned[call_id] < RING_TIMEOUT_S
    # The one who never answered was given the full 15 s.
    call_id = call_of["L7"]
    assert ended[call_id].mono - assigned[call_id] >= RING_TIMEOUT_S

    states = {lead_id: c.state for lead_id, c in campaign.leads.items() if lead_id[0] == "L"}
    assert states == {
        "L3": LeadState.DONE,
        "L4": LeadState.DONE,
        "L5": LeadState.QUEUED,  # busy: later
        "L6": LeadState.FAILED,  # invalid number: never again
        "L7": LeadState.QUEUED,  # rang out: later
        "L8": LeadState.QUEUED,  # announcement (powered off): later
        "L9": LeadState.FAILED,  # SIT, vacant: never again
    }


async def test_a_customer_who_hangs_up_waiting_for_an_agent_is_an_abandon_and_locked_out(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 60))
    impatient = sipp_factory(
        "uas_ring_answer_hangup.xml", duration_ms=3000, keys={"talk_ms": "1000"}, timeout=60
    )
    phone = sipp_factory("uas_answer.xml", rtp_file=desk, calls=1, timeout=60)
    for peer in (impatient, phone):
        await peer.start()
    now = datetime.now(UTC)
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        campaign = _predictive(
            service,
            lambda number: Dial(f"sip:{number}@{impatient.address}", (LOOPBACK, impatient.port)),
            now,
            read_prompt(DEFAULT_ABANDON_MESSAGE),
        )
        pacing = campaign.pacing
        assert pacing is not None
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        await campaign.sign_in("a1", Dial(f"sip:a1@{phone.address}", (LOOPBACK, phone.port)))
        await until_ready(seen, campaign, ["a1"], 15)
        campaign.add_leads([lead("X1", "+8613700000010")])
        await until(seen, lambda: len(campaign.dialed) == 1, 10)
        campaign.pause("a1", "break")  # the customer answers to nobody, and hangs up
        await until(seen, lambda: campaign.leads["X1"].state is not LeadState.IN_PROGRESS, 20)
        await wind_down(service, campaign, stop, runner)
    [dialed] = campaign.dialed
    ended = next(e for e in seen.events if isinstance(e, CallEnded) and e.call_id == dialed.call_id)
    assert ended.hangup_by is HangupBy.REMOTE  # the customer, not us
    assert not any(isinstance(e, CallBridged) for e in seen.events)
    assert campaign.abandoned_calls == []  # gone before the message was due
    today = pacing.tally.today(now.date())
    assert (today.live_answers, today.abandoned) == (SEEDED_LIVE + 1, 1)
    locked = campaign.leads["X1"]
    assert locked.state is LeadState.QUEUED
    assert locked.next_attempt_at is not None
    assert locked.next_attempt_at >= now + pacing.settings.lockout - timedelta(minutes=1)
