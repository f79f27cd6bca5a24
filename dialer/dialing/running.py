"""Every campaign of this node dialing for as long as the service runs.

``dialer serve`` runs one campaign runner per campaign of the config, and
per campaign defined at run time (over the API; kept in the database, so
they are run again after a restart). Each campaign is created in the lead
store if it is new (its leads come in by ``dialer import-leads`` or the
API's upload), its dialable leads are loaded and claimed through the
database as they are dialed, and a predictive campaign's pacing starts from
its own CDRs of the rolling window, so a restart forgets no abandon. Agents
sign in from the desk page or over MQTT; supervisors pause and resume a
campaign's dialing over the API. On the way out the runners stop dialing,
their pending writes reach the database and the agents' persistent
connections are hung up. Leads imported while the node runs are taken in
every ``LEADS_REFRESH_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cdr.store import CdrStore
from dialer.config import CampaignConfig, ConfigError, campaign_from_table
from dialer.dialing.runner import CampaignRunner
from dialer.dialing.setup import campaign_runner, seed_pacing
from dialer.floor import Floor
from dialer.store.leads import LeadStore
from dialer.store.models import StoreError

log = logging.getLogger(__name__)

LEADS_REFRESH_S = 30.0  # how soon a lead list imported while running is dialed


class Campaigns:
    """The campaigns this node runs; ``define`` adds one while it runs."""

    def __init__(self, floor: Floor, *, refresh_s: float = LEADS_REFRESH_S) -> None:
        self.floor = floor
        self.refresh_s = refresh_s
        self.runners: list[CampaignRunner] = []
        self._store = LeadStore(floor.database)
        self._cdrs = CdrStore(floor.database.sessionmaker, node=floor.config.service.node_name)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._tasks.append(asyncio.create_task(self._refreshing(), name="campaign-leads"))

    async def start(self, campaign: CampaignConfig) -> CampaignRunner:
        now = datetime.now(UTC)
        with contextlib.suppress(StoreError):  # created by an earlier start or an import
            await self._store.create_campaign(
                campaign.id, campaign.name or campaign.id, campaign.mode, campaign.timezone, now=now
            )
        floor = self.floor
        runner = campaign_runner(floor.service.calls, floor.config, campaign, store=self._store)
        leads = await runner.load()
        seeded = await seed_pacing(runner, self._cdrs, int(now.timestamp() * 1000))
        floor.add_runner(runner)
        self.runners.append(runner)
        self._tasks.append(
            asyncio.create_task(runner.run(self._stop), name=f"campaign-{campaign.id}")
        )
        log.info(
            "campaign %s (%s): %d leads to dial, pacing from %d past calls",
            campaign.id, campaign.mode, leads, seeded,
        )  # fmt: skip
        return runner

    async def define(self, settings: Mapping[str, Any], created_by: str) -> CampaignRunner:
        """Check, keep and start a new campaign; ConfigError lists every problem in it,
        StoreError says it exists (in the config or the database)."""
        campaign = campaign_from_table(settings, self.floor.config)
        await self._store.define_campaign(
            campaign.id,
            campaign.name or campaign.id,
            campaign.mode,
            campaign.timezone,
            dict(settings),
            created_by=created_by,
            now=datetime.now(UTC),
        )
        self._add_to_config(campaign)
        return await self.start(campaign)

    async def start_defined(self) -> None:
        """Run again the campaigns defined at run time before this start."""
        for campaign_id, settings in await self._store.campaign_definitions():
            try:
                campaign = campaign_from_table(settings, self.floor.config)
            except ConfigError as exc:
                # Kept as it was given: fixing the config (a trunk, an agent) brings it back.
                log.error("campaign %s is defined but not run: %s", campaign_id, exc)
                continue
            self._add_to_config(campaign)
            await self.start(campaign)

    async def _refreshing(self) -> None:
        """Leads imported while the node runs (``dialer import-leads``) join their campaign."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.refresh_s)
                return
            for runner in list(self.runners):
                try:
                    added = await runner.refresh()
                except Exception:
                    log.exception("campaign %s: new leads could not be read", runner.campaign_id)
                    continue
                if added:
                    log.info("campaign %s: %d new leads", runner.campaign_id, added)

    def _add_to_config(self, campaign: CampaignConfig) -> None:
        config = self.floor.config
        self.floor.config = dataclasses.replace(config, campaigns=(*config.campaigns, campaign))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await task
        for runner in self.runners:
            for agent in runner.agents.values():
                if agent.leg is not None:
                    self.floor.service.calls.disconnect_agent(agent.leg)
            await runner.close()


@contextlib.asynccontextmanager
async def running_campaigns(
    floor: Floor, *, refresh_s: float = LEADS_REFRESH_S
) -> AsyncIterator[Campaigns]:
    campaigns = Campaigns(floor, refresh_s=refresh_s)
    floor.campaigns = campaigns
    try:
        for campaign in floor.config.campaigns:
            await campaigns.start(campaign)
        await campaigns.start_defined()
        yield campaigns
    finally:
        floor.campaigns = None
        await campaigns.stop()
