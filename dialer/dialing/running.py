"""Every configured campaign dialing on this node, for as long as the service runs.

``dialer serve`` runs one campaign runner per campaign of the config: the
campaign is created in the lead store if it is new (its leads come in by
``dialer import-leads`` or the API's upload), its dialable leads are loaded
and claimed through the database as they are dialed, and a predictive
campaign's pacing starts from its own CDRs of the rolling window, so a
restart forgets no abandon. Agents sign in from the desk page or over MQTT;
supervisors pause and resume a campaign's dialing over the API. On the way
out the runners stop dialing, their pending writes reach the database and
the agents' persistent connections are hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from cdr.store import CdrStore
from dialer.dialing.runner import CampaignRunner
from dialer.dialing.setup import campaign_runner, seed_pacing
from dialer.floor import Floor
from dialer.store.leads import LeadStore
from dialer.store.models import StoreError

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running_campaigns(floor: Floor) -> AsyncIterator[list[CampaignRunner]]:
    config = floor.config
    store = LeadStore(floor.database)
    cdrs = CdrStore(floor.database.sessionmaker, node=config.service.node_name)
    now = datetime.now(UTC)
    stop = asyncio.Event()
    runners: list[CampaignRunner] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for campaign in config.campaigns:
            with contextlib.suppress(StoreError):  # created by an earlier start or an import
                await store.create_campaign(
                    campaign.id, campaign.name or campaign.id, campaign.mode, campaign.timezone,
                    now=now,
                )  # fmt: skip
            runner = campaign_runner(floor.service.calls, config, campaign, store=store)
            leads = await runner.load()
            seeded = await seed_pacing(runner, cdrs, int(now.timestamp() * 1000))
            floor.add_runner(runner)
            runners.append(runner)
            tasks.append(asyncio.create_task(runner.run(stop), name=f"campaign-{campaign.id}"))
            log.info(
                "campaign %s (%s): %d leads to dial, pacing from %d past calls",
                campaign.id, campaign.mode, leads, seeded,
            )  # fmt: skip
        yield runners
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        for runner in runners:
            for agent in runner.agents.values():
                if agent.leg is not None:
                    floor.service.calls.disconnect_agent(agent.leg)
            await runner.close()
