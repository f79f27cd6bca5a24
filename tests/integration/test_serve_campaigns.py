"""``dialer serve`` runs every configured campaign: leads from the database, dialed once.

The floor and its campaigns start as ``serve`` starts them; the lead list was
imported before. An agent signs in, the SIPp customers are dialed through
the configured trunk and answer; a second list imported while the node
runs is taken in and dialed too; every lead ends done in the database, each
dialed once. A second start of the same node finds nothing left to dial,
and leaving hangs up the agent's persistent connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audio import tone, write_ulaw
from peers import Sipp
from peers.ports import LOOPBACK
from sqlalchemy import text
from support import AGENT_HZ, CUSTOMER_HZ, Seen, floor_config, open_now, settled, until

from dialer.calls.manager import Dial
from dialer.campaigns.recycling import LeadState
from dialer.config import (
    AgentConfig,
    AgentPolicyConfig,
    CampaignConfig,
    Config,
    PhoneConfig,
    TrunkConfig,
)
from dialer.dialing.running import running_campaigns
from dialer.floor import running_floor
from dialer.leads.csv_import import import_leads
from dialer.store.database import Database
from dialer.store.leads import LeadStore

pytestmark = pytest.mark.integration

LEADS = 6
LATE = 2  # imported while the node runs


def config(tmp_path: Path, trunk_port: int) -> Config:
    base = floor_config(tmp_path)
    return dataclasses.replace(
        base,
        phones=(*base.phones, PhoneConfig("1001", "pw-1001")),
        trunks=(TrunkConfig("gw", LOOPBACK, trunk_port),),
        agents=(AgentConfig("a1", "1001"),),
        agent_policy=AgentPolicyConfig(wrap_up_limit_s=0.0),  # no results to wait for
        campaigns=(
            CampaignConfig(
                "spring",
                "progressive",
                name="春季回访",
                trunks=("gw",),
                agents=("a1",),
                timezone="UTC",
                windows=open_now(datetime.now(UTC)),
                ring_timeout_s=15.0,
            ),
        ),
    )


async def test_serve_dials_the_imported_list_once_and_a_restart_finds_it_done(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    customers = sipp_factory(
        "uas_answer_hangup.xml",
        rtp_file=write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 2)),
        duration_ms=300,
        calls=LEADS + LATE,
        timeout=120,
    )
    desk = sipp_factory(
        "uas_answer.xml",
        rtp_file=write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 60)),
        calls=1,
        timeout=120,
    )
    for peer in (customers, desk):
        await peer.start()
    cfg = config(tmp_path, customers.port)
    rows = ["电话,姓名"] + [f"1370000{n:04d},客户{n}" for n in range(LEADS)]
    async with Database(cfg.database.url) as database:
        await database.upgrade()
        store = LeadStore(database)
        await store.create_campaign(
            "spring", "春季回访", "progressive", "UTC", now=datetime.now(UTC)
        )
        report = import_leads(("\r\n".join(rows) + "\r\n").encode())
        assert await store.import_report("spring", report, now=datetime.now(UTC)) == LEADS

    seen = Seen()
    async with (
        running_floor(cfg) as floor,
        running_campaigns(floor, refresh_s=0.5) as campaigns,
    ):
        floor.service.subscribe(seen)
        [runner] = campaigns.runners
        assert floor.runners == [runner]
        assert len(runner.leads) == LEADS  # loaded from the database
        await runner.sign_in("a1", Dial(f"sip:a1@{desk.address}", (LOOPBACK, desk.port)))
        await until(
            seen,
            lambda: all(lead.state is LeadState.DONE for lead in runner.leads.values()),
            60,
        )
        # A list imported while the node runs (as `dialer import-leads` does) is dialed too.
        late = ["电话", *(f"1370000{n:04d}" for n in range(LEADS, LEADS + LATE))]
        late_report = import_leads(("\r\n".join(late) + "\r\n").encode())
        imported = await LeadStore(floor.database).import_report(
            "spring", late_report, now=datetime.now(UTC)
        )
        assert imported == LATE
        await until(
            seen,
            lambda: (
                len(runner.leads) == LEADS + LATE
                and all(lead.state is LeadState.DONE for lead in runner.leads.values())
            ),
            60,
        )
        leg = runner.agents["a1"].leg
        assert leg is not None
        await settled(floor)
    assert leg not in floor.service.calls.agent_legs  # hung up on the way out
    desk_result = await desk.wait(timeout=15)
    assert desk_result.ok, desk_result.describe()  # the desk phone got its BYE

    async with Database(cfg.database.url) as check, check.session() as session:
        attempts = (await session.execute(text("SELECT lead_id FROM dial_attempts"))).all()
        grouped = await session.execute(text("SELECT state, count(*) FROM leads GROUP BY state"))
        states = {str(state): int(count) for state, count in grouped.all()}
        cdrs = (await session.execute(text("SELECT count(*) FROM cdrs"))).scalar_one()
    assert set(Counter(lead for (lead,) in attempts).values()) == {1}
    assert len(attempts) == LEADS + LATE
    assert states == {"done": LEADS + LATE}
    assert cdrs >= LEADS + LATE  # every customer call has its CDR (and the desk leg its own)

    async with running_floor(cfg) as floor, running_campaigns(floor) as campaigns:
        [again] = campaigns.runners
        assert again.leads == {}  # nothing left to dial after a restart
        await asyncio.sleep(0.3)
        assert again.dialed == []
