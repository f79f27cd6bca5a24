"""Quotas (考核指标): today's progress, the end-of-day report, exempt days.

Everything is read from the floor's live counters (``dialer.quotas``), which
count finished CDRs, never a hand-filled sheet. An agent reads only its own
progress; supervisors and admins read anyone's and the day's report (agents,
teams, the floor). An exempt day follows the seeds' rule (up to two a month,
asked before 9:00 on the day, ``quota.exemptions``): an agent may take its
own, a supervisor or an admin grants one to anybody; a refusal says why. An
approved day is written to the quota state at once and published like any
other change of the agent's day. The quota state keeps who approved it, when,
and why.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from dialer.api.auth import Role, User, require
from dialer.api.cdrs import Day
from dialer.api.context import ApiContext, context
from dialer.api.desk import QuotaOut, quota_body
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import register
from dialer.api.scope import require_in_team, team_agents
from quota.exemptions import ExemptionRefusedError
from quota.report import day_report

__all__ = [
    "ExemptionIn",
    "ExemptionOut",
    "ReportOut",
    "ReportRowOut",
    "router",
]

log = logging.getLogger(__name__)

register(
    {
        "quota.own_only": {
            "en": "Agents may only see and ask for their own quota days.",
            "zh-CN": "坐席只能查看和申请自己的考核。",
        },
        "quota.agent_required": {
            "en": "Say whose progress to show: the agent parameter is required.",
            "zh-CN": "请指定坐席：必须提供 agent 参数。",
        },
        "quota.unknown_agent": {
            "en": "There is no agent {agent} on this floor.",
            "zh-CN": "本场地没有坐席 {agent}。",
        },
        "quota.exemption_refused": {
            "en": "The exempt day was refused: {reason}",
            "zh-CN": "免考核日申请被拒绝：{reason}",
        },
    }
)

router = APIRouter(prefix="/api/v1", tags=["quotas"])


class ReportRowOut(BaseModel):
    scope: str = Field(description="agent, team or floor")
    agent: str | None
    team: str | None
    exempt: bool
    counts: dict[str, float]
    targets: dict[str, float]
    shortfall: dict[str, float]
    attainment: dict[str, float]
    overall: float


class ReportOut(BaseModel):
    day: date
    generated_at: datetime
    timezone: str
    rows: list[ReportRowOut]


class ExemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(min_length=1, max_length=64)
    day: Day
    reason: str = Field(min_length=1, max_length=500)


class ExemptionOut(BaseModel):
    agent: str
    day: date
    reason: str
    approved_by: str
    requested_at: datetime
    progress: QuotaOut


Ctx = Annotated[ApiContext, Depends(context)]
Manager = Annotated[User, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
Worker = Annotated[User, Depends(require(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]


def _agent_for(ctx: ApiContext, user: User, asked: str | None) -> str:
    """Whose quota ``user`` reads or asks for: agents only their own, 404 for strangers."""
    if user.role is Role.AGENT:
        if user.agent_id is None or (asked is not None and asked != user.agent_id):
            raise ApiError(403, "forbidden", "quota.own_only")
        return user.agent_id
    if asked is None:
        raise ApiError(422, "invalid_request", "quota.agent_required", ["agent: is required"])
    if asked not in {agent.id for agent in ctx.floor.config.agents}:
        raise ApiError(404, "not_found", "quota.unknown_agent", agent=asked)
    require_in_team(ctx, user, asked)
    return asked


def _today(ctx: ApiContext) -> date:
    return ctx.floor.quotas.counters.policy.periods.day_of(ctx.now_ms())


@router.get(
    "/quotas/progress", response_model=QuotaOut, responses=error_responses(401, 403, 404, 422)
)
async def progress(
    ctx: Ctx,
    user: Worker,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    day: Annotated[Day | None, Query(description="quota day; default today")] = None,
) -> QuotaOut:
    """An agent's targets, counts and shortfall for the day (agents: their own)."""
    who = _agent_for(ctx, user, agent)
    counters = ctx.floor.quotas.counters
    return quota_body(counters.progress(who, day or _today(ctx)), user.locale)


@router.get("/quotas/reports/{day}", response_model=ReportOut, responses=error_responses(401, 403))
async def report(ctx: Ctx, user: Manager, day: Day) -> ReportOut:
    """The day's report as the counters stand now: agents, then teams, then the floor."""
    counters = ctx.floor.quotas.counters
    tz = counters.policy.periods.tz
    built = day_report(counters, day, datetime.fromtimestamp(ctx.now_ms() / 1000, tz))
    team = team_agents(ctx, user)
    rows = [
        row
        for row in built.rows
        if team is None  # the floor's report; a team lead's holds its agents and its team
        or (row.agent is not None and row.agent in team)
        or (row.agent is None and row.team is not None and row.team == user.team)
    ]
    return ReportOut(
        day=built.day,
        generated_at=built.generated_at,
        timezone=built.timezone,
        rows=[
            ReportRowOut(
                scope=row.scope,
                agent=row.agent,
                team=row.team,
                exempt=row.exempt,
                counts=dict(row.counts),
                targets=dict(row.targets),
                shortfall=dict(row.shortfall),
                attainment=dict(row.attainment),
                overall=row.overall,
            )
            for row in rows
        ],
    )


@router.post(
    "/quotas/exemptions",
    status_code=201,
    response_model=ExemptionOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def exempt_day(ctx: Ctx, user: Worker, body: ExemptionIn) -> ExemptionOut:
    """Take a day out of an agent's target (the seeds: 2 a month, asked before 9:00)."""
    who = _agent_for(ctx, user, body.agent)
    quotas = ctx.floor.quotas
    asked_at = datetime.fromtimestamp(ctx.now_ms() / 1000, UTC)
    approver = user.username if user.role is not Role.AGENT else f"{user.username} (own day)"
    try:
        changed = quotas.counters.request_exemption(who, body.day, asked_at, approver, body.reason)
    except ExemptionRefusedError as exc:
        raise ApiError(
            409, "exemption_refused", "quota.exemption_refused", [exc.reason], reason=exc.reason
        ) from None
    log.info("exempt day %s for %s by %s: %s", body.day, who, approver, body.reason)
    for publish in quotas.publishers:
        try:
            publish(changed)
        except Exception:
            log.exception("quota publisher failed for %s", who)
    await quotas.persist()
    exemption = next(e for e in quotas.counters.exemptions if e.agent == who and e.day == body.day)
    return ExemptionOut(
        agent=who,
        day=body.day,
        reason=exemption.reason,
        approved_by=exemption.approved_by,
        requested_at=exemption.requested_at,
        progress=quota_body(changed, user.locale),
    )
