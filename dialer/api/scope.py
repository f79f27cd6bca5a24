"""Which agents a user's views cover.

An agent sees itself only (the routes check that on their own); a
supervisor with a team is that team's lead and sees its agents, their
calls, recordings and quotas; a supervisor without a team (the floor
manager), QA and admins see the whole floor. A call no agent took (it rang
out, or was abandoned) belongs to no team: team leads do not see it.

A lead sees a campaign any of its team's agents works, and acts on one
(pause, resume, leads, create) only when every agent on it is the team's:
pausing a campaign or feeding it leads moves every agent who works it.
"""

from __future__ import annotations

from collections.abc import Iterable

from dialer.api.auth import Role, User
from dialer.api.context import ApiContext
from dialer.api.errors import ApiError
from dialer.api.messages import register
from dialer.config import Config

register(
    {
        "scope.other_team": {
            "en": "As the lead of team {team} you see that team's agents and calls only.",
            "zh-CN": "您是班组 {team} 的主管，只能查看本班组的坐席和通话。",
        },
        "scope.campaign_see": {
            "en": "As the lead of team {team} you see the campaigns your team's agents work.",
            "zh-CN": "您是班组 {team} 的主管，只能查看本班组坐席参与的外呼任务。",
        },
        "scope.campaign_run": {
            "en": "As the lead of team {team} you run campaigns only your team's agents work.",
            "zh-CN": "您是班组 {team} 的主管，只能操作仅由本班组坐席参与的外呼任务。",
        },
    }
)


def team_agents(ctx: ApiContext, user: User) -> frozenset[str] | None:
    """The agents a team lead sees; None for everyone who sees the whole floor."""
    return team_in(ctx.floor.config, user)


def team_in(config: Config, user: User) -> frozenset[str] | None:
    """``team_agents`` for a floor configured by ``config``."""
    if user.role is not Role.SUPERVISOR or user.team is None:
        return None
    return frozenset(a.id for a in config.agents if a.team == user.team)


def require_in_team(ctx: ApiContext, user: User, agent: str | None) -> None:
    """403 naming the lead's team if ``agent`` (None: no agent) is not in it."""
    team = team_agents(ctx, user)
    if team is not None and (agent is None or agent not in team):
        raise ApiError(
            403,
            "forbidden",
            "scope.other_team",
            [f"agent {agent or '(none)'} is not in team {user.team}"],
            team=user.team,
        )


def sees_campaign(ctx: ApiContext, user: User, agents: Iterable[str]) -> bool:
    """Whether ``user`` sees a campaign worked by ``agents``: a lead, if one is the team's."""
    team = team_agents(ctx, user)
    return team is None or not team.isdisjoint(agents)


def require_campaign(
    ctx: ApiContext, user: User, campaign: str, agents: Iterable[str], *, act: bool
) -> None:
    """403 naming the lead's team unless it may see (``act``: run) the campaign."""
    team = team_agents(ctx, user)
    if team is None:
        return
    worked = frozenset(agents)
    outside = sorted(worked - team)
    if act and outside:
        details = [f"campaign {campaign}: agents {', '.join(outside)} are not in team {user.team}"]
    elif not act and team.isdisjoint(worked):
        details = [f"campaign {campaign}: none of its agents is in team {user.team}"]
    else:
        return
    key = "scope.campaign_run" if act else "scope.campaign_see"
    raise ApiError(403, "forbidden", key, details, team=user.team)
