"""The trunk pool: which trunk (SIP trunk or GSM gateway) carries the next call.

Each trunk has a channel cap, a new-call rate (a token bucket), number rules
(which numbers it takes and how it wants them spelled in the Request-URI), a
pool of caller ids used round-robin, and a health state. ``TrunkPool.choose``
takes a channel and a rate token in the same step, so a ``Route`` in hand is a
call the trunk has room for; ``release`` returns the channel when the call is
over and ``on_result`` feeds every attempt's final response to the health state.

Decisions callers depend on:

- Priority: lower first, as in DNS SRV (RFC 2782): 0 is the primary. Within a
  priority the least used trunk (channels in use / max) wins, then the one
  listed first. Full, rate-limited and DOWN trunks are skipped, so a busy
  primary spills over to the backup instead of queueing.
- Rate: a bucket of ``max_cps`` tokens (the burst is one second's worth and
  never more), full at start, refilled continuously. Below 1 call/s the
  bucket still holds one token, or the trunk could never dial. Arithmetic is
  exact (``Fraction``, the rate read as its decimal literal), so stepped-time
  tests see tokens on the instant they are due.
- Health is a circuit breaker, ``HEALTH`` below: 408, 500, 502, 503, 504 and
  no final response at all (``status=None``) are the trunk's fault; after
  ``failures_before_down`` of them in a row the trunk is DOWN for
  ``cooldown_s``, then HALF_OPEN, where one probe call is let through and the
  next result decides. Any other final response resets the count: the trunk
  worked and the callee said no. Results are not tied to calls, so results
  arriving while DOWN (calls placed before the trip) are ignored, and after
  the cooldown the first result to arrive decides.
- Time only moves forward: a ``now`` older than one already seen refills
  nothing (concurrent callers may pass slightly stale instants).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from fractions import Fraction

from dialer.campaigns.windows import CampaignError
from dialer.config import TrunkConfig
from dialer.leads.phone import CHINA, NumberingPlan

# E.164 §6.1: '+', a country code that never starts with 0, at most 15 digits.
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_E164_PREFIX = re.compile(r"\+\d{1,15}")
# Caller ids go into From/P-Asserted-Identity as the user part: a number,
# national or international. Anything else is a typo the carrier would reject.
_CALLER_ID = re.compile(r"\+?\d{3,15}")
# Gateways use * and # in access codes (e.g. a SIM-slot selector "*31#").
_DIAL_PREFIX = re.compile(r"[0-9*#]*")
_NAME = re.compile(r"\S+")

TRUNK_FAILURE_STATUSES = frozenset({408, 500, 502, 503, 504})


class LocalTrunkError(CampaignError):
    """The dialer misused the pool: an unknown trunk, a release without a call, ..."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    """One trunk's limits and number rules; every wrong field is reported at once.

    Number rules, applied to the E.164 number in this order:

    1. accepted only if it starts with one of ``prefixes_allowed`` (empty: any)
       and fully matches ``number_pattern`` (empty: any), e.g. a GSM gateway
       that only takes Chinese mobiles: ``number_pattern=r"\\+861[3-9]\\d{9}"``;
    2. ``strip_country_code`` spells it nationally in ``plan``: a mobile as its
       bare NSN (+8613800138000 -> 13800138000), anything else with the trunk
       prefix (+861058001234 -> 01058001234, Beijing). Such a trunk can only
       reach ``plan``'s country, so it accepts nothing else;
    3. ``strip_digits`` leading digits are removed;
    4. ``dial_prefix`` is put in front.

    A number no rule rewrote goes out as E.164 with its '+'. Once rewritten it
    is digits only: '+' is not dialable on a national trunk, and "00" as a
    ``dial_prefix`` is how such a trunk spells it.
    """

    name: str
    max_channels: int
    max_cps: float
    prefixes_allowed: tuple[str, ...] = ()
    strip_country_code: bool = False
    dial_prefix: str = ""
    caller_ids: tuple[str, ...] = ()
    priority: int = 0
    number_pattern: str = ""
    strip_digits: int = 0
    plan: NumberingPlan = CHINA

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise CampaignError(problems)

    @classmethod
    def from_config(
        cls,
        config: TrunkConfig,
        *,
        priority: int = 0,
        prefixes_allowed: tuple[str, ...] = (),
        number_pattern: str = "",
        strip_country_code: bool = False,
        strip_digits: int = 0,
        caller_ids: tuple[str, ...] | None = None,
    ) -> TrunkSpec:
        """The spec of a configured trunk; ``caller_ids`` defaults to its one caller id."""
        if caller_ids is None:
            caller_ids = () if config.caller_id is None else (config.caller_id,)
        return cls(
            name=config.name,
            max_channels=config.max_channels,
            max_cps=config.max_calls_per_second,
            prefixes_allowed=prefixes_allowed,
            strip_country_code=strip_country_code,
            dial_prefix=config.prefix,
            caller_ids=caller_ids,
            priority=priority,
            number_pattern=number_pattern,
            strip_digits=strip_digits,
        )

    def accepts(self, number_e164: str) -> bool:
        if self.prefixes_allowed and not number_e164.startswith(self.prefixes_allowed):
            return False
        if self.number_pattern and re.fullmatch(self.number_pattern, number_e164) is None:
            return False
        return not self.strip_country_code or number_e164.startswith("+" + self.plan.country_code)

    def dial_string(self, number_e164: str) -> str:
        """What goes in the Request-URI user part for this number on this trunk."""
        if not self.accepts(number_e164):
            raise LocalTrunkError(f"trunk {self.name!r} does not accept {number_e164}")
        digits = number_e164[1:]
        if self.strip_country_code:
            nsn = digits[len(self.plan.country_code) :]
            digits = nsn if self.plan.is_mobile(nsn) else self.plan.national_prefix + nsn
        elif not self.strip_digits and not self.dial_prefix:
            return number_e164
        return self.dial_prefix + digits[self.strip_digits :]


def _spec_problems(spec: TrunkSpec) -> list[str]:
    if not isinstance(spec.name, str) or _NAME.fullmatch(spec.name) is None:
        return [f"trunk name must be a non-empty string without spaces, got {spec.name!r}"]
    where = f"trunk {spec.name!r}"
    problems: list[str] = []
    if not _is_int(spec.max_channels) or spec.max_channels <= 0:
        problems.append(
            f"{where}: max_channels must be a positive integer, got {spec.max_channels!r}"
        )
    cps = spec.max_cps
    if (
        not isinstance(cps, int | float)
        or isinstance(cps, bool)
        or not math.isfinite(cps)
        or cps <= 0
    ):
        problems.append(f"{where}: max_cps must be a positive number, got {cps!r}")
    if not isinstance(spec.prefixes_allowed, tuple):
        problems.append(f"{where}: prefixes_allowed must be a tuple, got {spec.prefixes_allowed!r}")
    else:
        for i, prefix in enumerate(spec.prefixes_allowed):
            if not isinstance(prefix, str) or _E164_PREFIX.fullmatch(prefix) is None:
                problems.append(
                    f"{where}: prefixes_allowed[{i}] must be an E.164 prefix such as '+86', "
                    f"got {prefix!r}"
                )
    if not isinstance(spec.strip_country_code, bool):
        problems.append(
            f"{where}: strip_country_code must be true or false, got {spec.strip_country_code!r}"
        )
    if not isinstance(spec.dial_prefix, str) or _DIAL_PREFIX.fullmatch(spec.dial_prefix) is None:
        problems.append(
            f"{where}: dial_prefix may only hold 0-9, * and #, got {spec.dial_prefix!r}"
        )
    if not isinstance(spec.caller_ids, tuple):
        problems.append(f"{where}: caller_ids must be a tuple, got {spec.caller_ids!r}")
    else:
        for i, caller_id in enumerate(spec.caller_ids):
            if not isinstance(caller_id, str) or _CALLER_ID.fullmatch(caller_id) is None:
                problems.append(
                    f"{where}: caller_ids[{i}] must be a number (3-15 digits, optional '+'), "
                    f"got {caller_id!r}"
                )
    if not _is_int(spec.priority):
        problems.append(f"{where}: priority must be an integer, got {spec.priority!r}")
    if not isinstance(spec.number_pattern, str):
        problems.append(f"{where}: number_pattern must be a string, got {spec.number_pattern!r}")
    else:
        try:
            re.compile(spec.number_pattern)
        except re.error as exc:
            problems.append(
                f"{where}: number_pattern {spec.number_pattern!r} is not a regex: {exc}"
            )
    if not _is_int(spec.strip_digits) or spec.strip_digits < 0:
        problems.append(f"{where}: strip_digits must be an integer >= 0, got {spec.strip_digits!r}")
    if not isinstance(spec.plan, NumberingPlan):
        problems.append(f"{where}: plan must be a NumberingPlan, got {spec.plan!r}")
    return problems


class TrunkState(StrEnum):
    UP = "up"
    DOWN = "down"  # failing: no calls until the cooldown is over
    HALF_OPEN = "half_open"  # cooled down: one probe call, its result decides


class _Signal(Enum):
    WORKED = "worked"  # a final response that is not the trunk's fault
    FAILED = "failed"  # a trunk failure below the limit
    TRIPPED = "tripped"  # the trunk failure that reaches failures_before_down
    COOLED = "cooled"  # cooldown_s elapsed


_T = TrunkState
HEALTH: dict[tuple[TrunkState, _Signal], TrunkState] = {
    (_T.UP, _Signal.WORKED): _T.UP,
    (_T.UP, _Signal.FAILED): _T.UP,
    (_T.UP, _Signal.TRIPPED): _T.DOWN,
    (_T.DOWN, _Signal.COOLED): _T.HALF_OPEN,
    (_T.HALF_OPEN, _Signal.WORKED): _T.UP,
    # One failed probe is enough: the trunk already failed its full count.
    (_T.HALF_OPEN, _Signal.FAILED): _T.DOWN,
    (_T.HALF_OPEN, _Signal.TRIPPED): _T.DOWN,
}


@dataclass(frozen=True, slots=True)
class Route:
    trunk: str
    dial_string: str  # the Request-URI user part, after the trunk's number rules
    caller_id: str | None  # None: the trunk's own default


class NoRouteReason(StrEnum):
    NOT_ACCEPTED = "not_accepted"  # no trunk's rules take the number: fail the lead
    ALL_TRIED = "all_tried"  # every trunk that takes it is in ``exclude``: fail the attempt
    RATE_LIMITED = "rate_limited"  # wait until ``retry_at``
    BUSY = "busy"  # wait for a call to end
    DOWN = "down"  # wait for a cooldown (``retry_at``) or a probe's result


# When trunks are blocked for different reasons the most hopeful one is reported.
_HOPE = (NoRouteReason.RATE_LIMITED, NoRouteReason.BUSY, NoRouteReason.DOWN)


@dataclass(frozen=True, slots=True)
class NoRoute:
    """Why ``choose`` found no trunk.

    ``retry_at`` is the earliest instant a blocked trunk frees up by time
    alone (a token refills, a cooldown ends); None when only a call ending or
    a result arriving can change anything.
    """

    reason: NoRouteReason
    number: str
    retry_at: float | None = None

    @property
    def can_wait(self) -> bool:
        return self.reason in _HOPE

    def __str__(self) -> str:
        until = "" if self.retry_at is None else f" until {self.retry_at}"
        match self.reason:
            case NoRouteReason.NOT_ACCEPTED:
                return f"no trunk accepts {self.number}"
            case NoRouteReason.ALL_TRIED:
                return f"every trunk that accepts {self.number} was already tried"
            case NoRouteReason.RATE_LIMITED:
                return f"trunks for {self.number} are rate limited{until}"
            case NoRouteReason.BUSY:
                return f"all trunks for {self.number} are busy"
            case NoRouteReason.DOWN:
                return f"all trunks for {self.number} are down or probing{until}"


@dataclass(frozen=True, slots=True)
class TrunkHealth:
    state: TrunkState
    in_use: int
    max_channels: int
    failures: int  # consecutive trunk failures
    down_until: float | None


@dataclass(slots=True)
class _Trunk:
    spec: TrunkSpec
    order: int
    rate: Fraction
    tokens: Fraction
    seen: Fraction | None = None  # the latest ``now``, for the refill
    in_use: int = 0
    state: TrunkState = TrunkState.UP
    failures: int = 0
    down_until: float | None = None
    probing: bool = False  # the probe was handed out; reset on entering HALF_OPEN
    turn: int = 0  # the next caller id

    @property
    def capacity(self) -> Fraction:
        return max(Fraction(1), self.rate)

    def advance(self, now: float) -> None:
        at = Fraction(now)
        if self.seen is None or at > self.seen:
            if self.seen is not None:
                self.tokens = min(self.capacity, self.tokens + (at - self.seen) * self.rate)
            self.seen = at
        if self.state is TrunkState.DOWN and self.down_until is not None and now >= self.down_until:
            self.state = HEALTH[(self.state, _Signal.COOLED)]
            self.probing = False

    def blocker(self) -> tuple[NoRouteReason, float | None] | None:
        if self.state is TrunkState.DOWN:
            return NoRouteReason.DOWN, self.down_until
        if self.state is TrunkState.HALF_OPEN and self.probing:
            return NoRouteReason.DOWN, None
        if self.in_use >= self.spec.max_channels:
            return NoRouteReason.BUSY, None
        if self.tokens < 1:
            assert self.seen is not None  # the bucket only empties once time was seen
            return NoRouteReason.RATE_LIMITED, float(self.seen + (1 - self.tokens) / self.rate)
        return None

    def take(self, number: str) -> Route:
        self.in_use += 1
        self.tokens -= 1
        if self.state is TrunkState.HALF_OPEN:
            self.probing = True
        caller_ids = self.spec.caller_ids
        caller_id = caller_ids[self.turn % len(caller_ids)] if caller_ids else None
        self.turn += 1
        return Route(self.spec.name, self.spec.dial_string(number), caller_id)


class TrunkPool:
    """Every trunk's channels, rate and health; sans-IO, ``now`` is always passed in."""

    def __init__(
        self,
        specs: Iterable[TrunkSpec],
        *,
        failures_before_down: int = 3,
        cooldown_s: float = 30.0,
    ) -> None:
        problems: list[str] = []
        self._trunks: dict[str, _Trunk] = {}
        for order, spec in enumerate(specs):
            if spec.name in self._trunks:
                problems.append(f"trunk {spec.name!r}: duplicate name")
                continue
            rate = Fraction(str(spec.max_cps))
            self._trunks[spec.name] = _Trunk(spec, order, rate, max(Fraction(1), rate))
        if not _is_int(failures_before_down) or failures_before_down < 1:
            problems.append(
                f"failures_before_down must be an integer >= 1, got {failures_before_down!r}"
            )
        if (
            not isinstance(cooldown_s, int | float)
            or not math.isfinite(cooldown_s)
            or cooldown_s <= 0
        ):
            problems.append(f"cooldown_s must be a positive number of seconds, got {cooldown_s!r}")
        if problems:
            raise CampaignError(problems)
        self._failures_before_down = failures_before_down
        self._cooldown_s = float(cooldown_s)

    def choose(
        self, number_e164: str, now: float, *, exclude: frozenset[str] = frozenset()
    ) -> Route | NoRoute:
        """A trunk for this number, with its channel and rate token already taken."""
        if not isinstance(number_e164, str) or _E164.fullmatch(number_e164) is None:
            raise LocalTrunkError(f"choose: {number_e164!r} is not an E.164 number")
        unknown = sorted(exclude - self._trunks.keys())
        if unknown:
            raise LocalTrunkError(f"choose: exclude names unknown trunks {unknown}")
        accepting = [t for t in self._trunks.values() if t.spec.accepts(number_e164)]
        if not accepting:
            return NoRoute(NoRouteReason.NOT_ACCEPTED, number_e164)
        candidates = [t for t in accepting if t.spec.name not in exclude]
        if not candidates:
            return NoRoute(NoRouteReason.ALL_TRIED, number_e164)
        ready: list[_Trunk] = []
        blocked: list[tuple[NoRouteReason, float | None]] = []
        for trunk in candidates:
            trunk.advance(now)
            why = trunk.blocker()
            if why is None:
                ready.append(trunk)
            else:
                blocked.append(why)
        if ready:
            best = min(
                ready,
                key=lambda t: (t.spec.priority, Fraction(t.in_use, t.spec.max_channels), t.order),
            )
            return best.take(number_e164)
        reason = next(r for r in _HOPE if any(b[0] is r for b in blocked))
        times = [at for _, at in blocked if at is not None]
        return NoRoute(reason, number_e164, min(times) if times else None)

    def release(self, trunk_name: str) -> None:
        """The call ``choose`` routed to this trunk is over: give its channel back."""
        trunk = self._trunk("release", trunk_name)
        if trunk.in_use == 0:
            raise LocalTrunkError(
                f"release: trunk {trunk_name!r} has no call in progress (0 channels in use)"
            )
        trunk.in_use -= 1

    def on_result(self, trunk_name: str, status: int | None, now: float) -> TrunkState:
        """An attempt's final response on this trunk (None: none came); the new state."""
        trunk = self._trunk("on_result", trunk_name)
        if status is not None and (not _is_int(status) or not 200 <= status <= 699):
            raise LocalTrunkError(
                f"on_result: status must be a final SIP status (200-699) or None, got {status!r}"
            )
        trunk.advance(now)
        if trunk.state is TrunkState.DOWN:
            return trunk.state  # a call placed before the trip: nothing new about the trunk
        if status is None or status in TRUNK_FAILURE_STATUSES:
            trunk.failures += 1
            tripped = trunk.failures >= self._failures_before_down
            signal = _Signal.TRIPPED if tripped else _Signal.FAILED
        else:
            trunk.failures = 0
            signal = _Signal.WORKED
        trunk.state = HEALTH[(trunk.state, signal)]
        if trunk.state is TrunkState.DOWN:
            trunk.down_until = now + self._cooldown_s
        elif trunk.state is TrunkState.UP:
            trunk.down_until = None
        return trunk.state

    def health(self, now: float | None = None) -> dict[str, TrunkHealth]:
        """A snapshot for metrics; with ``now``, elapsed cooldowns show as HALF_OPEN."""
        snapshot: dict[str, TrunkHealth] = {}
        for name, trunk in self._trunks.items():
            if now is not None:
                trunk.advance(now)
            snapshot[name] = TrunkHealth(
                trunk.state, trunk.in_use, trunk.spec.max_channels, trunk.failures, trunk.down_until
            )
        return snapshot

    def _trunk(self, operation: str, name: str) -> _Trunk:
        try:
            return self._trunks[name]
        except KeyError:
            raise LocalTrunkError(f"{operation}: unknown trunk {name!r}") from None
