"""The predictive pacing controller: settings, the caps, the estimators, and a simulated shift."""

from __future__ import annotations

import functools
import math
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.record import AnsweredBy, CallRecord, Outcome
from dialer.dialing.floor_sim import (
    DayResult,
    FloorMode,
    Scenario,
    delay_quantile_s,
    simulate,
)
from dialer.dialing.pacing import (
    ROLLING_DAYS,
    AbandonTally,
    FloorState,
    Limit,
    PacingController,
    PacingError,
    PacingMode,
    PacingSettings,
)

DAY = date(2025, 3, 3)


def warmed(
    controller: PacingController | None = None,
    *,
    answers: int = 2000,
    abandons: int = 0,
    rate: float = 0.25,
    day: date = DAY,
    start: float = 0.0,
) -> PacingController:
    """A controller that has seen ``answers`` live answers (and the attempts around them) today."""
    controller = controller or PacingController()
    attempts = round(answers / rate)
    rng = random.Random(7)
    live = set(rng.sample(range(attempts), answers))
    dropped = set(rng.sample(sorted(live), abandons))
    for i in range(attempts):
        now = start + i * 0.3
        is_live = i in live
        controller.on_outcome(
            now,
            day,
            answered_live=is_live,
            abandoned=i in dropped,
            ring_s=rng.uniform(4, 12) if is_live else rng.choice((5.0, 30.0)),
        )
        if is_live and i not in dropped:
            controller.on_talk_ended(rng.lognormvariate(4.6, 0.8))
            controller.on_wrap_up_ended(rng.uniform(3, 8))
    return controller


def busy_floor(now: float, *, ready: int = 5, talking: int = 90, ringing: int = 10) -> FloorState:
    """A floor of 100 agents, most of them talking, a few calls ringing."""
    return FloorState(
        day=DAY,
        ready=ready,
        talking=tuple(now - 5.0 - 3.0 * i for i in range(talking)),
        wrap_up=tuple(now - 1.0 for _ in range(100 - ready - talking)),
        ringing=tuple(now - 1.0 - i for i in range(ringing)),
    )


# -- settings -----------------------------------------------------------------


def test_settings_errors_list_every_problem() -> None:
    with pytest.raises(PacingError) as caught:
        PacingSettings(
            abandon_cap=0.0,
            max_dial_level=0.5,
            min_ring_s=10.0,
            connect_within_s=0.0,
            lockout_minutes=-1.0,
            target_occupancy=1.5,
            gain=-1.0,
        )
    keys = [problem.split(":")[0] for problem in caught.value.problems]
    assert keys == [
        "abandon_cap",
        "max_dial_level",
        "min_ring_s",
        "connect_within_s",
        "lockout_minutes",
        "target_occupancy",
        "gain",
    ]
    assert "abandon_cap: must be above 0 and at most 1 (100 %), got 0" in str(caught.value)
    assert "min_ring_s: must be at least 15, got 10" in str(caught.value)


@pytest.mark.parametrize("cap", [-0.01, 0.0, 1.01, math.nan, math.inf])
def test_an_abandon_cap_out_of_range_is_refused(cap: float) -> None:
    with pytest.raises(PacingError, match="abandon_cap"):
        PacingSettings(abandon_cap=cap)


def test_the_edges_of_the_ranges_are_accepted() -> None:
    edge = PacingSettings(abandon_cap=1.0, max_dial_level=1.0, min_ring_s=15.0, lockout_minutes=0)
    assert edge.lockout == timedelta(0)
    assert PacingSettings().lockout == timedelta(hours=72)


def test_floor_state_refuses_negative_counts() -> None:
    with pytest.raises(PacingError) as caught:
        FloorState(day=DAY, ready=-1, waiting=-2)
    assert caught.value.problems == [
        "ready: must be 0 or more, got -1",
        "waiting: must be 0 or more, got -2",
    ]


def test_instants_after_now_and_time_going_backwards_are_errors() -> None:
    controller = PacingController()
    with pytest.raises(PacingError) as caught:
        controller.decide(FloorState(day=DAY, ready=1, talking=(11.0,), ringing=(12.0,)), 10.0)
    assert [p.split(":")[0] for p in caught.value.problems] == ["talking", "ringing"]
    controller.decide(FloorState(day=DAY, ready=1), 10.0)
    with pytest.raises(PacingError, match="went backwards from 10 to 9"):
        controller.decide(FloorState(day=DAY, ready=1), 9.0)


def test_only_a_live_answer_can_be_abandoned() -> None:
    with pytest.raises(PacingError, match="only a live answer"):
        PacingController().on_outcome(0.0, DAY, answered_live=False, abandoned=True)


# -- never a call it cannot connect ---------------------------------------------


