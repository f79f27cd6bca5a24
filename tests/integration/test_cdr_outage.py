"""PostgreSQL stopped for a minute while calls go on: no CDR lost, none written twice.

A real PostgreSQL, stopped with ``pg_ctl stop`` and started again on the same
data directory; real calls (SIPp customers and a SIPp desk phone) keep
ending during the outage, so their records go through the journal.
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
from support import AGENT_HZ, CUSTOMER_HZ, floor_config, lead, open_now, settled

from cdr.sink import SinkState
from cdr.store import CdrStore
from dialer.agents.state import AgentPolicy
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import RetryRules
from dialer.dialing.runner import CampaignRunner
from dialer.floor import Floor, running_floor
from dialer.records import journal_path

pytestmark = pytest.mark.integration

OUTAGE_S = 60.0


async def finished_at_least(floor: Floor, count: int, within: float) -> None:
    async with asyncio.timeout(within):
        await floor.records.wait_finished(count)


async def test_a_minute_without_the_database_loses_and_duplicates_no_cdr(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    customers = sipp_factory(
        "uas_answer_hangup.xml",
        rtp_file=write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 5)),
        duration_ms=1000,
        calls=500,
        timeout=300,
    )
    desk = sipp_factory(
        "uas_answer.xml",
        rtp_file=write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 200)),
        calls=1,
        timeout=300,
    )
    for peer in (customers, desk):
        await peer.start()
    async with PostgresServer() as postgres:
        url = await postgres.create_database("floor")
        config = floor_config(tmp_path, url)
        async with running_floor(config) as floor:
            campaign = CampaignRunner(
                floor.service.calls,
                campaign_id="c1",
                hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
                rules=RetryRules(),
                route=lambda number: Dial(
                    f"sip:{number.lstrip('+')}@{customers.address}", (LOOPBACK, customers.port)
                ),
                ring_timeout_s=15.0,
                policy=AgentPolicy(wrap_up_limit_s=0.0),
            )
            floor.add_runner(campaign)
            campaign.add_leads([lead(f"L{n}", f"+86138{n:08d}") for n in range(400)])
            stop = asyncio.Event()
            runner = asyncio.create_task(campaign.run(stop))
            await campaign.sign_in("a1", Dial(f"sip:a1@{desk.address}", (LOOPBACK, desk.port)))
            await finished_at_least(floor, 3, 60)

            await postgres.stop()
            down_at = asyncio.get_running_loop().time()
            before_outage = floor.records.finished
            await finished_at_least(floor, before_outage + 5, 30)
            await asyncio.sleep(max(0.0, OUTAGE_S - (asyncio.get_running_loop().time() - down_at)))
            during = floor.records.finished - before_outage
            sink = floor.records.sink
            assert sink.state is SinkState.JOURNALLING
            assert sink.backlog >= 5, sink.backlog  # finished while away: in the journal
            await postgres.start()

            await finished_at_least(floor, floor.records.finished + 3, 60)
            stop.set()
            await runner
            for call in {d.call_id for d in campaign.dialed}:
                floor.service.calls.hangup(call)
            await settled(floor, within=90)
            assert floor.records.sink.state is SinkState.CONNECTED
            assert floor.records.sink.backlog == 0
            replay = sink.last_replay
            assert replay is not None and replay.replayed >= during, (replay, during)

            store = CdrStore(floor.database.sessionmaker)
            rows = [r async for r in store.search(0, 2**62)]
            async with floor.database.session() as session:
                raw = (await session.execute(text("SELECT call_id FROM cdrs"))).scalars().all()
            finished = floor.records.finished
            dialed = {d.call_id for d in campaign.dialed}
            for floor_desk in campaign.agents.values():
                if floor_desk.leg is not None:
                    floor.service.calls.disconnect_agent(floor_desk.leg)
    assert max(Counter(raw).values()) == 1  # never written twice
    assert {r.call_id for r in rows} == dialed  # never lost: every call placed has its row
    assert len(rows) == finished == len(dialed)
    assert during >= 5
    text_left = journal_path(config).read_text() if journal_path(config).exists() else ""
    assert text_left == "", "the journal is empty once replayed"
