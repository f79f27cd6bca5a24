"""Per-agent quota counters, fed by finished CDRs, exact under replays and restarts.

The only input is ``cdr.record.CallRecord``. Its ``effective`` flag is final:
the counters never judge a call again. Each call id is counted once; a
replayed CDR (or any later CDR with an id already counted) changes nothing.
Counts are kept per agent and quota day (``quota.periods``); a week or a
month is the sum of its days, so every total is an exact sum of integers.

What a CDR counts, for the agent it names (a CDR without an agent counts for
no one, but is remembered so a replay stays a replay):

- ``dials``: every CDR (each attempt of a failover or transfer chain is one);
- ``connects``: the customer was bridged to the agent (``bridged_at_ms`` set),
  or the CDR is effective;
- ``effective_calls`` and ``talk_ms`` (exact milliseconds; ``talk_minutes`` is
  derived from it);
- ``follow_up_customers`` / ``customer_records``: distinct customers that day
  whose call got a follow-up-worthy / a recording disposition (the policy's
  ``dispositions``);
- ``new_customer_calls`` / ``follow_up_calls``: effective calls split by
  whether the customer had been *reached* before.

The new-versus-follow-up rule, from what a CallRecord carries: the customer
is the campaign's lead (``campaign`` + ``lead_id``; without a lead, the
campaign + the number). A call chain is the call and the attempts that name
it in ``attempt_of`` (a trunk failover or a transfer continues one
conversation, so it never turns into a follow-up of itself). Among a
customer's *connected* chains, ordered by their earliest
``(created_at_ms, call_id)``, the first is the new-customer contact and
every later one is a follow-up, whichever agent made it. Attempts that never
reached the customer (busy, no answer) do not make the next call a
follow-up. Because the rule looks at the whole set of a customer's connected
calls, a CDR that arrives late (an earlier call finishing after a later one)
reclassifies the later call, and its day's progress is produced again: the
result never depends on the order CDRs arrive in.

Targets come from the policy's tier and rule versions in force that day,
pro-rated by the agent's availability that day (late sign-in, approved
pause: ``set_availability``), zero on an exempt day and on days that are not
work days. The counters hold every input the targets need besides the policy
and the agents (exemptions, availability), so ``state()`` / ``from_state()``
and ``recompute()`` rebuild exactly what was live.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Protocol

from cdr.record import CallRecord

from .exemptions import Exemption, ExemptionBook
from .periods import month_key, week_key
from .policy import DayTargets, Policy, QuotaError
from .progress import COUNTS, QuotaProgress, attainment_of

STATE_SCHEMA = 1
_MS_PER_MINUTE = 60_000


class AgentLike(Protocol):
    """What the counters need of an agent; ``dialer.config.AgentConfig`` has it."""

    @property
    def id(self) -> str: ...
    @property
    def team(self) -> str | None: ...
    @property
    def level(self) -> str: ...
    @property
    def start_date(self) -> date | None: ...


@dataclass(frozen=True, slots=True)
class AgentProfile:
    id: str
    team: str | None = None
    level: str = "junior"
    start_date: date | None = None

    @classmethod
    def of(cls, agent: AgentLike) -> AgentProfile:
        return cls(agent.id, agent.team, agent.level, agent.start_date)


@dataclass(frozen=True, slots=True)
class CallFact:
    """What the counters keep of one CDR: enough to count it and to classify it again."""

    call_id: str
    agent: str | None
    created_at_ms: int
    chain: str  # the chain's first attempt: attempt_of, or the call itself
    customer: str
    connected: bool
    effective: bool
    talk_ms: int
    disposition: str | None

    @classmethod
    def of(cls, record: CallRecord) -> CallFact:
        return cls(
            call_id=record.call_id,
            agent=record.agent,
            created_at_ms=record.created_at_ms,
            chain=record.attempt_of or record.call_id,
            customer=customer_key(record),
            connected=record.bridged_at_ms is not None or record.effective,
            effective=record.effective,
            talk_ms=record.talk_ms,
            disposition=record.disposition,
        )

    def to_list(self) -> list[Any]:
        return [
            self.call_id,
            self.agent,
            self.created_at_ms,
            self.chain,
            self.customer,
            self.connected,
            self.effective,
            self.talk_ms,
            self.disposition,
        ]


def customer_key(record: CallRecord) -> str:
    """The customer a call reached: the campaign's lead, else the campaign + the number.

    Numbers are hashed so that saved counter state holds no phone number.
    """
    campaign = record.campaign or ""
    if record.lead_id:
        return f"lead:{campaign}:{record.lead_id}"
    if record.number:
        digest = hashlib.sha256(record.number.encode()).hexdigest()[:24]
        return f"number:{campaign}:{digest}"
    return f"call:{record.call_id}"  # nothing to recognise the customer by


@dataclass(slots=True)
class _Day:
    """One agent's counts for one quota day (mutable: owned by QuotaCounters)."""

    dials: int = 0
    connects: int = 0
    effective_calls: int = 0
    talk_ms: int = 0
    new_customer_calls: int = 0
    follow_up_calls: int = 0
    follow_up_customers: set[str] = field(default_factory=set)
    customer_records: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, float]:
        return {
            "dials": self.dials,
            "connects": self.connects,
            "effective_calls": self.effective_calls,
            "talk_ms": self.talk_ms,
            "talk_minutes": self.talk_ms / _MS_PER_MINUTE,
            "follow_up_customers": len(self.follow_up_customers),
            "customer_records": len(self.customer_records),
            "new_customer_calls": self.new_customer_calls,
            "follow_up_calls": self.follow_up_calls,
        }