def test_no_agents_no_calls_even_with_room_under_the_cap() -> None:
    controller = warmed()
    now = 10_000.0
    for state in (
        FloorState(day=DAY, ready=0),
        FloorState(day=DAY, ready=0, ringing=(now - 3,), waiting=1),
    ):
        decision = controller.decide(state, now)
        assert decision.launch == 0
        assert (decision.mode, decision.limit) == (PacingMode.IDLE, Limit.NO_AGENTS)
        assert decision.dial_level == 0.0


def test_predictive_dials_ahead_of_agents_about_to_be_free() -> None:
    controller = warmed()
    now = 10_000.0
    decision = controller.decide(busy_floor(now), now)
    assert decision.mode is PacingMode.PREDICTIVE
    # More than progressive would (5 ready, 10 ringing: nothing), fewer than the dial level cap.
    assert 0 < decision.launch < 3 * 100 - 10
    assert decision.expected_free > 5
    assert decision.dial_level == pytest.approx((10 + decision.launch) / 100)
    assert decision.answer_rate == pytest.approx(0.25, abs=0.05)
    assert decision.working == 100 and decision.ringing == 10 and decision.ready == 5


# -- the cap, today and over 30 days ---------------------------------------------


def test_holds_back_to_progressive_when_today_is_at_the_cap() -> None:
    controller = warmed(answers=1000, abandons=30)  # exactly 3 %
    now = 10_000.0
    decision = controller.decide(busy_floor(now, ready=20, talking=75, ringing=4), now)
    assert (decision.mode, decision.limit) == (PacingMode.PROGRESSIVE, Limit.DAILY_CAP)
    assert decision.launch == 20 - 4  # one call per READY agent not already covered
    assert decision.abandon_rate_today == pytest.approx(0.03)
    assert decision.headroom_today == pytest.approx(0.0)
    # The same floor with abandons well under the cap dials ahead of it.
    relaxed = warmed(answers=1000, abandons=10)
    assert relaxed.decide(busy_floor(now, ready=20, talking=75, ringing=4), now).launch > 16


def test_a_new_day_starts_a_fresh_daily_tally() -> None:
    controller = warmed(answers=1000, abandons=30)
    tomorrow = DAY + timedelta(days=1)
    assert controller.tally.today(tomorrow).live_answers == 0
    # And with nothing answered yet today, nothing can be afforded: progressive.
    decision = controller.decide(
        FloorState(day=tomorrow, ready=10, talking=tuple(range(80))), 86_400.0
    )
    assert (decision.mode, decision.limit) == (PacingMode.PROGRESSIVE, Limit.DAILY_CAP)
    assert decision.launch == 10


def test_holds_back_when_the_30_day_rate_is_at_the_cap() -> None:
    controller = PacingController()
    for back in range(1, ROLLING_DAYS):  # 29 days at 3.5 %
        day = DAY - timedelta(days=back)
        controller.tally.add(day, abandoned=False, live_answers=965)
        for _ in range(35):
            controller.tally.add(day, abandoned=True)
    warmed(controller, answers=1000, abandons=0)  # a clean day so far
    now = 10_000.0
    decision = controller.decide(busy_floor(now, ready=20, talking=75, ringing=4), now)
    assert decision.headroom_today == pytest.approx(30.0)
    assert decision.abandon_rate_30d > 0.03
    assert (decision.mode, decision.limit) == (PacingMode.PROGRESSIVE, Limit.ROLLING_CAP)
    assert decision.launch == 16


def test_the_rolling_window_drops_days_older_than_30() -> None:
    tally = AbandonTally()
    tally.add(DAY, abandoned=True)
    tally.add(DAY, abandoned=False, live_answers=9)
    assert tally.rolling(DAY).rate == pytest.approx(0.1)
    last_in = DAY + timedelta(days=ROLLING_DAYS - 1)
    tally.add(last_in, abandoned=False, live_answers=10)
    assert tally.rolling(last_in).live_answers == 20
    first_out = DAY + timedelta(days=ROLLING_DAYS)
    tally.add(first_out, abandoned=False, live_answers=5)
    assert tally.rolling(first_out).live_answers == 15
    assert tally.rolling(first_out).abandoned == 0
    assert DAY not in tally.days()
    # A late outcome for a day no future window holds is not counted anywhere.
    tally.add(DAY, abandoned=True)
    assert tally.rolling(first_out).abandoned == 0


def test_the_kept_rolling_total_follows_new_outcomes() -> None:
    tally = AbandonTally()
    tally.add(DAY, abandoned=False, live_answers=10)
    assert tally.rolling(DAY).live_answers == 10
    tally.add(DAY, abandoned=True)
    tally.add(DAY - timedelta(days=3), abandoned=True)
    assert tally.rolling(DAY) == tally.today(DAY) + tally.today(DAY - timedelta(days=3))
    tally.add(DAY + timedelta(days=1), abandoned=True)
    assert tally.rolling(DAY + timedelta(days=1)).abandoned == 3


