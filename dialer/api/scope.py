"""Which agents a user's views cover.

An agent sees itself only (the routes check that on their own); a
supervisor with a team is that team's lead and sees its agents, their
calls, recordings and quotas; a supervisor without a team (the floor
manager), QA and admins see the whole floor. A call no agent took (it rang
out, or was abandoned) belongs to no team: team leads do not see it.
"""

from __future__ import annotations

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
        }
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
