"""Predictive pacing: how many customer calls to launch now, under the abandon cap.

A pure controller (DESIGN.md, Pacing): the floor's state and ``now`` go in, a
``Decision`` comes out; outcomes are fed back. No clock, no I/O, so the same
object runs in the campaign runner, in the simulated floor (``floor_sim``)
and against past CDRs (``seed_from``).

How a decision is made, every tick:

1. Supply: agents that will be free to take a call within the horizon (the
   learned mean answer delay plus ``connect_within_s``): every READY agent,
   plus for each talking or wrap-up agent the probability, from talk and
   wrap-up times learned online, that it is done by then given how long it
   has been busy. The variance of that sum is kept too.
2. Demand: live answers to come from the calls already ringing (each by the
   learned chance that a call still ringing at its age answers live) and the
   customers already waiting for an agent.
3. The largest number of new calls ``n`` (each a live answer with the
   recent answer rate) whose expected overflow (answers without an agent,
   normal approximation) is at most ``risk`` of the expected answers. With
   few agents the spread is wide compared to the mean, so the same risk
   dials fewer calls per agent: small pools are paced conservatively.
4. ``risk`` is tuned by feedback: every live answer moves it up a little,
   every abandon down a lot, so that abandons settle at ``aim`` × cap
   (75 % of the cap by default). The static model gets the shape right
   (agents, answer rate, talk times); feedback corrects what it leaves out.
5. Hard limits: never more than ``max_dial_level`` calls in flight per
   working agent; nothing without agents; and when today's or the rolling
   30-day tally has fewer than ``reserve_abandons`` abandons of headroom
   left under the cap, progressive dialing only (no more calls in flight
   than READY agents, so every answer finds one); over the next
   ``slow_down_abandons`` of headroom the risk tapers down to that. The cap
   holds on both.

The answer rate is an EWMA over attempts (half-life ``answer_half_life_s``
of time, or ``answer_half_life_attempts`` attempts when calls are sparse)
with a two-sided CUSUM change detector: on a sudden change it forgets all but
the last ``fast_half_life_s`` of outcomes, so it follows within a minute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import accumulate

from cdr.record import AnsweredBy, CallRecord

ROLLING_DAYS = 30  # the regulator's window: today and the 29 days before it
MIN_RING_S = 15.0  # DESIGN.md: a ringing customer is never given up before 15 s
MIN_ABANDON_MESSAGE_S = 0.5  # a shorter message to an abandoned customer says nothing
_EPSILON_S = 1e-6
_PRIOR_SAMPLES = 5.0  # weight of the prior each learned distribution starts from


class PacingError(ValueError):
    """Pacing used wrongly (bad settings, impossible floor state); ``problems`` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingSettings:
    abandon_cap: float = 0.03  # abandoned share of live answers, today and over 30 days
    aim: float = 0.75  # the share of the cap the feedback aims at (the rest is margin)
    max_dial_level: float = 3.0  # calls in flight per working agent, at most
    min_ring_s: float = MIN_RING_S  # a ringing customer is never released before this
    connect_within_s: float = 2.0  # a live answer waits this long for an agent, then abandons
    lockout_minutes: float = 72 * 60.0  # an abandoned lead is not redialed for this long
    target_occupancy: float = 0.95  # above it, more risk buys too little talk: risk stops rising
    reserve_abandons: float = 2.0  # headroom under the cap below which dialing is progressive
    slow_down_abandons: float = 5.0  # above the reserve, headroom over which risk tapers to 0
    gain: float = 0.15  # feedback step, in log(risk) per abandon
    answer_half_life_s: float = 120.0
    answer_half_life_attempts: float = 200.0
    fast_half_life_s: float = 15.0  # what is kept of the past when a change is detected
    change_threshold: float = 4.0  # CUSUM log-likelihood ratio that declares a change
    change_ratio: float = 1.5  # the answer-rate change the detector looks for (× or ÷)
    occupancy_half_life_s: float = 120.0
    duration_window: float = 2000.0  # talk / wrap-up / ring samples the histograms remember
    model_refresh_s: float = 60.0  # how often the learned distributions are re-tabulated
    prior_answer_rate: float = 0.25
    prior_talk_s: float = 135.0  # REQUIREMENTS.md: ~135 s of talk per connected call
    prior_wrap_up_s: float = 5.0
    prior_answer_delay_s: float = 8.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not 0 < self.abandon_cap <= 1:
            problems.append(
                f"abandon_cap: must be above 0 and at most 1 (100 %), got {self.abandon_cap:g}"
            )
        if not 0 < self.aim <= 1:
            problems.append(f"aim: must be above 0 and at most 1, got {self.aim:g}")
        if not 1 <= self.max_dial_level < math.inf:
            problems.append(f"max_dial_level: must be at least 1, got {self.max_dial_level:g}")
        if not MIN_RING_S <= self.min_ring_s < math.inf:
            problems.append(f"min_ring_s: must be at least {MIN_RING_S:g}, got {self.min_ring_s:g}")
        if not 0 < self.connect_within_s < math.inf:
            problems.append(f"connect_within_s: must be above 0, got {self.connect_within_s:g}")
        if not 0 <= self.lockout_minutes < math.inf:
            problems.append(f"lockout_minutes: must be 0 or more, got {self.lockout_minutes:g}")
        if not 0 < self.target_occupancy <= 1:
            problems.append(
                f"target_occupancy: must be above 0 and at most 1, got {self.target_occupancy:g}"
            )
        for name in ("reserve_abandons", "slow_down_abandons"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                problems.append(f"{name}: must be 0 or more, got {value:g}")
        if not 1 < self.change_ratio < math.inf:
            problems.append(f"change_ratio: must be above 1, got {self.change_ratio:g}")
        if not 0 < self.prior_answer_rate < 1:
            problems.append(
                f"prior_answer_rate: must be between 0 and 1, got {self.prior_answer_rate:g}"
            )
        for name in (
            "gain",
            "answer_half_life_s",
            "answer_half_life_attempts",
            "fast_half_life_s",
            "change_threshold",
            "occupancy_half_life_s",
            "duration_window",
            "model_refresh_s",
            "prior_talk_s",
            "prior_wrap_up_s",
            "prior_answer_delay_s",
        ):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                problems.append(f"{name}: must be above 0, got {value:g}")
        if problems:
            raise PacingError(problems)

    @property
    def lockout(self) -> timedelta:
        """How long a lead whose call was abandoned is left alone."""
        return timedelta(minutes=self.lockout_minutes)


@dataclass(frozen=True, slots=True)
class FloorState:
    """The campaign's floor at one instant; instants are the caller's monotonic seconds."""

    day: date  # the campaign's local calendar day: which daily tally applies
    ready: int  # agents READY, waiting for a call
    talking: tuple[float, ...] = ()  # when each talking agent's call was bridged
    wrap_up: tuple[float, ...] = ()  # when each agent in wrap-up entered it
    ringing: tuple[float, ...] = ()  # when each call in flight (not yet answered) was launched
    waiting: int = 0  # live customers answered and waiting for an agent

    def __post_init__(self) -> None:
        problems = [
            f"{name}: must be 0 or more, got {value}"
            for name, value in (("ready", self.ready), ("waiting", self.waiting))
            if value < 0
        ]
        if problems:
            raise PacingError(problems)

    @property
    def working(self) -> int:
        """Agents signed in and working the campaign: ready, talking or in wrap-up."""
        return self.ready + len(self.talking) + len(self.wrap_up)


class PacingMode(StrEnum):
    PREDICTIVE = "predictive"
    PROGRESSIVE = "progressive"  # held back: no more calls in flight than READY agents
    IDLE = "idle"  # no agent to connect a call to


class Limit(StrEnum):
    """What bounded the launch count (a bounded label set, for metrics)."""

    RISK = "risk"  # the overflow model at the current risk
    DIAL_LEVEL = "dial_level"
    DAILY_CAP = "daily_cap"
    ROLLING_CAP = "rolling_cap"
    NO_AGENTS = "no_agents"


@dataclass(frozen=True, slots=True)
class Decision:
    """Calls to launch now, and every input the controller used (published as events)."""

    launch: int
    mode: PacingMode
    limit: Limit
    dial_level: float  # calls in flight after this launch, per working agent
    ready: int
    working: int
    ringing: int
    waiting: int
    answer_rate: float
    horizon_s: float
    expected_free: float  # agents free within the horizon
    expected_answers: float  # live answers to come from calls ringing and customers waiting
    risk: float  # tolerated expected overflow, as a share of expected answers
    occupancy: float  # recent share of working agents talking or in wrap-up
    abandon_rate_today: float
    abandon_rate_30d: float
    headroom_today: float  # abandons still allowed today before the cap
    headroom_30d: float


@dataclass(frozen=True, slots=True)
class DayTally:
    live_answers: int = 0
    abandoned: int = 0

    @property
    def rate(self) -> float:
        return self.abandoned / self.live_answers if self.live_answers else 0.0

    def headroom(self, cap: float) -> float:
        """How many more abandons keep the rate at or under ``cap``."""
        return cap * self.live_answers - self.abandoned

    def __add__(self, other: DayTally) -> DayTally:
        return DayTally(self.live_answers + other.live_answers, self.abandoned + other.abandoned)


class AbandonTally:
    """Live answers and abandons per local day; today and the rolling 30 days."""

    def __init__(self) -> None:
        self._days: dict[date, DayTally] = {}
        self._newest: date | None = None
        self._rolling: tuple[date, DayTally] | None = None  # asked for every tick: kept

    def add(self, day: date, *, abandoned: bool, live_answers: int = 1) -> None:
        if self._newest is None or day > self._newest:
            self._newest = day
            oldest = day - timedelta(days=ROLLING_DAYS - 1)
            self._days = {d: t for d, t in self._days.items() if d >= oldest}
        elif day <= self._newest - timedelta(days=ROLLING_DAYS):
            return  # outside every window still to come
        added = DayTally(live_answers, int(abandoned))
        self._days[day] = self._days.get(day, DayTally()) + added
        if self._rolling is not None:
            end, total = self._rolling
            if end - timedelta(days=ROLLING_DAYS - 1) <= day <= end:
                self._rolling = end, total + added
            elif day > end - timedelta(days=ROLLING_DAYS - 1):
                self._rolling = None  # a later day than the kept window's end

    def today(self, day: date) -> DayTally:
        return self._days.get(day, DayTally())

    def rolling(self, day: date) -> DayTally:
        if self._rolling is not None and self._rolling[0] == day:
            return self._rolling[1]
        oldest = day - timedelta(days=ROLLING_DAYS - 1)
        total = DayTally()
        for d, tally in self._days.items():
            if oldest <= d <= day:
                total = total + tally
        self._rolling = day, total
        return total

    def days(self) -> dict[date, DayTally]:
        return dict(sorted(self._days.items()))


@dataclass(frozen=True, slots=True)
class _Chances:
    """A chance per age bin (the last entry stands for every older age), with its variance."""

    bin_s: float
    chance: list[float]
    variance: list[float]

    @classmethod
    def of(cls, bin_s: float, chance: list[float]) -> _Chances:
        return cls(bin_s, chance, [c * (1 - c) for c in chance])

    def sum_and_variance(self, since: tuple[float, ...], now: float) -> tuple[float, float]:
        """Expected count, and its variance, of items that started at ``since``."""
        if not since:
            return 0.0, 0.0
        per_bin = 1.0 / self.bin_s
        last = len(self.chance) - 1
        if (now - min(since)) * per_bin < last:
            ages = [int((now - t) * per_bin) for t in since]
        else:
            ages = [min(int((now - t) * per_bin), last) for t in since]
        return sum(map(self.chance.__getitem__, ages)), sum(map(self.variance.__getitem__, ages))


_NO_CHANCES = _Chances(1.0, [0.0], [0.0])


class _Durations:
    """A histogram of durations that forgets: the last ``window`` samples weigh most."""

    def __init__(self, bin_s: float, bins: int, window: float, prior_mean_s: float) -> None:
        self.bin_s = bin_s
        self._counts = [0.0] * bins
        self._growth = 1.0 / (1.0 - 1.0 / window)
        self._weight = 1.0
        self._sum_w = 0.0
        self._sum_wx = 0.0
        # A weak prior (a few samples spread around the expected mean) gives a
        # fresh controller a shape; real samples soon outweigh it.
        prior = [k for k in range(bins) if 0.5 <= (k + 0.5) * bin_s / prior_mean_s <= 1.5] or [
            min(int(prior_mean_s / bin_s), bins - 1)
        ]
        for k in prior:
            self._counts[k] = _PRIOR_SAMPLES / len(prior)
            self._sum_wx += (k + 0.5) * bin_s * _PRIOR_SAMPLES / len(prior)
        self._sum_w = _PRIOR_SAMPLES

    def add(self, x: float) -> None:
        k = min(int(max(x, 0.0) / self.bin_s), len(self._counts) - 1)
        w = self._weight
        self._counts[k] += w
        self._sum_w += w
        self._sum_wx += w * x
        self._weight = w * self._growth
        if self._weight > 1e100:
            scale = 1.0 / self._weight
            self._counts = [c * scale for c in self._counts]
            self._sum_w *= scale
            self._sum_wx *= scale
            self._weight = 1.0

    @property
    def mean(self) -> float:
        return self._sum_wx / self._sum_w

    def survival(self) -> list[float]:
        """``s[k]``: the share of samples at least ``k`` bins long (``s[0] == 1``)."""
        total = sum(self._counts)
        tail = list(accumulate(reversed(self._counts)))
        tail.reverse()
        return [t / total for t in tail]

    def done_within(self, horizon_s: float) -> _Chances:
        """``q[k]``: chance a duration already ``k`` bins long ends within ``horizon_s``.

        Where the table cannot tell (the last bin holds every longer duration,
        and past the longest seen) the ending is taken as memoryless with the
        mean duration: there is nothing better to go on."""
        s = self.survival()
        shift = round(horizon_s / self.bin_s)
        memoryless = 1.0 - math.exp(-horizon_s / max(self.mean, self.bin_s))
        known = max(len(s) - 1 - shift, 0)  # ages whose horizon ends inside the table
        q = [
            1.0 - b / a if a > 1e-12 else memoryless
            for a, b in zip(s[:known], s[shift : shift + known], strict=True)
        ]
        q += [memoryless] * (len(s) - known + 1)  # and one for every age past the table
        return _Chances.of(self.bin_s, q)


class _AnswerRate:
    """Live answers per attempt: an EWMA that follows a sudden change within a minute."""

    def __init__(self, settings: PacingSettings) -> None:
        self._s = settings
        self._prior = settings.prior_answer_rate
        self._n = 5.0  # slow sums (attempts, answers), starting from the prior
        self._a = 5.0 * self._prior
        self._fast_n = 0.0
        self._fast_a = 0.0
        self._last: float | None = None
        self._up = 0.0  # CUSUM statistics, one for each direction
        self._down = 0.0
        self.changes = 0

    def seed(self, rate: float, weight: float) -> None:
        self._prior = min(max(rate, 0.001), 0.999)
        self._n = min(weight, self._s.answer_half_life_attempts)
        self._a = self._n * self._prior

    @property
    def rate(self) -> float:
        return (self._a + 0.5 * self._prior) / (self._n + 0.5)

    @property
    def weight(self) -> float:
        """Effective number of attempts behind ``rate``."""
        return self._n + 0.5

    def add(self, now: float, answered: bool) -> None:
        s = self._s
        dt = 0.0 if self._last is None else max(now - self._last, 0.0)
        self._last = now
        # Sparse calls: remember at least the last ``answer_half_life_attempts``.
        slow = max(0.5 ** (dt / s.answer_half_life_s), 0.5 ** (1 / s.answer_half_life_attempts))
        fast = 0.5 ** (dt / s.fast_half_life_s)
        x = 1.0 if answered else 0.0
        p0 = min(max(self.rate, 0.005), 0.99)
        self._n = self._n * slow + 1.0
        self._a = self._a * slow + x
        self._fast_n = self._fast_n * fast + 1.0
        self._fast_a = self._fast_a * fast + x
        self._prior = 0.999 * self._prior + 0.001 * x  # the long run, for the sparse start
        # Page's CUSUM of the log-likelihood ratio "p0 × or ÷ change_ratio" against p0.
        up = min(p0 * s.change_ratio, 0.995)
        down = p0 / s.change_ratio
        if answered:
            self._up = max(0.0, self._up + math.log(up / p0))
            self._down = max(0.0, self._down + math.log(down / p0))
        else:
            self._up = max(0.0, self._up + math.log((1 - up) / (1 - p0)))
            self._down = max(0.0, self._down + math.log((1 - down) / (1 - p0)))
        if max(self._up, self._down) > s.change_threshold:
            # A change: forget all but the last few seconds of outcomes.
            self._n, self._a = self._fast_n, self._fast_a
            self._up = self._down = 0.0
            self.changes += 1


class _RingTimes:
    """How long calls ring before a live answer, or before failing: P(answer | ringing at age)."""

    _BIN_S = 1.0
    _BINS = 180

    def __init__(self, settings: PacingSettings) -> None:
        window = settings.duration_window
        self.answered = _Durations(self._BIN_S, self._BINS, window, settings.prior_answer_delay_s)
        self.failed = _Durations(self._BIN_S, self._BINS, window, settings.min_ring_s)
        self._table: _Chances | None = None
        self._table_rate = -1.0
        self._survivals: tuple[list[float], list[float]] | None = None

    def answer_given_age(self, rate: float) -> _Chances:
        """``c[k]``: chance a call still ringing at ``k`` seconds ends as a live answer."""
        if self._table is None or abs(rate - self._table_rate) > 0.02 * self._table_rate:
            if self._survivals is None:
                self._survivals = self.answered.survival(), self.failed.survival()
            sa, sf = self._survivals
            table = [
                rate * a / (rate * a + (1 - rate) * f) if a > 1e-12 else 0.0
                for a, f in zip(sa, sf, strict=True)
            ]
            table.append(0.0)  # older than any call seen: it will not answer
            self._table, self._table_rate = _Chances.of(self._BIN_S, table), rate
        return self._table

    def invalidate(self) -> None:
        """The learned ring times moved on: tabulate them again when next asked."""
        self._table = None
        self._survivals = None


def _expected_overflow(mean: float, sd: float) -> float:
    """E[max(X, 0)] for X normal(mean, sd²)."""
    if sd < 1e-9:
        return max(mean, 0.0)
    z = mean / sd
    return mean * 0.5 * math.erfc(-z / math.sqrt(2)) + sd * math.exp(-0.5 * z * z) / math.sqrt(
        2 * math.pi
    )


class PacingController:
    """The pure predictive pacing controller of one campaign."""

    def __init__(self, settings: PacingSettings | None = None) -> None:
        self.settings = settings or PacingSettings()
        s = self.settings
        self.tally = AbandonTally()
        self._answers = _AnswerRate(s)
        self._talk = _Durations(2.0, 600, s.duration_window, s.prior_talk_s)
        self._wrap = _Durations(1.0, 180, s.duration_window, s.prior_wrap_up_s)
        self._rings = _RingTimes(s)
        self._target = s.aim * s.abandon_cap
        self._log_risk = math.log(self._target)
        self._occupancy = 0.0
        self._occupancy_at: float | None = None
        self._last_now = -math.inf
        self._tables_at = -math.inf
        self._talk_done = _NO_CHANCES
        self._wrap_done = _NO_CHANCES
        self._horizon_s = 0.0

    # -- what happened -----------------------------------------------------

    def on_outcome(
        self,
        now: float,
        day: date,
        *,
        answered_live: bool,
        abandoned: bool = False,
        ring_s: float | None = None,
    ) -> None:
        """One attempt's pacing outcome: when it was bridged, abandoned, or ended unanswered.

        ``ring_s``: launch to live answer (or to the end of an unanswered call)."""
        if abandoned and not answered_live:
            raise PacingError(["abandoned: only a live answer can be abandoned"])
        if ring_s is not None and not 0 <= ring_s < math.inf:
            raise PacingError([f"ring_s: must be 0 or more, got {ring_s:g}"])
        self._advance(now)
        self._answers.add(now, answered_live)
        if ring_s is not None:
            (self._rings.answered if answered_live else self._rings.failed).add(ring_s)
        if not answered_live:
            return
        self.tally.add(day, abandoned=abandoned)
        s = self.settings
        if abandoned:
            self._log_risk -= s.gain * (1 - self._target)
        elif self._occupancy < s.target_occupancy:
            self._log_risk += s.gain * self._target
        # Bounded so a long quiet or rough spell does not wind the feedback up.
        self._log_risk = min(
            max(self._log_risk, math.log(self._target / 50)), math.log(min(0.5, 20 * self._target))
        )

    def on_talk_ended(self, talk_s: float) -> None:
        if not 0 <= talk_s < math.inf:
            raise PacingError([f"talk_s: must be 0 or more, got {talk_s:g}"])
        self._talk.add(talk_s)

    def on_wrap_up_ended(self, wrap_up_s: float) -> None:
        if not 0 <= wrap_up_s < math.inf:
            raise PacingError([f"wrap_up_s: must be 0 or more, got {wrap_up_s:g}"])
        self._wrap.add(wrap_up_s)

    def remember(self, day: date, *, live: bool, abandoned: bool, ring_s: float | None) -> None:
        """A past call's part in the tallies and ring times: history, so no feedback."""
        if ring_s is not None:
            (self._rings.answered if live else self._rings.failed).add(ring_s)
        if live:
            self.tally.add(day, abandoned=abandoned)

    def remembered(self, live: int, attempts: int) -> None:
        """After ``remember``: the answer rate the past calls give (as ``attempts`` of
        evidence); the learned tables are rebuilt on the next decision."""
        if attempts:
            self._answers.seed(live / attempts, attempts)
        self._tables_at = -math.inf
        self._rings.invalidate()

    def seed_from(self, records: Iterable[CallRecord], *, zone: tzinfo = UTC) -> int:
        """Start the tallies and the learned times from past CDRs; how many were read.

        A record's day is the local day (in the campaign's ``zone``) of its
        answer, or of its creation if it was not answered."""
        seeding = self.seeding(zone)
        for record in records:
            seeding.add(record)
        return seeding.finish()

    def seeding(self, zone: tzinfo = UTC) -> PacingSeed:
        """``seed_from`` one record at a time, for records streamed from a database."""
        return PacingSeed(self, zone)

    # -- the estimates, for boards and tests --------------------------------

    @property
    def answer_rate(self) -> float:
        return self._answers.rate

    @property
    def answer_rate_changes(self) -> int:
        """How many times the detector saw the answer rate jump."""
        return self._answers.changes

    @property
    def risk(self) -> float:
        return math.exp(self._log_risk)

    # -- the decision --------------------------------------------------------

    def decide(self, state: FloorState, now: float) -> Decision:
        self._check(state, now)
        self._advance(now)
        s = self.settings
        working = state.working
        busy = working - state.ready
        if working:
            self._track_occupancy(now, busy / working)
        today = self.tally.today(state.day)
        rolling = self.tally.rolling(state.day)
        headroom_today = today.headroom(s.abandon_cap)
        headroom_30d = rolling.headroom(s.abandon_cap)
        ringing = len(state.ringing)
        in_flight = ringing + state.waiting
        room = max(0, math.floor(s.max_dial_level * working + 1e-9) - ringing)
        progressive = min(max(0, state.ready - in_flight), room)
        rate = self._answers.rate
        self._refresh_tables(now)

        expected_free = expected_answers = 0.0
        mode, limit, launch = PacingMode.PREDICTIVE, Limit.RISK, 0
        if working == 0:
            mode, limit = PacingMode.IDLE, Limit.NO_AGENTS
        else:
            free_var, expected_free = self._supply(state, now)
            answers_var, expected_answers = self._demand(state, now, rate)
            if headroom_today < s.reserve_abandons:
                mode, limit, launch = PacingMode.PROGRESSIVE, Limit.DAILY_CAP, progressive
            elif headroom_30d < s.reserve_abandons:
                mode, limit, launch = PacingMode.PROGRESSIVE, Limit.ROLLING_CAP, progressive
            else:
                # Close to the cap, take less risk: the last abandons are the dearest.
                left = min(headroom_today, headroom_30d) - s.reserve_abandons
                taper = min(1.0, left / s.slow_down_abandons) if s.slow_down_abandons else 1.0
                launch = self._largest_safe(
                    room=room,
                    rate=rate,
                    risk=self.risk * taper,
                    free=expected_free,
                    free_var=free_var,
                    answers=expected_answers,
                    answers_var=answers_var,
                )
                if launch >= room:
                    limit = Limit.DIAL_LEVEL
                launch = max(launch, progressive)
        return Decision(
            launch=launch,
            mode=mode,
            limit=limit,
            dial_level=(ringing + launch) / working if working else 0.0,
            ready=state.ready,
            working=working,
            ringing=ringing,
            waiting=state.waiting,
            answer_rate=rate,
            horizon_s=self._horizon_s,
            expected_free=expected_free,
            expected_answers=expected_answers,
            risk=self.risk,
            occupancy=self._occupancy,
            abandon_rate_today=today.rate,
            abandon_rate_30d=rolling.rate,
            headroom_today=headroom_today,
            headroom_30d=headroom_30d,
        )

    def _check(self, state: FloorState, now: float) -> None:
        if not math.isfinite(now):
            raise PacingError([f"now: must be a finite instant, got {now}"])
        problems = [
            f"{name}: an instant after now ({max(instants):g} > {now:g})"
            for name, instants in (
                ("talking", state.talking),
                ("wrap_up", state.wrap_up),
                ("ringing", state.ringing),
            )
            if instants and max(instants) > now + _EPSILON_S
        ]
        if problems:
            raise PacingError(problems)

    def _advance(self, now: float) -> None:
        if now < self._last_now - _EPSILON_S:
            raise PacingError([f"now: went backwards from {self._last_now:g} to {now:g}"])
        self._last_now = max(now, self._last_now)

    def _track_occupancy(self, now: float, busy_share: float) -> None:
        if self._occupancy_at is None:
            self._occupancy = busy_share
        else:
            keep = 0.5 ** ((now - self._occupancy_at) / self.settings.occupancy_half_life_s)
            self._occupancy = keep * self._occupancy + (1 - keep) * busy_share
        self._occupancy_at = now

    def _refresh_tables(self, now: float) -> None:
        """Re-tabulate the learned distributions now and then (they move slowly)."""
        if now - self._tables_at < self.settings.model_refresh_s:
            return
        self._tables_at = now
        wrap = self._wrap.mean
        self._horizon_s = self._rings.answered.mean + self.settings.connect_within_s
        self._talk_done = self._talk.done_within(max(self._horizon_s - wrap, 0.0))
        self._wrap_done = self._wrap.done_within(self._horizon_s)
        self._rings.invalidate()

    def _supply(self, state: FloorState, now: float) -> tuple[float, float]:
        talk_sum, talk_var = self._talk_done.sum_and_variance(state.talking, now)
        wrap_sum, wrap_var = self._wrap_done.sum_and_variance(state.wrap_up, now)
        return talk_var + wrap_var, state.ready + talk_sum + wrap_sum

    def _demand(self, state: FloorState, now: float, rate: float) -> tuple[float, float]:
        total, var = self._rings.answer_given_age(rate).sum_and_variance(state.ringing, now)
        return var, total + state.waiting

    def _largest_safe(
        self,
        *,
        room: int,
        rate: float,
        risk: float,
        free: float,
        free_var: float,
        answers: float,
        answers_var: float,
    ) -> int:
        """The most new calls whose expected overflow stays within ``risk`` of the answers."""
        # The answer rate is itself an estimate: its error moves all answers together.
        rate_var = rate * (1 - rate) / self._answers.weight
        ringing_equivalent = answers / rate if rate > 0 else 0.0

        def too_risky(n: int) -> bool:
            mean = answers + n * rate
            if mean <= 0:
                return False
            var = (
                free_var
                + answers_var
                + n * rate * (1 - rate)
                + rate_var * (n + ringing_equivalent) ** 2
            )
            return _expected_overflow(mean - free, math.sqrt(var)) > risk * mean

        if too_risky(0):
            return 0
        # Most ticks top up a call or two: search upwards from there, then halve.
        low, high = 0, 1
        while high < room and not too_risky(high):
            low, high = high, 2 * high
        if high >= room:
            if not too_risky(room):
                return room
            high = room
        while high - low > 1:
            mid = (low + high) // 2
            if too_risky(mid):
                high = mid
            else:
                low = mid
        return low


class PacingSeed:
    """Past CDRs fed to a controller one by one; ``finish`` sets the answer rate they give."""

    def __init__(self, controller: PacingController, zone: tzinfo) -> None:
        self._controller = controller
        self._zone = zone
        self.attempts = 0
        self.live = 0

    def add(self, record: CallRecord) -> None:
        controller = self._controller
        self.attempts += 1
        is_live = record.abandoned or (
            record.answered_at_ms is not None and record.answered_by is not AnsweredBy.MACHINE
        )
        self.live += is_live
        at_ms = (record.answered_at_ms if is_live else None) or record.created_at_ms
        controller.remember(
            datetime.fromtimestamp(at_ms / 1000, self._zone).date(),
            live=is_live,
            abandoned=record.abandoned,
            ring_s=record.ring_ms / 1000 if record.ring_ms > 0 else None,
        )
        if record.bridged_at_ms is not None and record.talk_ms > 0:
            controller.on_talk_ended(record.talk_ms / 1000)
        if record.wrap_up_ms is not None and record.wrap_up_ms >= 0:  # a bad row teaches nothing
            controller.on_wrap_up_ended(record.wrap_up_ms / 1000)

    def finish(self) -> int:
        """How many records were read; the learned tables are rebuilt on the next decision."""
        self._controller.remembered(self.live, self.attempts)
        return self.attempts