# -- learning ------------------------------------------------------------------------


def test_reacts_to_an_answer_rate_drop_within_a_minute() -> None:
    controller = PacingController()
    rng = random.Random(3)
    now = 0.0
    while now < 600:  # ten minutes at 35 %, three attempts a second
        controller.on_outcome(now, DAY, answered_live=rng.random() < 0.35)
        now += 1 / 3
    assert controller.answer_rate == pytest.approx(0.35, abs=0.05)
    floor = busy_floor(now)
    before = controller.decide(floor, now)
    drop = now
    while now < drop + 60:
        controller.on_outcome(now, DAY, answered_live=rng.random() < 0.15)
        now += 1 / 3
    assert controller.answer_rate < 0.22
    assert controller.answer_rate_changes >= 1
    # Fewer answers per call: the same floor now needs more calls.
    after = controller.decide(busy_floor(now), now)
    assert after.answer_rate < before.answer_rate
    assert after.launch > before.launch


def test_a_steady_answer_rate_is_not_mistaken_for_a_change_often() -> None:
    controller = PacingController()
    rng = random.Random(5)
    for i in range(3 * 3600):  # an hour at three attempts a second
        controller.on_outcome(i / 3, DAY, answered_live=rng.random() < 0.25)
    assert controller.answer_rate == pytest.approx(0.25, abs=0.04)
    assert controller.answer_rate_changes < 20


def test_agents_near_the_end_of_a_learned_talk_time_count_as_about_to_be_free() -> None:
    controller = PacingController()
    for _ in range(3000):  # every call lasts 100 s, wrap-up 1 s, answers come after 8 s
        controller.on_talk_ended(100.0)
        controller.on_wrap_up_ended(1.0)
        controller.on_outcome(0.0, DAY, answered_live=True, ring_s=8.0)
    now = 1000.0
    nearly_done = tuple(now - 95.0 for _ in range(10))
    far_from_done = tuple(now - 40.0 for _ in range(10))
    decision = controller.decide(
        FloorState(day=DAY, ready=0, talking=nearly_done + far_from_done), now
    )
    assert decision.horizon_s == pytest.approx(10.0, abs=0.5)
    assert decision.expected_free == pytest.approx(10.0, abs=0.5)


def test_every_abandon_lowers_the_risk_and_clean_answers_raise_it() -> None:
    controller = PacingController()
    start = controller.risk
    controller.on_outcome(1.0, DAY, answered_live=True, abandoned=True)
    lowered = controller.risk
    assert lowered < start
    for i in range(100):
        controller.on_outcome(2.0 + i, DAY, answered_live=True)
    assert controller.risk > lowered


def test_seeding_from_cdrs_starts_the_tallies_on_the_local_day() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    # 23:30 UTC on the 2nd is 07:30 on the 3rd in Shanghai.
    late = int(datetime(2025, 3, 2, 23, 30, tzinfo=UTC).timestamp() * 1000)
    earlier = int(datetime(2025, 2, 20, 4, 0, tzinfo=UTC).timestamp() * 1000)
    records = [
        CallRecord(
            call_id="a1",
            created_at_ms=late,
            answered_at_ms=late + 8000,
            bridged_at_ms=late + 8050,
            talk_ms=120_000,
            outcome=Outcome.ANSWERED,
            wrap_up_ms=5000,
            ring_ms=8000,
        ),
        CallRecord(
            call_id="a2",
            created_at_ms=late,
            answered_at_ms=late + 6000,
            outcome=Outcome.ANSWERED,
            abandoned=True,
            ring_ms=6000,
        ),
        CallRecord(
            call_id="m1",
            created_at_ms=late,
            answered_at_ms=late + 3000,
            outcome=Outcome.ANSWERED,
            answered_by=AnsweredBy.MACHINE,
        ),
        CallRecord(call_id="n1", created_at_ms=late, outcome=Outcome.NO_ANSWER, ring_ms=30_000),
        CallRecord(
            call_id="b1",
            created_at_ms=earlier,
            answered_at_ms=earlier + 5000,
            bridged_at_ms=earlier + 5010,
            talk_ms=60_000,
            outcome=Outcome.ANSWERED,
        ),
        CallRecord(call_id="b2", created_at_ms=earlier, outcome=Outcome.BUSY),
    ]
    controller = PacingController()
    assert controller.seed_from(records, zone=shanghai) == 6
    days = controller.tally.days()
    assert days[date(2025, 3, 3)].live_answers == 2  # the machine is not a live answer
    assert days[date(2025, 3, 3)].abandoned == 1
    assert days[date(2025, 2, 20)].live_answers == 1
    assert controller.tally.rolling(date(2025, 3, 3)).rate == pytest.approx(1 / 3)
    assert controller.answer_rate == pytest.approx(3 / 6, abs=0.05)
    # Past the window the seeded abandon is gone.
    assert controller.tally.rolling(date(2025, 3, 3) + timedelta(days=ROLLING_DAYS)).abandoned == 0


