"""A simulated telesales floor for pacing: agents, customers and the dialer in simulated time.

Discrete events on a heap, a seeded ``random.Random`` and no sleeping, so a
4-hour shift of 100 agents runs in about a second and the same seed gives the
same day. The pacing benchmark (``bench/pacing.py``) and the pacing tests
run the real ``PacingController`` against it.

The floor, per call attempt:

- the customer answers live with the scenario's answer rate (which may
  drop mid-shift), after a log-normal answer delay (mean 8 s);
- the others either ring until the ring timeout (30 s, never under the
  controller's ``min_ring_s``) or fail early (busy, invalid number, powered
  off: 2-10 s), half and half;
- a live answer is bridged at once to a READY agent (the persistent agent
  leg bridges in milliseconds; that is not modelled, so its delay is 0); if
  none is READY the customer waits, is bridged to the first agent to finish
  wrap-up within ``connect_within_s``, or else is abandoned;
- talk time is log-normal with mean 135 s (REQUIREMENTS.md: 18,000
  talk-minutes over 8,000 calls) and sigma 0.8 (median 98 s, coefficient of
  variation 0.95: many short refusals, a long tail of real conversations);
  wrap-up takes 3-8 s, uniformly.

Predictive mode asks the controller every ``tick_s`` (the runner asks every
0.1 s; 1 s keeps the simulation fast and changes little, since calls already
in flight are counted) and feeds it every outcome. Progressive mode dials
one call for each READY agent, the moment it is READY, reserved for it: it
never abandons, and is the baseline. Agents stay signed in the whole shift;
after the shift no call is launched, and the calls in flight are played out.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from dialer.dialing.pacing import (
    Decision,
    FloorState,
    PacingController,
    PacingMode,
    PacingSettings,
)

Observer = Callable[[float, Decision], None]  # every decision, with its instant

DAY_S = 86_400.0
_RESOLVE, _GIVE_UP, _TALK_END, _FREE, _TICK = range(5)


class FloorMode(StrEnum):
    PREDICTIVE = "predictive"
    PROGRESSIVE = "progressive"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    agents: int = 100
    answer_rate: float = 0.25  # live answers per attempt
    answer_rate_after: float | None = None  # the rate from change_at_s on
    change_at_s: float | None = None  # seconds into the shift
    shift_s: float = 4 * 3600.0
    talk_mean_s: float = 135.0
    talk_sigma: float = 0.8  # of log(talk time)
    wrap_up_s: tuple[float, float] = (3.0, 8.0)
    answer_delay_mean_s: float = 8.0
    answer_delay_sigma: float = 0.5
    ring_timeout_s: float = 30.0
    ring_out_share: float = 0.5  # of the attempts not answered live: ring until the timeout
    fail_s: tuple[float, float] = (2.0, 10.0)  # the others fail within this
    connect_within_s: float = 2.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.agents < 1:
            problems.append(f"agents: must be at least 1, got {self.agents}")
        rates = [("answer_rate", self.answer_rate)]
        if self.answer_rate_after is not None:
            rates.append(("answer_rate_after", self.answer_rate_after))
        problems += [
            f"{name}: must be between 0 and 1, got {r:g}" for name, r in rates if not 0 < r < 1
        ]
        if (self.answer_rate_after is None) != (self.change_at_s is None):
            problems.append("answer_rate_after and change_at_s: give both or neither")
        for name in (
            "shift_s",
            "talk_mean_s",
            "talk_sigma",
            "answer_delay_mean_s",
            "answer_delay_sigma",
            "ring_timeout_s",
            "connect_within_s",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name}: must be above 0, got {getattr(self, name):g}")
        for name in ("wrap_up_s", "fail_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                problems.append(f"{name}: must be (low, high) with 0 <= low <= high")
        if not 0 <= self.ring_out_share <= 1:
            problems.append(f"ring_out_share: must be between 0 and 1, got {self.ring_out_share:g}")
        if problems:
            raise ValueError(f"scenario {self.name}: " + "; ".join(problems))

    def rate_at(self, into_shift_s: float) -> float:
        changed = self.change_at_s is not None and into_shift_s >= self.change_at_s
        if changed and self.answer_rate_after is not None:
            return self.answer_rate_after
        return self.answer_rate


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    mode: FloorMode
    agents: int
    shift_s: float
    launched: int
    live_answers: int
    abandoned: int
    connected: int
    talk_s: float  # within the shift
    busy_s: float  # talking or in wrap-up, within the shift
    waits_s: tuple[float, ...]  # answer-to-agent waits of the connected calls that waited
    abandon_rate_30d: float  # the controller's rolling tally at the end of the day
    held_ticks: int = 0  # decisions held back to progressive by a cap
    ticks: int = 0
    mean_dial_level: float = 0.0  # calls in flight per working agent, over the decisions

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.live_answers if self.live_answers else 0.0

    @property
    def occupancy(self) -> float:
        return self.busy_s / (self.agents * self.shift_s)

    @property
    def talk_minutes_per_agent_hour(self) -> float:
        return (self.talk_s / 60) / (self.agents * self.shift_s / 3600)

    def delay_quantile_s(self, q: float) -> float:
        """Answer-to-agent delay at quantile ``q`` over connected calls (0 for no wait)."""
        return delay_quantile_s([self], q)


def delay_quantile_s(days: list[DayResult], q: float) -> float:
    """Answer-to-agent delay at quantile ``q`` over the connected calls of ``days``."""
    connected = sum(d.connected for d in days)
    if connected == 0:
        return 0.0
    waits = sorted(w for d in days for w in d.waits_s)
    rank = math.ceil(q * connected) - 1  # 0-based rank of the quantile among all calls
    zeros = connected - len(waits)
    return 0.0 if rank < zeros else waits[rank - zeros]


class _Day:
    """One shift on the floor; run() plays it out and returns what happened."""

    def __init__(
        self,
        scenario: Scenario,
        mode: FloorMode,
        *,
        rng: random.Random,
        controller: PacingController | None,
        day: date,
        start: float,
        tick_s: float,
        observe: Observer | None,
    ) -> None:
        self.s = scenario
        self.observe = observe
        self.mode = mode
        self.rng = rng
        self.controller = controller
        self.day = day
        self.start = start
        self.end = start + scenario.shift_s
        self.tick_s = tick_s
        self.heap: list[tuple[float, int, int, int, float]] = []
        self.seq = 0
        self.ready: list[int] = []
        self.talking: dict[int, float] = {}
        self.wrapping: dict[int, float] = {}
        self.ringing: dict[int, float] = {}
        self.waiting: dict[int, tuple[float, float]] = {}  # call -> (answered at, ring s)
        self.reserved: dict[int, int] = {}  # progressive: call -> its agent
        self.live: set[int] = set()
        self.next_call = 0
        self.launched = self.live_answers = self.abandoned = self.connected = 0
        self.talk_s = self.busy_s = 0.0
        self.waits: list[float] = []
        self.held = self.ticks = 0
        self.dial_level_sum = 0.0
        # log-normal parameters from the mean: mean = exp(mu + sigma^2 / 2)
        self.talk_mu = math.log(scenario.talk_mean_s) - scenario.talk_sigma**2 / 2
        self.delay_mu = math.log(scenario.answer_delay_mean_s) - scenario.answer_delay_sigma**2 / 2

    def push(self, t: float, kind: int, a: int, b: float = 0.0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def launch(self, t: float, agent: int = -1) -> None:
        s, rng = self.s, self.rng
        call = self.next_call
        self.next_call += 1
        self.launched += 1
        if rng.random() < s.rate_at(t - self.start):
            self.live.add(call)
            ring = min(rng.lognormvariate(self.delay_mu, s.answer_delay_sigma), s.ring_timeout_s)
        elif rng.random() < s.ring_out_share:
            ring = s.ring_timeout_s
        else:
            ring = rng.uniform(*s.fail_s)
        self.ringing[call] = t
        if agent >= 0:
            self.reserved[call] = agent
        self.push(t + ring, _RESOLVE, call, t)

    def connect(self, t: float, agent: int, wait: float, ring: float) -> None:
        talk = self.rng.lognormvariate(self.talk_mu, self.s.talk_sigma)
        self.talking[agent] = t
        self.connected += 1
        if wait > 0:
            self.waits.append(wait)
        within = max(0.0, min(t + talk, self.end) - t)
        self.talk_s += within
        self.busy_s += within
        self.push(t + talk, _TALK_END, agent, talk)
        if self.controller is not None:
            self.controller.on_outcome(t, self.day, answered_live=True, ring_s=ring)

    def resolve(self, t: float, call: int, launched_at: float) -> None:
        del self.ringing[call]
        ring = t - launched_at
        agent = self.reserved.pop(call, -1)
        if call in self.live:
            self.live.discard(call)
            self.live_answers += 1
            if agent >= 0:
                self.connect(t, agent, 0.0, ring)
            elif self.ready:
                self.connect(t, self.ready.pop(), 0.0, ring)
            else:
                self.waiting[call] = (t, ring)
                self.push(t + self.s.connect_within_s, _GIVE_UP, call)
            return
        if self.controller is not None:
            self.controller.on_outcome(t, self.day, answered_live=False, ring_s=ring)
        if agent >= 0:
            self.agent_ready(t, agent)

    def agent_ready(self, t: float, agent: int) -> None:
        if self.mode is FloorMode.PROGRESSIVE:
            if t < self.end:
                self.launch(t, agent)
            return
        if self.waiting:
            call = next(iter(self.waiting))
            answered_at, ring = self.waiting.pop(call)
            self.connect(t, agent, t - answered_at, ring)
        else:
            self.ready.append(agent)

    def tick(self, t: float) -> None:
        assert self.controller is not None
        decision = self.controller.decide(
            FloorState(
                day=self.day,
                ready=len(self.ready),
                talking=tuple(self.talking.values()),
                wrap_up=tuple(self.wrapping.values()),
                ringing=tuple(self.ringing.values()),
                waiting=len(self.waiting),
            ),
            t,
        )
        self.ticks += 1
        if decision.mode is PacingMode.PROGRESSIVE:
            self.held += 1
        self.dial_level_sum += decision.dial_level
        if self.observe is not None:
            self.observe(t, decision)
        for _ in range(decision.launch):
            self.launch(t)
        if t + self.tick_s < self.end:
            self.push(t + self.tick_s, _TICK, 0)

    def run(self) -> DayResult:
        s = self.s
        if self.mode is FloorMode.PROGRESSIVE:
            for agent in range(s.agents):
                self.launch(self.start, agent)
        else:
            self.ready = list(range(s.agents))
            self.push(self.start, _TICK, 0)
        heap, controller, end, rng = self.heap, self.controller, self.end, self.rng
        while heap:
            t, _, kind, a, b = heapq.heappop(heap)
            if kind == _RESOLVE:
                self.resolve(t, a, b)
            elif kind == _TICK:
                self.tick(t)
            elif kind == _TALK_END:
                del self.talking[a]
                if controller is not None:
                    controller.on_talk_ended(b)
                wrap = rng.uniform(*s.wrap_up_s)
                self.wrapping[a] = t
                self.busy_s += max(0.0, min(t + wrap, end) - min(t, end))
                self.push(t + wrap, _FREE, a, wrap)
            elif kind == _FREE:
                del self.wrapping[a]
                if controller is not None:
                    controller.on_wrap_up_ended(b)
                self.agent_ready(t, a)
            elif a in self.waiting:  # _GIVE_UP: no agent came in time
                del self.waiting[a]
                self.abandoned += 1
                if controller is not None:
                    controller.on_outcome(t, self.day, answered_live=True, abandoned=True)
        return DayResult(
            day=self.day,
            mode=self.mode,
            agents=s.agents,
            shift_s=s.shift_s,
            launched=self.launched,
            live_answers=self.live_answers,
            abandoned=self.abandoned,
            connected=self.connected,
            talk_s=self.talk_s,
            busy_s=self.busy_s,
            waits_s=tuple(self.waits),
            abandon_rate_30d=(
                controller.tally.rolling(self.day).rate if controller is not None else 0.0
            ),
            held_ticks=self.held,
            ticks=self.ticks,
            mean_dial_level=self.dial_level_sum / self.ticks if self.ticks else 0.0,
        )


def simulate(
    scenario: Scenario,
    mode: FloorMode,
    *,
    days: int = 1,
    seed: int = 0,
    settings: PacingSettings | None = None,
    controller: PacingController | None = None,
    first_day: date = date(2025, 3, 3),
    tick_s: float = 1.0,
    observe: Observer | None = None,
) -> list[DayResult]:
    """``days`` consecutive shifts; in predictive mode one controller carries across them."""
    return list(
        iter_days(
            scenario,
            mode,
            days=days,
            seed=seed,
            settings=settings,
            controller=controller,
            first_day=first_day,
            tick_s=tick_s,
            observe=observe,
        )
    )


def iter_days(
    scenario: Scenario,
    mode: FloorMode,
    *,
    days: int,
    seed: int,
    settings: PacingSettings | None = None,
    controller: PacingController | None = None,
    first_day: date = date(2025, 3, 3),
    tick_s: float = 1.0,
    observe: Observer | None = None,
) -> Iterator[DayResult]:
    settings = settings or PacingSettings(connect_within_s=scenario.connect_within_s)
    if scenario.ring_timeout_s < settings.min_ring_s:
        raise ValueError(
            f"scenario {scenario.name}: ring_timeout_s {scenario.ring_timeout_s:g} is under "
            f"the {settings.min_ring_s:g} s a ringing customer is always given"
        )
    if scenario.connect_within_s != settings.connect_within_s:
        raise ValueError(
            f"scenario {scenario.name}: connect_within_s {scenario.connect_within_s:g} differs "
            f"from the controller's {settings.connect_within_s:g}"
        )
    if not tick_s > 0:
        raise ValueError(f"tick_s: must be above 0, got {tick_s:g}")
    if mode is FloorMode.PREDICTIVE and controller is None:
        controller = PacingController(settings)
    rng = random.Random(seed)
    for i in range(days):
        floor = _Day(
            scenario,
            mode,
            rng=rng,
            controller=controller if mode is FloorMode.PREDICTIVE else None,
            day=first_day + timedelta(days=i),
            # The monotonic clock runs on across days (and across calls with one controller).
            start=(first_day.toordinal() + i) * DAY_S,
            tick_s=tick_s,
            observe=observe,
        )
        yield floor.run()
