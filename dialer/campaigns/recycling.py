"""What an attempt's outcome does to its lead: redial later, call back, or stop.

The policy is one table, ``OUTCOME_POLICY``: every ``CallOutcome`` has a row,
so a new outcome without a decision is a missing key, not a silent default.

Choices the seeds leave open, decided here:

- ``declined`` (the customer rejected the ringing call, 403/603, Q.850 21)
  counts as an attempt like ``busy``, but waits ``no_answer_delay``: a person
  who just refused the call rung again in half an hour is a harassment call.
- ``timeout`` (no final response) and ``rejected`` (a refusal we cannot
  classify) count and wait ``unavailable_delay``: the phone was not reachable.
- ``trunk_failure``, ``auth_failed`` and ``cancelled`` are our side's doing,
  so the attempt does not count against the customer's limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Literal

from dialer.campaigns.windows import CampaignError, require_aware
from dialer.events import CallOutcome


class LeadState(StrEnum):
    NEW = "new"  # never dialed
    QUEUED = "queued"  # due for a (re)dial at next_attempt_at
    IN_PROGRESS = "in_progress"  # claimed by a dial now
    CALLBACK = "callback"  # an agent promised a call at a set time
    DONE = "done"  # answered and dispositioned
    FAILED = "failed"  # invalid number: never redialed
    DNC = "dnc"  # do not call: never redialed
    EXHAUSTED = "exhausted"  # max attempts reached


# States the dialer may still ring; every other state is final or busy.
DIALABLE_STATES = frozenset({LeadState.NEW, LeadState.QUEUED, LeadState.CALLBACK})


class Action(Enum):
    REDIAL = "redial"  # counts as an attempt, retried after a delay
    RETRY_UNCOUNTED = "retry_uncounted"  # our fault: retried, attempt not counted
    FAIL = "fail"
    ANSWERED = "answered"


DelayName = Literal["busy_delay", "no_answer_delay", "unavailable_delay", "trunk_failure_delay"]

OUTCOME_POLICY: Mapping[CallOutcome, tuple[Action, DelayName | None]] = {
    CallOutcome.ANSWERED: (Action.ANSWERED, None),
    CallOutcome.BUSY: (Action.REDIAL, "busy_delay"),
    CallOutcome.NO_ANSWER: (Action.REDIAL, "no_answer_delay"),
    CallOutcome.UNAVAILABLE: (Action.REDIAL, "unavailable_delay"),
    CallOutcome.TIMEOUT: (Action.REDIAL, "unavailable_delay"),
    CallOutcome.REJECTED: (Action.REDIAL, "unavailable_delay"),
    CallOutcome.DECLINED: (Action.REDIAL, "no_answer_delay"),
    CallOutcome.INVALID_NUMBER: (Action.FAIL, None),
    CallOutcome.TRUNK_FAILURE: (Action.RETRY_UNCOUNTED, "trunk_failure_delay"),
    CallOutcome.AUTH_FAILED: (Action.RETRY_UNCOUNTED, "trunk_failure_delay"),
    CallOutcome.CANCELLED: (Action.RETRY_UNCOUNTED, "trunk_failure_delay"),
}


@dataclass(frozen=True, slots=True)
class RetryRules:
    max_attempts: int = 3
    busy_delay: timedelta = timedelta(minutes=30)
    no_answer_delay: timedelta = timedelta(hours=2)
    unavailable_delay: timedelta = timedelta(hours=4)
    trunk_failure_delay: timedelta = timedelta(minutes=5)
    # Agent dispositions (compared case-insensitively) that change an answered lead.
    callback_dispositions: frozenset[str] = field(default=frozenset({"callback"}))
    dnc_dispositions: frozenset[str] = field(default=frozenset({"dnc", "do_not_call"}))

    def __post_init__(self) -> None:
        problems: list[str] = []
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            problems.append(
                f"RetryRules.max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        for name in ("busy_delay", "no_answer_delay", "unavailable_delay", "trunk_failure_delay"):
            value = getattr(self, name)
            # Zero would redial at once: a tight loop on a dead trunk or a customer.
            if not isinstance(value, timedelta) or value <= timedelta(0):
                problems.append(f"RetryRules.{name} must be a positive timedelta, got {value!r}")
        clash = {d.lower() for d in self.callback_dispositions} & {
            d.lower() for d in self.dnc_dispositions
        }
        if clash:
            problems.append(
                f"RetryRules: dispositions {sorted(clash)} are both callback and do-not-call"
            )
        if problems:
            raise CampaignError(problems)


@dataclass(frozen=True, slots=True)
class Decision:
    lead_state: LeadState
    next_attempt_at: datetime | None  # None: never dialed again by the retry rules
    attempts: int  # counted attempts including this one (if it counts)
    reason: str


@dataclass(frozen=True, slots=True)
class Callback:
    """A promised call back; ``agent_id`` None means any agent may make it."""

    lead_id: str
    at: datetime
    agent_id: str | None = None

    def __post_init__(self) -> None:
        if not self.lead_id:
            raise CampaignError(["Callback.lead_id must not be empty"])
        require_aware(self.at, "Callback.at")
        if self.agent_id == "":
            raise CampaignError(["Callback.agent_id must be None (anyone) or a non-empty id"])


def decide(
    outcome: CallOutcome,
    attempts_so_far: int,
    now: datetime,
    rules: RetryRules,
    *,
    disposition: str | None = None,
    callback_at: datetime | None = None,
) -> Decision:
    """The lead's next state after one attempt that ended with ``outcome``.

    ``attempts_so_far`` counts earlier counted attempts. ``disposition`` is the
    agent's wrap-up code for an answered call; ``callback_at`` is the time the
    agent agreed with the customer and is required with a callback disposition.
    """
    require_aware(now, "now")
    if type(attempts_so_far) is not int or attempts_so_far < 0:
        raise CampaignError([f"attempts_so_far must be an integer >= 0, got {attempts_so_far!r}"])
    action, delay_name = OUTCOME_POLICY[outcome]
    code = None if disposition is None else disposition.strip().lower()
    if callback_at is not None:
        require_aware(callback_at, "callback_at")
        if action is not Action.ANSWERED or code not in _lower(rules.callback_dispositions):
            raise CampaignError(
                [
                    f"callback_at is only for an answered call with a callback disposition, "
                    f"got outcome {outcome.value!r} and disposition {disposition!r}"
                ]
            )
    if disposition is not None and action is not Action.ANSWERED:
        raise CampaignError(
            [f"disposition {disposition!r} given for an unanswered call ({outcome.value!r})"]
        )

    if action is Action.FAIL:
        return Decision(
            LeadState.FAILED, None, attempts_so_far + 1, f"{outcome.value}: never redialed"
        )
    if action is Action.RETRY_UNCOUNTED:
        assert delay_name is not None
        delay: timedelta = getattr(rules, delay_name)
        return Decision(
            LeadState.QUEUED,
            now + delay,
            attempts_so_far,
            f"{outcome.value}: our side, attempt not counted; redial in {delay}",
        )
    attempts = attempts_so_far + 1
    if action is Action.ANSWERED:
        return _answered(attempts, rules, code, disposition, callback_at)
    assert delay_name is not None
    if attempts >= rules.max_attempts:
        return Decision(
            LeadState.EXHAUSTED,
            None,
            attempts,
            f"{outcome.value}: attempt {attempts} of {rules.max_attempts}, no attempts left",
        )
    delay = getattr(rules, delay_name)
    return Decision(
        LeadState.QUEUED,
        now + delay,
        attempts,
        f"{outcome.value}: attempt {attempts} of {rules.max_attempts}; redial in {delay}",
    )


def _answered(
    attempts: int,
    rules: RetryRules,
    code: str | None,
    disposition: str | None,
    callback_at: datetime | None,
) -> Decision:
    if code is not None and code in _lower(rules.dnc_dispositions):
        return Decision(LeadState.DNC, None, attempts, f"answered: {disposition!r}, do not call")
    if code is not None and code in _lower(rules.callback_dispositions):
        if callback_at is None:
            raise CampaignError([f"disposition {disposition!r} needs callback_at"])
        # A time already past is kept: the callback is simply due at once.
        return Decision(
            LeadState.CALLBACK,
            callback_at,
            attempts,
            f"answered: {disposition!r}, call back at {callback_at.isoformat()}",
        )
    shown = "no disposition" if disposition is None else repr(disposition)
    return Decision(LeadState.DONE, None, attempts, f"answered: {shown}")


def _lower(codes: frozenset[str]) -> frozenset[str]:
    return frozenset(code.lower() for code in codes)