# -- the property: never more than the dial level allows -------------------------


WARM_NOW = 1e6  # the warmed controllers decide at this instant


@functools.cache
def warm_controller(level: float, abandons: int) -> PacingController:
    settings = PacingSettings(max_dial_level=level)
    return warmed(PacingController(settings), answers=1000, abandons=abandons)


instants_ago = st.lists(st.floats(min_value=0, max_value=2000), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    ready=st.integers(min_value=0, max_value=40),
    talking=instants_ago,
    wrap_up=st.lists(st.floats(min_value=0, max_value=60), max_size=20),
    ringing=st.lists(st.floats(min_value=0, max_value=40), max_size=120),
    waiting=st.integers(min_value=0, max_value=5),
    level=st.sampled_from([1.0, 1.5, 3.0]),
    abandons=st.sampled_from([0, 30]),  # well under the cap, and at it
)
def test_launches_never_exceed_the_dial_level_and_need_agents(
    *,
    ready: int,
    talking: list[float],
    wrap_up: list[float],
    ringing: list[float],
    waiting: int,
    level: float,
    abandons: int,
) -> None:
    controller = warm_controller(level, abandons)
    state = FloorState(
        day=DAY,
        ready=ready,
        talking=tuple(WARM_NOW - a for a in talking),
        wrap_up=tuple(WARM_NOW - a for a in wrap_up),
        ringing=tuple(WARM_NOW - a for a in ringing),
        waiting=waiting,
    )
    decision = controller.decide(state, WARM_NOW)
    working = ready + len(talking) + len(wrap_up)
    cap = level * working
    assert 0 <= decision.launch <= cap
    assert len(ringing) + decision.launch <= max(len(ringing), cap)
    if working == 0:
        assert decision.launch == 0
    if decision.mode is PacingMode.PROGRESSIVE:
        assert decision.launch <= max(0, ready - len(ringing) - waiting)


# -- a simulated shift -----------------------------------------------------------------


@pytest.mark.parametrize(("agents", "hours"), [(100, 2), (10, 4)])
def test_a_simulated_shift_stays_under_the_cap(agents: int, hours: int) -> None:
    floor = Scenario(name="25 %", agents=agents, answer_rate=0.25, shift_s=hours * 3600)
    [predictive] = simulate(floor, FloorMode.PREDICTIVE, seed=11)
    [progressive] = simulate(floor, FloorMode.PROGRESSIVE, seed=11)
    assert predictive.live_answers > 15 * agents * hours
    assert predictive.abandon_rate <= 0.03
    assert predictive.abandon_rate_30d <= 0.03
    assert predictive.delay_quantile_s(1.0) <= floor.connect_within_s
    # It really dialed ahead: agents talked more than one call at a time allows.
    assert predictive.occupancy > progressive.occupancy + 0.1
    assert progressive.abandoned == 0


def test_the_simulator_is_reproducible_and_checks_its_floor() -> None:
    small = Scenario(name="small", agents=10, answer_rate=0.3, shift_s=1800)
    assert simulate(small, FloorMode.PREDICTIVE, seed=2) == simulate(
        small, FloorMode.PREDICTIVE, seed=2
    )
    with pytest.raises(ValueError, match="answer_rate: must be between 0 and 1"):
        Scenario(name="bad", answer_rate=1.5)
    with pytest.raises(ValueError, match="give both or neither"):
        Scenario(name="bad", answer_rate_after=0.1)
    with pytest.raises(ValueError, match="under the 15 s"):
        simulate(Scenario(name="short", ring_timeout_s=10.0), FloorMode.PROGRESSIVE)


def test_delay_quantiles_count_the_calls_that_never_waited() -> None:
    day = DayResult(
        day=DAY,
        mode=FloorMode.PREDICTIVE,
        agents=1,
        shift_s=1.0,
        launched=0,
        live_answers=100,
        abandoned=0,
        connected=100,
        talk_s=0.0,
        busy_s=0.0,
        waits_s=(0.5, 1.5),
        abandon_rate_30d=0.0,
    )
    assert day.delay_quantile_s(0.98) == 0.0
    assert day.delay_quantile_s(0.99) == 0.5
    assert delay_quantile_s([day, day], 1.0) == 1.5
