"""FloorMetrics fed finished CDRs: durations, live answers, abandons, effective, dispositions."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from cdr.record import AnsweredBy, CallRecord, Outcome
from metrics.errors import MetricsError
from metrics.registry import FloorMetrics

PARIS = ZoneInfo("Europe/Paris")


def ms(text: str) -> int:
    """A Paris wall-clock time as UTC milliseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp() * 1000)


class Clock:
    def __init__(self, at: str) -> None:
        self.ms = ms(at)

    def __call__(self) -> int:
        return self.ms


def make(clock: Clock) -> tuple[CollectorRegistry, FloorMetrics]:
    registry = CollectorRegistry()
    return registry, FloorMetrics(registry, now_ms=clock, tz=PARIS)


def answered(
    call_id: str,
    at: str,
    *,
    campaign: str | None = "c1",
    talk_ms: int = 60_000,
    ring_ms: int = 8_000,
    wrap_up_ms: int | None = 20_000,
    answered_by: AnsweredBy = AnsweredBy.HUMAN,
    effective: bool = True,
    disposition: str | None = "sale",
    agent: str | None = "a1",
) -> CallRecord:
    start = ms(at)
    return CallRecord(
        call_id=call_id,
        campaign=campaign,
        agent=agent,
        number="+8613800000001",
        created_at_ms=start,
        ringing_at_ms=start + 100,
        answered_at_ms=start + 100 + ring_ms,
        bridged_at_ms=start + 200 + ring_ms,
        ended_at_ms=start + 200 + ring_ms + talk_ms,
        ring_ms=ring_ms,
        talk_ms=talk_ms,
        outcome=Outcome.ANSWERED,
        answered_by=answered_by,
        wrap_up_ms=wrap_up_ms,
        disposition=disposition,
        effective=effective,
        effective_rule="default@1",
    )


def abandoned(call_id: str, at: str, campaign: str = "c1") -> CallRecord:
    start = ms(at)
    return CallRecord(
        call_id=call_id,
        campaign=campaign,
        created_at_ms=start,
        ringing_at_ms=start + 100,
        answered_at_ms=start + 5_000,
        ended_at_ms=start + 7_000,
        ring_ms=4_900,
        outcome=Outcome.ANSWERED,
        abandoned=True,
    )


