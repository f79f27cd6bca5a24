"""The hopper: the dialer, not the agent, chooses which leads are rung next.

Order of a pick (so agents cannot cherry-pick, and promises are kept first):

1. callbacks due for this agent, then callbacks due for anyone, earliest first;
2. the rest, drawn from new or follow-up leads, whichever is further behind
   its daily target for this agent (proportionally: 10 of 40 beats 15 of 40);
3. within a category, higher priority first, then the longest-waiting lead.

A lead is only ever returned when it is dialable (new, queued or callback),
due, and inside a calling window in its own zone (else its campaign's).
Every remaining tie is broken by ``lead_id``, so the pick never depends on
the order of the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from dialer.campaigns.recycling import DIALABLE_STATES, Callback, LeadState
from dialer.campaigns.windows import CallingWindows, CampaignError, require_aware, zone


@dataclass(frozen=True, slots=True)
class CampaignHours:
    """A campaign's calling windows and the zone used for leads without one."""

    windows: CallingWindows
    timezone: str

    def __post_init__(self) -> None:
        zone(self.timezone)


@dataclass(frozen=True, slots=True)
class MixTarget:
    """Calls a day per agent: the seeds ask 40 new + 40 follow-up."""

    new: int = 40
    follow_up: int = 40

    def __post_init__(self) -> None:
        for name in ("new", "follow_up"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise CampaignError([f"MixTarget.{name} must be an integer >= 0, got {value!r}"])


@dataclass(frozen=True, slots=True)
class AgentDayCounts:
    """Calls this agent already made today, by category."""

    new: int = 0
    follow_up: int = 0

    def __post_init__(self) -> None:
        for name in ("new", "follow_up"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise CampaignError(
                    [f"AgentDayCounts.{name} must be an integer >= 0, got {value!r}"]
                )


@dataclass(frozen=True, slots=True)
class LeadCandidate:
    lead_id: str
    phone: str
    timezone: str | None  # None: the campaign's zone
    priority: int
    state: LeadState
    next_attempt_at: datetime | None  # None: due since always (a fresh lead)
    attempts: int
    is_follow_up: bool
    callback: Callback | None
    campaign_id: str

    def __post_init__(self) -> None:
        where = f"lead {self.lead_id!r}"
        if not self.lead_id:
            raise CampaignError(["LeadCandidate.lead_id must not be empty"])
        if not self.phone:
            raise CampaignError([f"{where}: phone must not be empty"])
        if self.timezone is not None:
            zone(self.timezone)
        if self.next_attempt_at is not None:
            require_aware(self.next_attempt_at, f"{where}: next_attempt_at")
        if self.attempts < 0:
            raise CampaignError([f"{where}: attempts must be >= 0, got {self.attempts}"])
        # A callback is the CALLBACK state's data; anywhere else it is stale.
        if (self.state is LeadState.CALLBACK) != (self.callback is not None):
            raise CampaignError(
                [
                    f"{where}: state {self.state.value!r} with callback {self.callback!r}; "
                    "a callback goes with the callback state and only with it"
                ]
            )
        if self.callback is not None and self.callback.lead_id != self.lead_id:
            raise CampaignError([f"{where}: callback belongs to lead {self.callback.lead_id!r}"])

    def due_at(self) -> datetime | None:
        if self.callback is not None:
            return self.callback.at
        return self.next_attempt_at


class Hopper:
    """Stateless: ``pick`` is a pure function of its arguments."""

    @staticmethod
    def pick(
        candidates: Iterable[LeadCandidate],
        now: datetime,
        *,
        agent_id: str,
        windows: Mapping[str, CampaignHours],
        mix: MixTarget,
        agent_counts: AgentDayCounts,
        limit: int,
    ) -> list[LeadCandidate]:
        """Up to ``limit`` leads for ``agent_id`` to dial next, best first.

        ``windows`` maps each candidate's campaign_id to its hours; a candidate
        of a campaign missing there is our own misuse and raises.
        """
        require_aware(now, "now")
        if type(limit) is not int or limit < 0:
            raise CampaignError([f"limit must be an integer >= 0, got {limit!r}"])
        seen: set[str] = set()
        mine: list[LeadCandidate] = []
        anyone: list[LeadCandidate] = []
        new: list[LeadCandidate] = []
        follow_up: list[LeadCandidate] = []
        open_cache: dict[tuple[str, str], bool] = {}
        for lead in candidates:
            # Two rows for one lead would dial it twice: refuse the input.
            if lead.lead_id in seen:
                raise CampaignError([f"lead {lead.lead_id!r} appears twice among the candidates"])
            seen.add(lead.lead_id)
            if not _eligible(lead, now, agent_id, windows, open_cache):
                continue
            if lead.callback is not None:
                (mine if lead.callback.agent_id == agent_id else anyone).append(lead)
            else:
                (follow_up if lead.is_follow_up else new).append(lead)

        mine.sort(key=_callback_key)
        anyone.sort(key=_callback_key)
        new.sort(key=_queue_key)
        follow_up.sort(key=_queue_key)
        picked = (mine + anyone)[:limit]
        counts = {
            False: agent_counts.new + sum(not lead.is_follow_up for lead in picked),
            True: agent_counts.follow_up + sum(lead.is_follow_up for lead in picked),
        }
        targets = {False: mix.new, True: mix.follow_up}
        queues = {False: new, True: follow_up}
        heads = {False: 0, True: 0}
        while len(picked) < limit:
            ready = [c for c in (False, True) if heads[c] < len(queues[c])]
            if not ready:
                break
            category = min(
                ready,
                key=lambda c: (
                    _progress(counts[c], targets[c]),
                    _queue_key(queues[c][heads[c]]),
                ),
            )
            picked.append(queues[category][heads[category]])
            heads[category] += 1
            counts[category] += 1
        return picked


def _eligible(
    lead: LeadCandidate,
    now: datetime,
    agent_id: str,
    windows: Mapping[str, CampaignHours],
    open_cache: dict[tuple[str, str], bool],
) -> bool:
    if lead.state not in DIALABLE_STATES:
        return False
    due = lead.due_at()
    if due is not None and due > now:
        return False
    if lead.callback is not None and lead.callback.agent_id not in (None, agent_id):
        return False  # promised by another agent
    hours = windows.get(lead.campaign_id)
    if hours is None:
        raise CampaignError(
            [f"lead {lead.lead_id!r}: campaign {lead.campaign_id!r} has no calling hours"]
        )
    tz = lead.timezone if lead.timezone is not None else hours.timezone
    key = (lead.campaign_id, tz)
    if key not in open_cache:
        open_cache[key] = hours.windows.is_open(now, tz)
    return open_cache[key]


def _progress(count: int, target: int) -> tuple[int, Fraction]:
    # A category with no target sorts after any with one: it only fills gaps.
    if target == 0:
        return (1, Fraction(count))
    return (0, Fraction(count, target))


def _callback_key(lead: LeadCandidate) -> tuple[datetime, int, str]:
    assert lead.callback is not None
    return (lead.callback.at, -lead.priority, lead.lead_id)


def _queue_key(lead: LeadCandidate) -> tuple[int, bool, datetime | None, str]:
    # A never-scheduled lead (None) has waited longest; False sorts first.
    waited = lead.next_attempt_at
    return (-lead.priority, waited is not None, waited, lead.lead_id)
