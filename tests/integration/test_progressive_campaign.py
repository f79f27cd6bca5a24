"""A progressive campaign against SIPp customers of every kind and SIPp desk phones.

Customers: one answers and talks, one is busy (486, cause 17), one is an
invalid number (404), one is unavailable (480), one rings until cancelled;
one more lead's window is closed in its time zone. Agents are on persistent
connections; one agent's phone drops mid-shift.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audio import tone, write_ulaw, write_wav
from peers import Baresip, Sipp
from peers.ports import LOOPBACK
from support import (
    AGENT_HZ,
    CUSTOMER_HZ,
    EXTENSION,
    Seen,
    lead,
    open_now,
    registered_baresip,
    service_config,
    until,
    until_dialed_out,
    until_ready,
    wind_down,
)

from dialer.agents.state import AgentPolicy, AgentState
from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.campaigns.trunks import TrunkPool, TrunkSpec
from dialer.dialing.runner import CampaignRunner, DialMode, TrunkAddress
from dialer.events import (
    CallAssigned,
    CallBridged,
    CallEnded,
    PhoneUnregistered,
    RecordingClosed,
)

pytestmark = pytest.mark.integration


async def test_every_lead_ends_in_the_right_state_and_failures_never_reach_an_agent(
    tmp_path: Path, sipp_factory: Callable[..., Sipp], baresip_factory: Callable[..., Baresip]
) -> None:
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 60))
    peers = {
        "+8613800000001": sipp_factory(
            "uas_answer_hangup.xml", rtp_file=talk, duration_ms=1500, timeout=60
        ),
        "+8613800000002": sipp_factory("uas_reject.xml", keys={"status": "486", "cause": "17"}),
        "+8613800000003": sipp_factory("uas_reject.xml", keys={"status": "404", "cause": "1"}),
        "+8613800000004": sipp_factory("uas_reject.xml", keys={"status": "480", "cause": "20"}),
        "+8613800000005": sipp_factory("uas_ring_until_cancel.xml", timeout=60),
    }
    phones = sipp_factory("uas_answer.xml", rtp_file=desk, calls=1, timeout=90)
    desk_wav = write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 60))
    dropping = sipp_factory("uas_answer_hangup.xml", rtp_file=desk, duration_ms=2000, timeout=60)
    for peer in [*peers.values(), phones, dropping]:
        await peer.start()

    def route(number: str) -> Dial:
        peer = peers[number]
        return Dial(f"sip:{number.lstrip('+')}@{peer.address}", (LOOPBACK, peer.port))

    now = datetime.now(UTC)
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        campaign = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(now), "UTC"),
            rules=RetryRules(max_attempts=3),
            route=route,
            ring_timeout_s=15.0,
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        # a3's phone answers the persistent call, then drops it after 2 s.
        a3_phone = Dial(f"sip:a3@{dropping.address}", (LOOPBACK, dropping.port))
        await campaign.sign_in("a3", a3_phone)
        await until_ready(seen, campaign, ["a3"], 10)
        await until(seen, lambda: campaign.agents["a3"].leg is None, 10)
        a3 = campaign.agents["a3"].agent.state
        campaign.add_leads([lead(f"L{n}", number) for n, number in enumerate(peers, 1)])
        # Twelve hours ahead of UTC, this lead's window is closed: it must wait.
        campaign.add_leads([lead("L6", "+8613800000006", timezone="Etc/GMT-12")])
        # a1 is a baresip desk phone registered to the service; a2 a SIPp one.
        baresip, desk_phone = await registered_baresip(service, baresip_factory, desk_wav)
        await campaign.sign_in("a1", desk_phone, extension=EXTENSION)
        await campaign.sign_in("a2", Dial(f"sip:a2@{phones.address}", (LOOPBACK, phones.port)))
        await until_dialed_out(seen, campaign, [f"L{n}" for n in range(1, 6)], 40)
        await wind_down(service, campaign, stop, runner)
        await baresip.stop()

    states = {lead_id: c.state for lead_id, c in campaign.leads.items()}
    assert states == {
        "L1": LeadState.DONE,
        "L2": LeadState.QUEUED,  # busy: redialed later
        "L3": LeadState.FAILED,  # invalid number: never again
        "L4": LeadState.QUEUED,  # unavailable: later
        "L5": LeadState.QUEUED,  # rang 15 s, no answer: later
        "L6": LeadState.NEW,  # window closed in its time zone: waits
    }
    assert campaign.leads["L2"].next_attempt_at is not None
    assert campaign.leads["L2"].next_attempt_at >= now + timedelta(minutes=29)
    dialed = [d.lead_id or "" for d in campaign.dialed]
    assert sorted(dialed) == ["L1", "L2", "L3", "L4", "L5"]  # each once, L6 never
    # Only the live answer reached an agent; the failures were never bridged.
    bridged = {e.call_id for e in seen.events if isinstance(e, CallBridged)}
    lead_of = {d.call_id: d.lead_id for d in campaign.dialed}
    assert {lead_of[c] for c in bridged} == {"L1"}
    assert any(isinstance(e, RecordingClosed) for e in seen.events)
    ring = next(
        e for e in seen.events if isinstance(e, CallEnded) and lead_of.get(e.call_id) == "L5"
    )
    # On the loop's clock: the wall clock may be stepped or slewed meanwhile.
    started = next(
        e.mono for e in seen.events if isinstance(e, CallAssigned) and e.call_id == ring.call_id
    )
    assert ring.mono - started >= 15.0
    # The agent whose phone dropped is paused with the system reason, not ready.
    assert a3 is AgentState.PAUSED
    lost = [e for e in campaign.agent_events if e.agent == "a3" and e.reason == "phone_lost"]
    assert lost
    assert not any(d.agent_id == "a3" for d in campaign.dialed)
    # Both persistent legs carried calls: the baresip phone's and the SIPp one's.
    assert {d.agent_id for d in campaign.dialed} == {"a1", "a2"}


async def test_a_failing_trunk_fails_over_to_the_next_and_do_not_call_is_checked_at_dial_time(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 60))
    primary = sipp_factory("uas_reject.xml", keys={"status": "503", "cause": "34"})
    backup = sipp_factory("uas_answer_hangup.xml", rtp_file=talk, duration_ms=1000, timeout=60)
    phone = sipp_factory("uas_answer.xml", rtp_file=desk, timeout=60)
    for peer in (primary, backup, phone):
        await peer.start()
    pool = TrunkPool(
        [
            TrunkSpec("primary", max_channels=10, max_cps=5, priority=0, strip_country_code=True),
            TrunkSpec(
                "backup",
                max_channels=10,
                max_cps=5,
                priority=1,
                strip_country_code=True,
                caller_ids=("02150000001",),
            ),
        ]
    )
    addresses = {
        "primary": TrunkAddress(LOOPBACK, primary.port),
        "backup": TrunkAddress(LOOPBACK, backup.port),
    }
    dnc = {"+8613900000002"}  # added after the list was imported
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        campaign = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
            rules=RetryRules(),
            trunks=pool,
            trunk_addresses=addresses,
            do_not_call=dnc.__contains__,
            ring_timeout_s=15.0,
        )
        campaign.add_leads([lead("L1", "+8613900000001"), lead("L2", "+8613900000002")])
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        await campaign.sign_in("a1", Dial(f"sip:a1@{phone.address}", (LOOPBACK, phone.port)))
        await until(seen, lambda: any(isinstance(e, CallBridged) for e in seen.events), 20)
        live = next(e for e in seen.events if isinstance(e, CallBridged))
        # The customer sees the backup trunk's caller id in From.
        from_uri = service.endpoint.calls[live.call_id].config.local_uri
        await until(
            seen,
            lambda: (
                campaign.leads["L1"].state is LeadState.DONE
                and campaign.leads["L2"].state is not LeadState.NEW
            ),
            20,
        )
        stop.set()
        await runner
        leg = campaign.agents["a1"].leg
        assert leg is not None
        service.calls.disconnect_agent(leg)
        await seen.first(CallEnded, {leg}, within=10)
    assert from_uri.startswith("sip:02150000001@")
    tries = [(d.lead_id, d.trunk) for d in campaign.dialed]
    assert tries == [("L1", "primary"), ("L1", "backup")]
    assert campaign.leads["L1"].attempts == 1  # the 503 did not burn an attempt
    assert campaign.leads["L2"].state is LeadState.DNC
    health = pool.health()
    assert (health["primary"].failures, health["primary"].in_use) == (1, 0)
    assert (health["backup"].failures, health["backup"].in_use) == (0, 0)
    bridged = [e for e in seen.events if isinstance(e, CallBridged)]
    assert [e.call_id for e in bridged] == [campaign.dialed[1].call_id]


@pytest.mark.parametrize(
    ("mode", "persistent"),
    [(DialMode.PROGRESSIVE, True), (DialMode.PREVIEW, False)],
    ids=["nailed-up", "rung-per-call"],
)
async def test_an_agent_whose_phone_unregisters_is_paused_not_left_ready(
    tmp_path: Path, baresip_factory: Callable[..., Baresip], mode: DialMode, persistent: bool
) -> None:
    desk = write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 30))
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        phone, desk_phone = await registered_baresip(service, baresip_factory, desk)
        campaign = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
            rules=RetryRules(),
            route=lambda number: Dial(f"sip:{number}@{LOOPBACK}", (LOOPBACK, 9)),
            mode=mode,
            policy=AgentPolicy(persistent_connection=persistent),
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        await campaign.sign_in("a1", desk_phone, extension=EXTENSION)
        agent = campaign.agents["a1"].agent
        await until_ready(seen, campaign, ["a1"], 10)
        # The check against the real phone (every few seconds) finds it there: no drift.
        campaign.reconcile(asyncio.get_running_loop().time())
        assert (agent.state, campaign.drift_corrections) == (AgentState.READY, 0)
        if mode is DialMode.PREVIEW:  # a lead waits on the agent's card as the phone goes
            campaign.add_leads([lead("L1", "+8613700000001")])
            held = await campaign.preview_next("a1")
            assert held is not None and agent.state is AgentState.RESERVED
        await phone.stop()  # the phone unregisters (and drops its calls) as it goes
        await until(seen, lambda: agent.state is AgentState.PAUSED, 10)
        campaign.reconcile(asyncio.get_running_loop().time())
        assert campaign.drift_corrections == 0  # the unregistration itself paused it
        stop.set()
        await runner
    if mode is DialMode.PREVIEW:  # the lead went back, neither skipped nor dialed
        assert campaign.agents["a1"].preview is None
        assert campaign.leads["L1"].state is LeadState.NEW
        assert campaign.skips == []
    unregistered = [e for e in seen.events if isinstance(e, PhoneUnregistered)]
    assert [e.extension for e in unregistered] == [EXTENSION]
    assert agent.pause_reason is not None and agent.pause_reason.code == "phone_lost"
    assert campaign.agents["a1"].leg is None
    assert campaign.dialed == []
