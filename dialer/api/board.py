"""The supervisors' wallboard: the floor at a glance, in one request.

Agents by state with the time they entered it (the desk tracker follows the
event stream), the calls open now and the answered customers waiting for an
agent (the predictive pacer's last count), today's abandon rate of each
campaign against its cap (from the CDRs), and each team's effective calls
against its target (the live quota counters). The ``floor`` server-sent
event carries the same body. A team lead's board is its team's: its agents,
the campaigns they work, the calls they are on.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from dialer.api.auth import Role, User, require
from dialer.api.campaigns import abandon_rate, calls_today
from dialer.api.context import ApiContext, context
from dialer.api.errors import error_responses
from dialer.api.scope import team_agents
from dialer.dialing.runner import FloorAgent

__all__ = ["AgentTile", "CampaignTile", "FloorBoard", "TeamQuota", "floor_board", "router"]

router = APIRouter(prefix="/api/v1", tags=["floor"])

EFFECTIVE = "effective_calls"


class AgentTile(BaseModel):
    agent_id: str
    name: str
    team: str | None
    state: str = Field(description="signed_out, connecting, ready, reserved, talking, ...")
    reason: str | None = Field(description="the pause reason code while paused")
    since_ms: int | None = Field(description="UTC ms of the last state change, if seen")
    campaign: str | None


class CampaignTile(BaseModel):
    id: str
    abandon_rate_today: float
    abandon_cap: float


class TeamQuota(BaseModel):
    team: str
    agents: int
    effective_calls: float
    target: float
    percent: float


class FloorBoard(BaseModel):
    agents: list[AgentTile]
    calls_waiting: int
    calls_in_progress: int
    campaigns: list[CampaignTile]
    quota_by_team: list[TeamQuota]


async def floor_board(ctx: ApiContext, user: User | None = None) -> FloorBoard:
    """The wallboard's body as the floor stands now (a team lead's: its team's agents)."""
    floor = ctx.floor
    config = floor.config
    team = team_agents(ctx, user) if user is not None else None
    if team is not None:
        config = dataclasses.replace(config, agents=tuple(a for a in config.agents if a.id in team))
    working: dict[str, tuple[str, FloorAgent]] = {}
    for runner in floor.runners:
        for agent_id, signed_in in runner.agents.items():
            working[agent_id] = (runner.campaign_id, signed_in)
    tiles = []
    for agent in config.agents:
        campaign: str | None = None
        desk: FloorAgent | None = None
        if agent.id in working:
            campaign, desk = working[agent.id]
        paused = desk.agent.pause_reason if desk is not None else None
        tiles.append(
            AgentTile(
                agent_id=agent.id,
                name=agent.name or agent.id,
                team=agent.team,
                state=desk.agent.state.value if desk is not None else "signed_out",
                reason=paused.code if paused is not None else None,
                since_ms=ctx.desks.since_ms.get(agent.id),
                campaign=campaign,
            )
        )
    # A lead's: the campaigns its agents work, and the calls they are on.
    seen = {c.id for c in config.campaigns if team is None or not team.isdisjoint(c.agents)}
    today = await calls_today(ctx, None)
    counters = floor.quotas.counters
    day = counters.policy.periods.day_of(ctx.now_ms())
    teams: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for agent in config.agents:
        if agent.team is None:
            continue
        progress = counters.progress(agent.id, day)
        teams[agent.team].append(
            (progress.counts.get(EFFECTIVE, 0.0), progress.targets.get(EFFECTIVE, 0.0))
        )
    return FloorBoard(
        agents=tiles,
        calls_waiting=sum(
            runner.last_decision.waiting
            for runner in floor.runners
            if runner.last_decision is not None and runner.campaign_id in seen
        ),
        calls_in_progress=sum(
            1
            for call_id in floor.records.collector.open_calls()
            if team is None or ctx.desks.agent_of(call_id) in team
        ),
        campaigns=[
            CampaignTile(
                id=campaign.id,
                abandon_rate_today=abandon_rate(*today.get(campaign.id, (0, 0, 0))[1:]),
                abandon_cap=campaign.abandon_cap,
            )
            for campaign in config.campaigns
            if campaign.id in seen
        ],
        quota_by_team=[
            TeamQuota(
                team=team,
                agents=len(members),
                effective_calls=sum(done for done, _ in members),
                target=sum(target for _, target in members),
                percent=_percent(members),
            )
            for team, members in sorted(teams.items())
        ],
    )


def _percent(members: list[tuple[float, float]]) -> float:
    done = sum(count for count, _ in members)
    target = sum(goal for _, goal in members)
    return 100.0 if target <= 0 else round(100 * done / target, 1)


Ctx = Annotated[ApiContext, Depends(context)]
Manager = Annotated[User, Depends(require(Role.SUPERVISOR, Role.ADMIN))]


@router.get("/floor", response_model=FloorBoard, responses=error_responses(401, 403))
async def get_floor(ctx: Ctx, user: Manager) -> FloorBoard:
    """The wallboard: agents by state, calls, abandon rates, quota by team."""
    return await floor_board(ctx, user)
