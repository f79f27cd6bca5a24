"""Preview and manual dialing against SIPp customers and a SIPp desk phone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audio import tone, write_ulaw
from peers import Sipp
from peers.ports import LOOPBACK
from support import AGENT_HZ, CUSTOMER_HZ, Seen, lead, open_now, service_config, until, until_ready

from dialer.agents.state import AgentPolicy, AgentState
from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.campaigns.windows import CampaignError
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.events import CallBridged, CallEnded
from dialer.leads.csv_import import import_leads
from dialer.leads.phone import InvalidNumber
from dialer.store.database import Database
from dialer.store.leads import LeadStore

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
        # Rung per call, the agent has no leg between calls, and no extension to look up:
        # the periodic check must not take that for a lost phone.
        campaign.reconcile(asyncio.get_running_loop().time())
        assert campaign.drift_corrections == 0
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
        await until_ready(seen, campaign, ["a1"], 10)
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


async def test_dispositions_schedule_callbacks_and_add_to_do_not_call(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    desk = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 60))
    customers = sipp_factory(
        "uas_answer_hangup.xml", rtp_file=talk, duration_ms=800, calls=3, timeout=60
    )
    phone = sipp_factory("uas_answer.xml", rtp_file=desk, timeout=60)
    for peer in (customers, phone):
        await peer.start()
    seen = Seen()
    async with (
        Database(f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}") as database,
        running_service(service_config(tmp_path / "recordings")) as service,
    ):
        await database.upgrade()
        store = LeadStore(database)
        now = datetime.now(UTC)
        await store.create_campaign("c1", "Callbacks", "progressive", "UTC", now=now)
        report = import_leads("电话,姓名\r\n13700000001,甲\r\n13700000002,乙\r\n".encode())
        assert await store.import_report("c1", report, now=now) == 2
        service.subscribe(seen)
        campaign = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=CampaignHours(open_now(now), "UTC"),
            rules=RetryRules(),
            route=lambda number: Dial(
                f"sip:{number.lstrip('+')}@{customers.address}", (LOOPBACK, customers.port)
            ),
            policy=AgentPolicy(wrap_up_limit_s=60.0),
            store=store,
        )
        assert await campaign.load() == 2
        stop = asyncio.Event()
        runner = asyncio.create_task(campaign.run(stop))
        await campaign.sign_in("a1", Dial(f"sip:a1@{phone.address}", (LOOPBACK, phone.port)))
        agent = campaign.agents["a1"].agent
        with pytest.raises(ValueError, match="no answered call waiting for a disposition"):
            await campaign.disposition("a1", "sale")

        async def wrapped_up(calls: int) -> str:
            await until(
                seen,
                lambda: (
                    len(campaign.dispositions) + 1 == calls and agent.state is AgentState.WRAP_UP
                ),
                20,
            )
            return campaign.dialed[-1].lead_id or ""

        first = await wrapped_up(1)
        callback_at = datetime.now(UTC) + timedelta(seconds=2)
        with pytest.raises(CampaignError, match="callback"):
            await campaign.disposition("a1", "callback")  # a callback needs its time
        await campaign.disposition("a1", "callback", callback_at=callback_at)
        assert campaign.leads[first].state is LeadState.CALLBACK
        callback = campaign.leads[first].callback
        assert callback is not None and callback.agent_id == "a1"
        second = await wrapped_up(2)
        await campaign.disposition("a1", "dnc")
        third = await wrapped_up(3)  # the callback came due: the same lead, same agent
        redialed_at = campaign.dialed[-1].at
        await campaign.disposition("a1", "sale")
        stop.set()
        await runner
        await campaign.close()
        stored = {lead_id: (await store.lead(lead_id)).state for lead_id in (first, second)}
        on_dnc = await store.is_dnc(campaign.leads[second].phone, "c1")
        attempts = await store.attempts_for(first)
        leg = campaign.agents["a1"].leg
        assert leg is not None
        service.calls.disconnect_agent(leg)
        await seen.first(CallEnded, {leg}, within=10)
    assert third == first and second != first
    assert redialed_at >= callback_at
    assert stored == {first: LeadState.DONE, second: LeadState.DNC}
    assert on_dnc
    assert len(attempts) == 2
    assert [code for _, _, code in campaign.dispositions] == ["callback", "dnc", "sale"]