_ZERO = _Day()


def _totals(days: Iterable[_Day]) -> dict[str, float]:
    """Sums of daily counts; distinct customers are distinct per day, then summed."""
    total = dict.fromkeys(COUNTS, 0.0)
    talk_ms = 0
    for day in days:
        for name, value in day.counts().items():
            total[name] += value
        talk_ms += day.talk_ms
    total["talk_ms"] = talk_ms
    total["talk_minutes"] = talk_ms / _MS_PER_MINUTE
    return total


@dataclass(frozen=True, slots=True)
class WeekAttainment:
    """An agent's week judged on its total against the weekly floor."""

    agent: str
    team: str | None
    week: date  # the Monday
    days: tuple[date, ...]
    exempt_days: tuple[date, ...]
    counts: Mapping[str, float]
    targets: Mapping[str, float]
    floor: float

    @property
    def attainment(self) -> Mapping[str, float]:
        return MappingProxyType(
            {k: attainment_of(self.counts[k], t) for k, t in self.targets.items()}
        )

    @property
    def shortfall(self) -> Mapping[str, float]:
        return MappingProxyType({k: max(0.0, t - self.counts[k]) for k, t in self.targets.items()})

    @property
    def overall(self) -> float:
        return min(self.attainment.values(), default=1.0)

    @property
    def passed(self) -> bool:
        """Every target reached at least the floor (90 %) of the week's total."""
        return self.overall >= self.floor


@dataclass(frozen=True, slots=True)
class Difference:
    """A counter that does not match its recomputation from the CDRs."""

    agent: str | None
    day: date | None
    what: str  # a count name, or "call <id>" for a call counted on one side only
    live: float
    recomputed: float


