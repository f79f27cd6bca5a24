"""CDRs of real calls: SIPp customers, a baresip desk phone, the whole floor wired.

The wire (tshark on the service's SIP port) is the witness for talk time; the
database row is what is checked, not the events.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audio import tone, write_ulaw, write_wav
from peers import Baresip, Sipp
from peers.ports import LOOPBACK
from peers.tshark import sip_capture, sip_frames
from support import (
    AGENT_HZ,
    CUSTOMER_HZ,
    EXTENSION,
    Seen,
    floor_config,
    lead,
    open_now,
    registered_baresip,
    settled,
    until,
)

from cdr.record import Outcome
from cdr.store import CdrStore
from dialer.agents.state import AgentPolicy, AgentState
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.dialing.runner import CampaignRunner
from dialer.floor import running_floor

pytestmark = pytest.mark.integration


async def test_talk_time_in_the_cdr_is_the_wire_truth_within_20_ms(
    tmp_path: Path, sipp_factory: Callable[..., Sipp], baresip_factory: Callable[..., Baresip]
) -> None:
    customer = sipp_factory(
        "uas_answer_hangup.xml",
        rtp_file=write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10)),
        duration_ms=3000,
        timeout=60,
    )
    busy = sipp_factory("uas_reject.xml", keys={"status": "486", "cause": "17"})
    for peer in (customer, busy):
        await peer.start()
    routes = {"+8613800000001": customer, "+8613800000002": busy}
    seen = Seen()
    async with running_floor(floor_config(tmp_path)) as floor:
        floor.service.subscribe(seen)
        host, port = floor.service.sip_address
        phone, desk = await registered_baresip(
            floor.service, baresip_factory, write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 30))
        )
        campaign = CampaignRunner(
            floor.service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
            rules=RetryRules(),
            route=lambda number: Dial(
                f"sip:{number.lstrip('+')}@{routes[number].address}",
                (LOOPBACK, routes[number].port),
            ),
            ring_timeout_s=15.0,
            policy=AgentPolicy(wrap_up_limit_s=5.0),
        )
        floor.add_runner(campaign)
        capture = sip_capture(tmp_path, port)
        await capture.start(probe_to=(host, port))
        async with capture:
            stop = asyncio.Event()
            runner = asyncio.create_task(campaign.run(stop))
            await campaign.sign_in("a1", desk, extension=EXTENSION)
            campaign.add_leads([lead("L1", "+8613800000001"), lead("L2", "+8613800000002")])
            # The busy lead may go first; the answered one ends in wrap-up either way.
            agent = campaign.agents["a1"].agent
            await until(seen, lambda: agent.state is AgentState.WRAP_UP, 40)
            await asyncio.sleep(0.3)  # the agent takes a moment to choose the result
            await campaign.disposition("a1", "sale")
            await until(
                seen,
                lambda: all(
                    campaign.leads[i].state not in (LeadState.NEW, LeadState.IN_PROGRESS)
                    for i in ("L1", "L2")
                ),
                40,
            )
            await settled(floor)
            stop.set()
            await runner
            for desk_floor in campaign.agents.values():
                if desk_floor.leg is not None:
                    floor.service.calls.disconnect_agent(desk_floor.leg)
            await asyncio.sleep(0.3)
        await phone.stop()
        store = CdrStore(floor.database.sessionmaker)
        rows = {r.lead_id: r for r in [r async for r in store.search(0, 2**62)]}
    assert set(rows) == {"L1", "L2"}
    answered, rejected = rows["L1"], rows["L2"]
    assert (rejected.outcome, rejected.sip_status, rejected.q850_cause) == (Outcome.BUSY, 486, 17)
    assert rejected.talk_ms == 0 and rejected.bridged_at_ms is None and not rejected.abandoned

    frames = sip_frames(capture.frames)
    ok = [
        f.time
        for f in frames
        if f.call_id == answered.call_id and f.status == 200 and f.cseq_method == "INVITE"
    ]
    bye = [f.time for f in frames if f.call_id == answered.call_id and f.method == "BYE"]
    assert ok and bye, frames
    wire_talk_ms = (min(bye) - min(ok)) * 1000
    assert abs(answered.talk_ms - wire_talk_ms) <= 20, (answered.talk_ms, wire_talk_ms)
    assert 2800 < answered.talk_ms < 4000
    assert (answered.outcome, answered.hangup_by, answered.agent) == (
        Outcome.ANSWERED,
        "customer",
        "a1",
    )
    assert (answered.campaign, answered.disposition, answered.mode) == ("c1", "sale", "progressive")
    assert answered.wrap_up_ms is not None and 250 <= answered.wrap_up_ms < 5000
    assert not answered.effective  # 3 s is under the default rule's 30 s
    assert answered.effective_rule == "default@1"
    recording = answered.recording
    assert recording is not None
    content = await asyncio.to_thread(Path(recording.path).read_bytes)
    assert hashlib.sha256(content).hexdigest() == recording.sha256
    assert abs(recording.duration_ms - answered.talk_ms) < 250