def unanswered(call_id: str, at: str, outcome: Outcome = Outcome.NO_ANSWER) -> CallRecord:
    start = ms(at)
    return CallRecord(
        call_id=call_id,
        campaign="c1",
        created_at_ms=start,
        ringing_at_ms=start + 100 if outcome is Outcome.NO_ANSWER else None,
        ended_at_ms=start + 30_000,
        ring_ms=29_900 if outcome is Outcome.NO_ANSWER else 0,
        outcome=outcome,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_durations_land_in_their_campaigns_histograms() -> None:
    registry, metrics = make(Clock("2026-03-02 12:00"))
    metrics.observe_cdr(answered("k1", "2026-03-02 10:00", talk_ms=45_000, ring_ms=12_000))
    metrics.observe_cdr(answered("k2", "2026-03-02 10:05", talk_ms=400_000, wrap_up_ms=None))
    metrics.observe_cdr(unanswered("k3", "2026-03-02 10:06"))
    metrics.observe_cdr(unanswered("k4", "2026-03-02 10:07", Outcome.INVALID_NUMBER))

    assert value(registry, "dialer_talk_seconds_count", campaign="c1") == 2
    assert value(registry, "dialer_talk_seconds_sum", campaign="c1") == pytest.approx(445.0)
    assert value(registry, "dialer_talk_seconds_bucket", campaign="c1", le="60.0") == 1
    assert value(registry, "dialer_talk_seconds_bucket", campaign="c1", le="600.0") == 2
    # Ring time only for attempts that rang: the invalid number never did.
    assert value(registry, "dialer_ring_seconds_count", campaign="c1") == 3
    assert value(registry, "dialer_ring_seconds_sum", campaign="c1") == pytest.approx(49.9)
    assert value(registry, "dialer_wrap_up_seconds_count", campaign="c1") == 1
    assert value(registry, "dialer_wrap_up_seconds_sum", campaign="c1") == pytest.approx(20.0)


def test_live_answers_exclude_machines_and_include_abandons() -> None:
    registry, metrics = make(Clock("2026-03-02 12:00"))
    metrics.observe_cdr(answered("k1", "2026-03-02 10:00"))
    metrics.observe_cdr(answered("k2", "2026-03-02 10:01", answered_by=AnsweredBy.UNKNOWN))
    metrics.observe_cdr(answered("k3", "2026-03-02 10:02", answered_by=AnsweredBy.MACHINE))
    metrics.observe_cdr(abandoned("k4", "2026-03-02 10:03"))
    metrics.observe_cdr(unanswered("k5", "2026-03-02 10:04"))
    assert value(registry, "dialer_live_answers_total", campaign="c1") == 3
    assert value(registry, "dialer_abandoned_calls_total", campaign="c1") == 1
    assert value(registry, "dialer_abandon_rate_today_ratio", campaign="c1") == pytest.approx(1 / 3)


def test_effective_calls_and_dispositions_by_campaign() -> None:
    registry, metrics = make(Clock("2026-03-02 12:00"))
    metrics.observe_cdr(answered("k1", "2026-03-02 10:00", agent="a1"))
    metrics.observe_cdr(answered("k2", "2026-03-02 10:01", agent="a2", disposition="callback"))
    metrics.observe_cdr(
        answered("k3", "2026-03-02 10:02", agent="a1", effective=False, disposition="no_interest")
    )
    metrics.observe_cdr(answered("k4", "2026-03-02 10:03", campaign=None, agent=None))
    assert value(registry, "dialer_effective_calls_total", campaign="c1", agent="a1") == 1
    assert value(registry, "dialer_effective_calls_total", campaign="c1", agent="a2") == 1
    assert value(registry, "dialer_effective_calls_total", campaign="none", agent="none") == 1
    assert value(registry, "dialer_dispositions_total", campaign="c1", disposition="sale") == 1
    assert value(registry, "dialer_dispositions_total", campaign="c1", disposition="callback") == 1
    assert (
        value(registry, "dialer_dispositions_total", campaign="c1", disposition="no_interest") == 1
    )


def test_abandon_rate_today_starts_at_local_midnight_and_30_days_rolls() -> None:
    clock = Clock("2026-03-02 09:00")
    registry, metrics = make(clock)
    # Yesterday evening: 10 live answers and 1 abandon.
    for i in range(10):
        metrics.observe_cdr(answered(f"y{i}", "2026-03-01 23:30"))
    metrics.observe_cdr(abandoned("y-ab", "2026-03-01 23:50"))
    # Today: 3 live, 1 of them abandoned. 00:10 in Paris is still yesterday in UTC.
    metrics.observe_cdr(answered("t1", "2026-03-02 00:10"))
    metrics.observe_cdr(answered("t2", "2026-03-02 08:00"))
    metrics.observe_cdr(abandoned("t-ab", "2026-03-02 08:30"))
    assert value(registry, "dialer_abandon_rate_today_ratio", campaign="c1") == pytest.approx(1 / 3)
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == pytest.approx(2 / 14)

    # A new day: nothing yet today; the window still holds both days.
    clock.ms = ms("2026-03-03 00:01")
    assert value(registry, "dialer_abandon_rate_today_ratio", campaign="c1") == 0.0
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == pytest.approx(2 / 14)

    # 2026-03-01 leaves the window on 2026-03-31 (30 days are 03-02 .. 03-31).
    clock.ms = ms("2026-03-30 12:00")
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == pytest.approx(2 / 14)
    clock.ms = ms("2026-03-31 00:00")
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == pytest.approx(1 / 3)
    clock.ms = ms("2026-04-01 00:00")
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == 0.0
    rates = metrics.abandon_rates()["c1"]
    assert (rates.live_window, rates.abandoned_window) == (0, 0)


def test_history_seeds_the_rates_without_moving_counters() -> None:
    registry, metrics = make(Clock("2026-03-02 12:00"))
    metrics.load_abandon_history(
        [answered("h1", "2026-02-20 10:00"), abandoned("h2", "2026-02-20 11:00")]
    )
    assert value(registry, "dialer_abandon_rate_30d_ratio", campaign="c1") == pytest.approx(0.5)
    assert value(registry, "dialer_abandon_rate_today_ratio", campaign="c1") == 0.0
    assert value(registry, "dialer_live_answers_total", campaign="c1") is None
    assert value(registry, "dialer_talk_seconds_count", campaign="c1") is None


def test_a_cdr_with_negative_durations_is_refused_whole_naming_each() -> None:
    registry, metrics = make(Clock("2026-03-02 12:00"))
    bad = dataclasses.replace(
        answered("k1", "2026-03-02 10:00"), talk_ms=-5, wrap_up_ms=-1, disposition="sale"
    )
    with pytest.raises(MetricsError) as caught:
        metrics.observe_cdr(bad)
    assert str(caught.value) == (
        "CDR of call k1: talk_ms is negative (-5); wrap_up_ms is negative (-1)"
    )
    assert value(registry, "dialer_ring_seconds_count", campaign="c1") is None
    assert value(registry, "dialer_dispositions_total", campaign="c1", disposition="sale") is None
