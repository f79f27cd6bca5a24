"""Two service nodes on one real PostgreSQL dial one lead list: every lead exactly once.

Each node is a whole service of its own (its own SIP port, call manager and
campaign runner, its agent pinned to it); the only thing they share is the
database, through which leads are claimed (``FOR UPDATE SKIP LOCKED``).
Predictive nodes claim a lead before they know which agent will take the
call; with no abandon history yet, their pacing dials one call per ready
agent, so every customer is connected and every lead ends done.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audio import tone, write_ulaw
from peers import Sipp
from peers.ports import LOOPBACK
from peers.postgres import PostgresServer
from sqlalchemy import text
from support import AGENT_HZ, CUSTOMER_HZ, Seen, open_now, service_config, until

from dialer.agents.state import AgentPolicy
from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.dialing.setup import DEFAULT_ABANDON_MESSAGE
from dialer.leads.csv_import import import_leads
from dialer.media.wav import read_prompt
from dialer.store.database import Database
from dialer.store.leads import LeadStore

pytestmark = pytest.mark.integration

LEADS = 40


def lead_list() -> bytes:
    rows = ["电话,姓名"] + [f"1390000{n:04d},客户{n}" for n in range(LEADS)]
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8")


@pytest.mark.parametrize("mode", [DialMode.PROGRESSIVE, DialMode.PREDICTIVE])
async def test_two_nodes_sharing_postgresql_never_dial_a_lead_twice(
    tmp_path: Path, sipp_factory: Callable[..., Sipp], mode: DialMode
) -> None:
    customers = sipp_factory(
        "uas_answer_hangup.xml",
        rtp_file=write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 2)),
        duration_ms=300,
        calls=LEADS * 2,
        timeout=120,
    )
    desks = [
        sipp_factory(
            "uas_answer.xml",
            rtp_file=write_ulaw(tmp_path / f"agent{n}.ul", tone(AGENT_HZ, 120)),
            calls=1,
            timeout=120,
        )
        for n in range(2)
    ]
    for peer in (customers, *desks):
        await peer.start()
    async with PostgresServer() as postgres:
        url = await postgres.create_database("shared")
        async with Database(url) as setup:
            await setup.upgrade()
            store = LeadStore(setup)
            now = datetime.now(UTC)
            await store.create_campaign("c1", "Shared list", mode.value, "UTC", now=now)
            assert await store.import_report("c1", import_leads(lead_list()), now=now) == LEADS

        async def node(name: str, desk: Sipp) -> CampaignRunner:
            config = service_config(tmp_path / name)
            async with (
                Database(url) as database,
                running_service(config) as service,
            ):
                seen = Seen()
                service.subscribe(seen)
                runner = CampaignRunner(
                    service.calls,
                    campaign_id="c1",
                    hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
                    rules=RetryRules(),
                    route=lambda number: Dial(
                        f"sip:{number.lstrip('+')}@{customers.address}",
                        (LOOPBACK, customers.port),
                    ),
                    ring_timeout_s=15.0,
                    store=LeadStore(database),
                    node=name,
                    policy=AgentPolicy(wrap_up_limit_s=0.0),
                    mode=mode,
                    abandon_message=read_prompt(DEFAULT_ABANDON_MESSAGE),
                )
                assert await runner.load() == LEADS  # both nodes see the whole list
                stop = asyncio.Event()
                task = asyncio.create_task(runner.run(stop))
                await runner.sign_in(
                    f"agent-{name}", Dial(f"sip:{name}@{desk.address}", (LOOPBACK, desk.port))
                )
                await until(
                    seen,
                    lambda: all(
                        lead.state not in (LeadState.NEW, LeadState.IN_PROGRESS)
                        for lead in runner.leads.values()
                    ),
                    90,
                )
                stop.set()
                await task
                await runner.close()
                for desk_floor in runner.agents.values():
                    if desk_floor.leg is not None:
                        service.calls.disconnect_agent(desk_floor.leg)
                await asyncio.sleep(0.3)
            return runner

        first, second = await asyncio.gather(node("node-a", desks[0]), node("node-b", desks[1]))
        async with Database(url) as check, check.session() as session:
            attempts = (
                await session.execute(text("SELECT lead_id, agent_id FROM dial_attempts"))
            ).all()
            by_state = text("SELECT state, count(*) FROM leads GROUP BY state")
            grouped = await session.execute(by_state)
            states = {str(state): int(count) for state, count in grouped.all()}
    per_lead = Counter(lead for lead, _ in attempts)
    assert len(per_lead) == LEADS, "every lead was dialed"
    assert set(per_lead.values()) == {1}, [lead for lead, n in per_lead.items() if n > 1]
    by_node = Counter(agent for _, agent in attempts)
    assert by_node["agent-node-a"] >= 1 and by_node["agent-node-b"] >= 1, by_node
    assert len(first.dialed) + len(second.dialed) == LEADS
    assert states == {"done": LEADS}