class QuotaCounters:
    """Every agent's counts per day, and the progress they make against the policy."""

    def __init__(
        self,
        policy: Policy,
        agents: Iterable[AgentLike] = (),
        *,
        exemptions: Iterable[Exemption] = (),
        availability: Mapping[tuple[str, date], float] | None = None,
    ) -> None:
        self._policy = policy
        self._periods = policy.periods
        self._agents: dict[str, AgentProfile] = {}
        for agent in agents:
            self.set_agent(agent)
        self._exemptions = ExemptionBook(policy, exemptions)
        self._availability: dict[tuple[str, date], float] = {}
        for (agent_id, day), fraction in (availability or {}).items():
            self._availability[(agent_id, day)] = _fraction(agent_id, day, fraction)
        self._days: dict[str, dict[date, _Day]] = {}
        self._facts: dict[str, CallFact] = {}  # calls with an agent or that reached a customer
        self._bare: dict[str, int] = {}  # the rest: call id -> created_at_ms, for replays only
        self._connected: dict[str, list[CallFact]] = {}  # customer -> connected calls
        self._follow_up: dict[str, bool] = {}  # effective call with an agent -> is a follow-up
        self.replays = 0  # CDRs whose call id was already counted
        self.conflicts = 0  # ... of which the content differed from the first (first kept)

    # -- inputs ---------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def exemptions(self) -> ExemptionBook:
        return self._exemptions

    @property
    def availability(self) -> Mapping[tuple[str, date], float]:
        return MappingProxyType(self._availability)

    @property
    def agents(self) -> tuple[AgentProfile, ...]:
        return tuple(self._agents.values())

    def set_agent(self, agent: AgentLike) -> None:
        """Add or update an agent (team, level, start date decide the tier)."""
        if agent.level not in self._policy.levels:
            raise QuotaError(
                f"agent {agent.id}: level {agent.level!r} is not one of the policy's levels "
                f"({', '.join(self._policy.levels)})"
            )
        self._agents[agent.id] = AgentProfile.of(agent)

    def apply(self, record: CallRecord) -> list[QuotaProgress]:
        """Count a finished CDR; the progress of every agent-day it changed (none on replay)."""
        known = self._facts.get(record.call_id)
        if known is not None or record.call_id in self._bare:
            self.replays += 1
            if known is not None and known != CallFact.of(record):
                self.conflicts += 1
            return []
        touched = self._add(CallFact.of(record))
        return [self.progress(agent, day) for agent, day in touched]

    def set_availability(self, agent: str, day: date, available_fraction: float) -> QuotaProgress:
        """The share of the day the agent could work (late sign-in, approved pause)."""
        self._availability[(agent, day)] = _fraction(agent, day, available_fraction)
        return self.progress(agent, day)

    def request_exemption(
        self, agent: str, day: date, requested_at: datetime, approved_by: str, reason: str = ""
    ) -> QuotaProgress:
        """Approve an exempt day (ExemptionRefusedError with the reason otherwise)."""
        self._exemptions.request_exemption(agent, day, requested_at, approved_by, reason)
        return self.progress(agent, day)

    # -- counting -------------------------------------------------------------

    def _add(self, fact: CallFact) -> list[tuple[str, date]]:
        if fact.agent is None and not fact.connected:
            self._bare[fact.call_id] = fact.created_at_ms
            return []
        self._facts[fact.call_id] = fact
        touched: list[tuple[str, date]] = []
        if fact.agent is not None:
            day = self._periods.day_of(fact.created_at_ms)
            counts = self._day(fact.agent, day)
            counts.dials += 1
            counts.connects += fact.connected
            counts.effective_calls += fact.effective
            counts.talk_ms += fact.talk_ms
            dispositions = self._policy.dispositions
            if dispositions.is_follow_up_worthy(fact.disposition):
                counts.follow_up_customers.add(fact.customer)
            if dispositions.is_customer_record(fact.disposition):
                counts.customer_records.add(fact.customer)
            touched.append((fact.agent, day))
        if fact.connected:
            for key in self._reclassify(fact):
                if key not in touched:
                    touched.append(key)
        return touched

    def _day(self, agent: str, day: date) -> _Day:
        days = self._days.setdefault(agent, {})
        counts = days.get(day)
        if counts is None:
            counts = days[day] = _Day()
        return counts

    def _reclassify(self, fact: CallFact) -> list[tuple[str, date]]:
        """Add a connected call to its customer; move every effective call whose class changed."""
        calls = self._connected.setdefault(fact.customer, [])
        calls.append(fact)
        first_of_chain: dict[str, tuple[int, str]] = {}
        for call in calls:
            order = (call.created_at_ms, call.call_id)
            if call.chain not in first_of_chain or order < first_of_chain[call.chain]:
                first_of_chain[call.chain] = order
        first_chain = min(first_of_chain, key=first_of_chain.__getitem__)
        changed: list[tuple[str, date]] = []
        for call in calls:
            if not call.effective or call.agent is None:
                continue
            follow_up = call.chain != first_chain
            before = self._follow_up.get(call.call_id)
            if before is follow_up:
                continue
            self._follow_up[call.call_id] = follow_up
            day = self._periods.day_of(call.created_at_ms)
            counts = self._day(call.agent, day)
            if before is not None:  # None: the call just added, nothing to take back
                if before:
                    counts.follow_up_calls -= 1
                else:
                    counts.new_customer_calls -= 1
            if follow_up:
                counts.follow_up_calls += 1
            else:
                counts.new_customer_calls += 1
            changed.append((call.agent, day))
        return changed

    # -- reading --------------------------------------------------------------

    def profile(self, agent: str) -> AgentProfile:
        """The agent's profile; an agent the counters were not told about is a veteran junior."""
        found = self._agents.get(agent)
        if found is not None:
            return found
        level = "junior" if "junior" in self._policy.levels else self._policy.levels[0]
        return AgentProfile(agent, level=level)

    def targets(self, agent: str, day: date) -> tuple[DayTargets, bool, float]:
        """The day's targets after pro-rating, whether the day is exempt, the availability."""
        profile = self.profile(agent)
        base = self._policy.targets_for(profile.level, profile.start_date, day)
        exempt = self._exemptions.is_exempt(agent, day)
        fraction = self._availability.get((agent, day), 1.0)
        working = day.weekday() in self._policy.calendar.work_days and not exempt
        scale = fraction if working else 0.0
        scaled = MappingProxyType({k: v * scale for k, v in base.targets.items()})
        return DayTargets(scaled, base.rules, base.tiers), exempt, fraction

    def counts(self, agent: str, day: date) -> Mapping[str, float]:
        return MappingProxyType(self._days.get(agent, {}).get(day, _ZERO).counts())

    def progress(self, agent: str, day: date) -> QuotaProgress:
        targets, exempt, fraction = self.targets(agent, day)
        return QuotaProgress(
            agent=agent,
            team=self.profile(agent).team,
            day=day,
            counts=self.counts(agent, day),
            targets=targets.targets,
            rules=targets.rules,
            tiers=targets.tiers,
            exempt=exempt,
            available_fraction=fraction,
        )

    def week_attainment(
        self, agent: str, week: date, *, through: date | None = None
    ) -> WeekAttainment:
        """The week's total against the week's target (``through``: days up to it only).

        Exempt days and days that are not work days add nothing to the target;
        calls made on them still count.
        """
        days = tuple(
            d for d in self._periods.week_days(week_key(week)) if through is None or d <= through
        )
        recorded = self._days.get(agent, {})
        targets: dict[str, float] = {}
        for day in days:
            for name, value in self.targets(agent, day)[0].targets.items():
                targets[name] = targets.get(name, 0.0) + value
        return WeekAttainment(
            agent=agent,
            team=self.profile(agent).team,
            week=week_key(week),
            days=days,
            exempt_days=tuple(d for d in days if self._exemptions.is_exempt(agent, d)),
            counts=MappingProxyType(_totals(recorded[d] for d in days if d in recorded)),
            targets=MappingProxyType(targets),
            floor=self._policy.assessment.weekly_floor,
        )

    def month_totals(self, agent: str, month: str) -> Mapping[str, float]:
        """The agent's counts summed over the quota days of ``month`` ("YYYY-MM")."""
        recorded = self._days.get(agent, {})
        return MappingProxyType(_totals(c for d, c in recorded.items() if month_key(d) == month))

    def agents_on(self, day: date) -> list[str]:
        """Every agent the counters know, and every agent with a CDR that day."""
        counted = (a for a, days in self._days.items() if day in days)
        return sorted({*self._agents, *counted})

    def day_counts(self) -> dict[tuple[str, date], Mapping[str, float]]:
        """Every agent-day's counts: what reconciliation and the property tests compare."""
        return {
            (agent, day): MappingProxyType(counts.counts())
            for agent, days in self._days.items()
            for day, counts in days.items()
        }

    def calls(self) -> dict[str, tuple[str | None, int]]:
        """Every call id counted: its agent and creation instant."""
        found: dict[str, tuple[str | None, int]] = {
            call_id: (None, created) for call_id, created in self._bare.items()
        }
        for fact in self._facts.values():
            found[fact.call_id] = (fact.agent, fact.created_at_ms)
        return found

    # -- restarts -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of every input; ``from_state`` rebuilds the counters."""
        return {
            "schema": STATE_SCHEMA,
            "calls": [fact.to_list() for fact in self._facts.values()],
            "bare": [[call_id, created] for call_id, created in self._bare.items()],
            "exemptions": [
                {
                    "agent": e.agent,
                    "day": e.day.isoformat(),
                    "requested_at": e.requested_at.isoformat(),
                    "approved_by": e.approved_by,
                    "reason": e.reason,
                }
                for e in self._exemptions
            ],
            "availability": [
                [agent, day.isoformat(), fraction]
                for (agent, day), fraction in self._availability.items()
            ],
        }

    @classmethod
    def from_state(
        cls, policy: Policy, state: Mapping[str, Any], agents: Iterable[AgentLike] = ()
    ) -> QuotaCounters:
        """Counters rebuilt from ``state()``; QuotaError names what is wrong in a bad state."""
        if state.get("schema") != STATE_SCHEMA:
            raise QuotaError(f"quota state: schema {state.get('schema')!r} is not {STATE_SCHEMA}")
        try:
            exemptions = [
                Exemption(
                    e["agent"],
                    date.fromisoformat(e["day"]),
                    datetime.fromisoformat(e["requested_at"]),
                    e["approved_by"],
                    e.get("reason", ""),  # states written before reasons were kept have none
                )
                for e in state["exemptions"]
            ]
            availability = {
                (agent, date.fromisoformat(day)): fraction
                for agent, day, fraction in state["availability"]
            }
            facts = [CallFact(*_fact_fields(item)) for item in state["calls"]]
            bare = [(str(call_id), int(created)) for call_id, created in state["bare"]]
            counters = cls(policy, agents, exemptions=exemptions, availability=availability)
        except (KeyError, TypeError, ValueError) as exc:
            raise QuotaError(f"quota state: malformed ({type(exc).__name__}: {exc})") from None
        for fact in facts:
            counters._add(fact)
        counters._bare.update(bare)
        return counters

    @classmethod
    def recompute(
        cls,
        policy: Policy,
        records: Iterable[CallRecord],
        agents: Iterable[AgentLike] = (),
        *,
        exemptions: Iterable[Exemption] = (),
        availability: Mapping[tuple[str, date], float] | None = None,
    ) -> QuotaCounters:
        """Counters built from scratch from CDRs (the first record of each call id counts)."""
        counters = cls(policy, agents, exemptions=exemptions, availability=availability)
        for record in records:
            if record.call_id not in counters._facts and record.call_id not in counters._bare:
                counters._add(CallFact.of(record))
        return counters


