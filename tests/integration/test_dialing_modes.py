"""Preview and manual dialing against SIPp customers and a SIPp desk phone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audio import tone, write_ulaw
from peers import Sipp
from peers.ports import LOOPBACK
from support import AGENT_HZ, CUSTOMER_HZ, Seen, lead, open_now, service_config, until

from dialer.agents.state import AgentPolicy, AgentState
from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.events import CallBridged, CallEnded
from dialer.leads.phone import InvalidNumber

pytestmark = pytest.mark.integration


async def test_preview_accept_and_skip_and_manual_dial(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 10))
    customers = sipp_factory(
        "uas_answer_hangup.xml", rtp_file=talk, duration_ms=1000, calls=2, timeout=60
    )
    # Manual and preview work ring the desk phone with each call (per-call connection).
    phone = sipp_factory("uas_answer.xml", rtp_file=desk, calls=2, timeout=60)
    for peer in (customers, phone):
        await peer.start()
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        campaign = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
            rules=RetryRules(),
            route=lambda number: Dial(
                f"sip:{number.lstrip('+')}@{customers.address}", (LOOPBACK, customers.port)
            ),
            mode=DialMode.PREVIEW,
            policy=AgentPolicy(wrap_up_limit_s=0.0, persistent_connection=False),
            do_not_call={"+8613700000009"}.__contains__,
        )
        campaign.add_leads([lead("L1", "+8613700000001"), lead("L2", "+8613700000002")])
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        await campaign.sign_in("a1", Dial(f"sip:a1@{phone.address}", (LOOPBACK, phone.port)))
        agent = campaign.agents["a1"].agent
        campaign.ready("a1")
        states = [agent.state]
        first = await campaign.preview_next("a1")
        states.append(agent.state)
        assert first is not None
        assert states == [AgentState.READY, AgentState.RESERVED]
        await asyncio.sleep(0.5)
        assert campaign.dialed == []  # preview mode never dials on its own
        campaign.skip_preview("a1", "wrong region")
        second = await campaign.preview_next("a1")
        assert second is not None and second.lead_id != first.lead_id
        call_id = await campaign.accept_preview("a1")
        await seen.first(CallBridged, {call_id}, within=10)
        await seen.first(CallEnded, {call_id}, within=10)
        await until(seen, lambda: agent.state is AgentState.READY, 10)
        # Manual dial: normalised, checked against do-not-call, dialed.
        with pytest.raises(InvalidNumber, match="too short"):
            await campaign.manual_dial("a1", "138 0013")
        with pytest.raises(ValueError, match=r"\+8613700000009 is on the do-not-call list"):
            await campaign.manual_dial("a1", "137-0000-0009")
        manual = await campaign.manual_dial("a1", "１３７ ００００ ０００５")  # full-width digits
        await seen.first(CallBridged, {manual}, within=10)
        await seen.first(CallEnded, {manual}, within=10)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert [(s.lead_id, s.reason) for s in campaign.skips] == [(first.lead_id, "wrong region")]
    assert campaign.leads[second.lead_id].state is LeadState.DONE
    assert campaign.leads[first.lead_id].state is LeadState.NEW  # skipped, waits its turn
    assert [(d.lead_id, d.number) for d in campaign.dialed] == [
        (second.lead_id, second.phone),
        (None, "+8613700000005"),
    ]
    assert (await customers.wait(10)).ok
    assert (await phone.wait(10)).ok
