"""Exempt days: a day taken out of an agent's target, within the seeds' limits.

The seeds allow up to 2 exempt days a month, requested before 9:00 on the day
itself. A request is decided when it is made, with the instant it was made
passed in (time is an argument): at or after the deadline, beyond the monthly
limit, without an approver or on a day that has no target anyway, it is
refused with the reason, and nothing changes. Approving the same day again is
idempotent: the first approval stands and no second day is used up.

The month an exempt day counts against is the month of the quota day (see
``quota.periods``); the deadline is the local wall-clock time on that day's
calendar date in the floor's zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from .periods import month_key
from .policy import WEEKDAYS, Policy, QuotaError


class ExemptionRefusedError(QuotaError):
    """The request was refused; ``reason`` says why, for the agent and the supervisor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Exemption:
    agent: str
    day: date
    requested_at: datetime  # aware
    approved_by: str
    reason: str = ""  # why the day is exempt (sick leave, training), as the request gave it


class ExemptionBook:
    """Every approved exempt day, by agent and day."""

    def __init__(self, policy: Policy, approved: Iterable[Exemption] = ()) -> None:
        self._policy = policy
        self._by_key: dict[tuple[str, date], Exemption] = {}
        for exemption in approved:
            self._by_key.setdefault((exemption.agent, exemption.day), exemption)

    def request_exemption(
        self, agent: str, day: date, requested_at: datetime, approved_by: str, reason: str = ""
    ) -> Exemption:
        """Approve ``day`` for ``agent`` or raise ExemptionRefusedError with the reason."""
        if requested_at.tzinfo is None:
            raise ValueError(
                f"requested_at {requested_at.isoformat()} has no time zone; pass an aware datetime"
            )
        existing = self._by_key.get((agent, day))
        if existing is not None:
            return existing
        assessment, periods = self._policy.assessment, self._policy.periods
        deadline = periods.at(day, assessment.exemption_deadline)
        when = requested_at.astimezone(periods.tz)
        if not approved_by.strip():
            raise ExemptionRefusedError(
                f"agent {agent}: an exemption for {day.isoformat()} needs an approver"
            )
        if day.weekday() not in self._policy.calendar.work_days:
            raise ExemptionRefusedError(
                f"agent {agent}: {day.isoformat()} ({WEEKDAYS[day.weekday()]}) is not a work day; "
                "it has no target to exempt"
            )
        if when >= deadline:
            raise ExemptionRefusedError(
                f"agent {agent}: an exemption for {day.isoformat()} must be requested before "
                f"{assessment.exemption_deadline.strftime('%H:%M')} that day "
                f"({periods.timezone}); this request came at {when.strftime('%Y-%m-%d %H:%M:%S')}"
            )
        month = month_key(day)
        taken = self.of(agent, month)
        if len(taken) >= assessment.exempt_days_per_month:
            days = ", ".join(e.day.isoformat() for e in taken) or "none"
            raise ExemptionRefusedError(
                f"agent {agent}: the limit is {assessment.exempt_days_per_month} exempt days "
                f"a month and {month} already has {len(taken)} ({days})"
            )
        exemption = Exemption(agent, day, requested_at, approved_by.strip(), reason.strip())
        self._by_key[(agent, day)] = exemption
        return exemption

    def is_exempt(self, agent: str, day: date) -> bool:
        return (agent, day) in self._by_key

    def of(self, agent: str, month: str) -> tuple[Exemption, ...]:
        """The agent's exempt days in ``month`` ("YYYY-MM"), in day order."""
        found = (e for (a, d), e in self._by_key.items() if a == agent and month_key(d) == month)
        return tuple(sorted(found, key=lambda e: e.day))

    def __iter__(self) -> Iterator[Exemption]:
        return iter(sorted(self._by_key.values(), key=lambda e: (e.agent, e.day)))

    def __len__(self) -> int:
        return len(self._by_key)