def _fraction(agent: str, day: date, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            f"agent {agent} on {day.isoformat()}: available fraction {value!r} "
            "is not a share between 0 and 1"
        )
    return float(value)


def _fact_fields(item: Any) -> tuple[Any, ...]:
    call_id, agent, created, chain, customer, connected, effective, talk_ms, disposition = item
    if not isinstance(call_id, str) or not isinstance(chain, str) or not isinstance(customer, str):
        raise TypeError(f"call {item!r}: ids must be strings")
    return (
        call_id,
        None if agent is None else str(agent),
        int(created),
        chain,
        customer,
        bool(connected),
        bool(effective),
        int(talk_ms),
        None if disposition is None else str(disposition),
    )


def reconcile(
    live: QuotaCounters, records: Iterable[CallRecord], *, days: Iterable[date] | None = None
) -> list[Difference]:
    """Compare live counters with a recomputation from the CDRs (expected: none).

    ``days`` limits the comparison to those quota days. The new/follow-up split
    depends on a customer's earlier calls, so ``records`` should hold the
    leads' history before the period too (or every CDR the counters saw).
    """
    recomputed = QuotaCounters.recompute(
        live.policy,
        records,
        live.agents,
        exemptions=live.exemptions,
        availability=live.availability,
    )
    wanted = None if days is None else set(days)
    periods = live.policy.periods
    differences: list[Difference] = []
    ours, theirs = live.day_counts(), recomputed.day_counts()
    zero = _ZERO.counts()
    for agent, day in sorted(ours.keys() | theirs.keys()):
        if wanted is not None and day not in wanted:
            continue
        a, b = ours.get((agent, day), zero), theirs.get((agent, day), zero)
        for name in COUNTS:
            if name != "talk_minutes" and a[name] != b[name]:
                differences.append(Difference(agent, day, name, a[name], b[name]))
    live_calls, cdr_calls = live.calls(), recomputed.calls()
    for call_id in sorted(live_calls.keys() ^ cdr_calls.keys()):
        who, created = live_calls.get(call_id) or cdr_calls[call_id]
        day = periods.day_of(created)
        if wanted is not None and day not in wanted:
            continue
        counted_live = float(call_id in live_calls)
        differences.append(Difference(who, day, f"call {call_id}", counted_live, 1 - counted_live))
    return differences
