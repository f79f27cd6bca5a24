"""FloorMetrics fed event lists: what each event moves, read back from the registry."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from dialer.events import (
    AgentStateChanged,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    CallStarted,
    Direction,
    DtmfReceived,
    Event,
    HangupBy,
    MediaTimeout,
    PhoneRegistered,
    PhoneUnregistered,
    RecordingClosed,
    RecordingFailed,
)
from metrics.registry import FloorMetrics

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.ms = T0_MS

    def __call__(self) -> int:
        return self.ms


def make(
    clock: Clock | None = None, max_calls: int = 1000
) -> tuple[CollectorRegistry, FloorMetrics]:
    registry = CollectorRegistry()
    metrics = FloorMetrics(
        registry, now_ms=clock or Clock(), tz=ZoneInfo("Europe/Paris"), max_calls=max_calls
    )
    return registry, metrics


def assigned(
    call_id: str,
    campaign: str | None = "c1",
    trunk: str | None = "t1",
    direction: Direction = Direction.OUTBOUND,
    at_ms: int = T0_MS,
) -> CallAssigned:
    return CallAssigned(
        call_id=call_id,
        at_ms=at_ms,
        mono=0.0,
        campaign=campaign,
        lead_id="L1",
        agent="a1",
        mode="progressive",
        direction=direction,
        number="+8613800000001",
        trunk=trunk,
    )


def ended(call_id: str, outcome: CallOutcome, at_ms: int = T0_MS) -> CallEnded:
    return CallEnded(
        call_id=call_id,
        at_ms=at_ms,
        mono=1.0,
        outcome=outcome,
        status=None,
        q850_cause=None,
        hangup_by=HangupBy.REMOTE,
    )


def started(call_id: str) -> CallStarted:
    return CallStarted(call_id=call_id, at_ms=T0_MS, mono=0.1, target="sip:13800000001@gw")


def bridged(call_id: str) -> CallBridged:
    return CallBridged(call_id=call_id, at_ms=T0_MS, mono=0.5, agent_leg="leg-a1")


def agent(name: str, previous: str, state: str, mono: float, reason: str | None = None) -> Event:
    return AgentStateChanged(
        agent=name, previous=previous, state=state, reason=reason, at_ms=T0_MS, mono=mono
    )


def feed(metrics: FloorMetrics, events: Iterable[Event]) -> None:
    for event in events:
        metrics.observe(event)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_attempts_outcomes_and_in_progress_follow_each_call() -> None:
    registry, metrics = make()
    feed(metrics, [assigned("k1"), assigned("k2"), assigned("k3", campaign="c2", trunk="t2")])
    assert value(registry, "dialer_dial_attempts_total", campaign="c1") == 2
    assert value(registry, "dialer_dial_attempts_total", campaign="c2") == 1
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 2

    feed(
        metrics,
        [
            *(started(k) for k in ("k1", "k2", "k3")),
            CallAnswered(call_id="k1", at_ms=T0_MS, mono=0.4, status=200),
            bridged("k1"),
            ended("k1", CallOutcome.ANSWERED),
            ended("k2", CallOutcome.BUSY),
            ended("k3", CallOutcome.TRUNK_FAILURE),
        ],
    )
    assert value(registry, "dialer_calls_bridged_total", campaign="c1") == 1
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="answered") == 1
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="busy") == 1
    assert (
        value(registry, "dialer_trunk_call_outcomes_total", trunk="t2", outcome="trunk_failure")
        == 1
    )
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 0
    assert value(registry, "dialer_calls_in_progress", campaign="c2") == 0


def test_an_end_for_a_call_never_assigned_is_not_an_outcome() -> None:
    # A nailed-up agent leg ends under its own id: it is not a dial outcome.
    registry, metrics = make()
    feed(metrics, [assigned("k1"), ended("agent-leg-1", CallOutcome.ANSWERED), bridged("x")])
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="answered") is None
    assert value(registry, "dialer_calls_bridged_total", campaign="c1") is None
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 1


def test_a_customer_never_dialed_is_a_call_outcome_but_not_its_trunks() -> None:
    # A desk phone rung per call declined: the customer's INVITE never left on t1.
    registry, metrics = make()
    feed(metrics, [assigned("k1", trunk="t1"), ended("k1", CallOutcome.CANCELLED)])
    feed(metrics, [assigned("k2", trunk="t1"), started("k2"), ended("k2", CallOutcome.CANCELLED)])
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="cancelled") == 2
    assert (
        value(registry, "dialer_trunk_call_outcomes_total", trunk="t1", outcome="cancelled") == 1
    )


def test_an_inbound_call_came_in_on_its_trunk() -> None:
    registry, metrics = make()
    inbound = assigned("k1", trunk="t1", direction=Direction.INBOUND)
    feed(metrics, [inbound, ended("k1", CallOutcome.ANSWERED)])
    assert value(registry, "dialer_trunk_call_outcomes_total", trunk="t1", outcome="answered") == 1


def test_a_second_end_of_the_same_call_counts_once() -> None:
    registry, metrics = make()
    feed(metrics, [assigned("k1"), ended("k1", CallOutcome.BUSY), ended("k1", CallOutcome.BUSY)])
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="busy") == 1
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 0


def test_missing_campaign_and_trunk_are_labelled_none_and_inbound_is_apart() -> None:
    registry, metrics = make()
    feed(
        metrics,
        [
            assigned("k1", campaign=None, trunk=None),
            assigned("k2", direction=Direction.INBOUND),
            started("k1"),
            ended("k1", CallOutcome.NO_ANSWER),
        ],
    )
    assert value(registry, "dialer_dial_attempts_total", campaign="none") == 1
    assert value(registry, "dialer_dial_attempts_total", campaign="c1") is None
    assert value(registry, "dialer_inbound_calls_total", campaign="c1") == 1
    assert (
        value(registry, "dialer_trunk_call_outcomes_total", trunk="none", outcome="no_answer") == 1
    )


def test_the_call_map_is_bounded_and_evictions_are_counted() -> None:
    registry, metrics = make(max_calls=2)
    feed(metrics, [assigned("k1"), assigned("k2"), assigned("k3", campaign="c2")])
    assert value(registry, "dialer_metrics_calls_evicted_total") == 1
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 1
    assert value(registry, "dialer_calls_in_progress", campaign="c2") == 1
    # k1 was forgotten: its late end is not counted, k2's still is.
    feed(metrics, [ended("k1", CallOutcome.BUSY), ended("k2", CallOutcome.BUSY)])
    assert value(registry, "dialer_call_outcomes_total", campaign="c1", outcome="busy") == 1


def test_a_reassigned_call_id_moves_between_campaigns_without_leaking() -> None:
    registry, metrics = make()
    feed(metrics, [assigned("k1", campaign="c1"), assigned("k1", campaign="c2")])
    assert value(registry, "dialer_calls_in_progress", campaign="c1") == 0
    assert value(registry, "dialer_calls_in_progress", campaign="c2") == 1
    assert value(registry, "dialer_metrics_calls_evicted_total") == 0


def test_agent_wait_is_the_time_spent_ready_and_pauses_count_by_reason() -> None:
    registry, metrics = make()
    feed(
        metrics,
        [
            agent("a1", "connecting", "ready", 10.0),
            agent("a2", "connecting", "ready", 11.0),
            agent("a1", "ready", "reserved", 14.0),  # waited 4 s
            agent("a2", "ready", "paused", 71.0, reason="lunch"),  # waited 60 s
            agent("a2", "paused", "ready", 100.0),
            agent("a2", "ready", "paused", 100.5, reason="lunch"),  # waited 0.5 s
            agent("a1", "reserved", "paused", 200.0),
        ],
    )
    assert value(registry, "dialer_agent_wait_seconds_count") == 3
    assert value(registry, "dialer_agent_wait_seconds_sum") == pytest.approx(64.5)
    assert value(registry, "dialer_agent_wait_seconds_bucket", le="5.0") == 2
    assert value(registry, "dialer_agent_wait_seconds_bucket", le="60.0") == 3
    assert value(registry, "dialer_agent_pauses_total", reason="lunch") == 2
    assert value(registry, "dialer_agent_pauses_total", reason="none") == 1


def test_media_recordings_and_phones() -> None:
    registry, metrics = make()
    feed(
        metrics,
        [
            MediaTimeout(call_id="k1", at_ms=T0_MS, mono=1.0, leg="customer", silent_s=5.0),
            RecordingClosed(
                call_id="k1",
                at_ms=T0_MS,
                mono=1.0,
                path="/r/k1.wav",
                sha256="0" * 64,
                duration_ms=60_000,
                size_bytes=1_920_044,
                agent_speech_ms=20_000,
                customer_speech_ms=30_000,
                overlap_ms=0,
                longest_silence_ms=3_000,
            ),
            RecordingClosed(
                call_id="k2",
                at_ms=T0_MS,
                mono=1.0,
                path="/r/k2.wav",
                sha256="1" * 64,
                duration_ms=1_000,
                size_bytes=32_044,
                agent_speech_ms=0,
                customer_speech_ms=0,
                overlap_ms=0,
                longest_silence_ms=0,
                repaired=True,
            ),
            RecordingFailed(call_id="k3", at_ms=T0_MS, mono=1.0, path="/r/k3.wav", reason="full"),
            PhoneRegistered(at_ms=T0_MS, mono=1.0, extension="1001", contact="sip:x", expires=60),
            PhoneUnregistered(
                at_ms=T0_MS, mono=1.0, extension="1001", contact="sip:x", reason="expired"
            ),
            DtmfReceived(
                call_id="k1", at_ms=T0_MS, mono=1.0, leg="agent", digit="5", duration_ms=80
            ),
        ],
    )
    assert value(registry, "dialer_media_timeouts_total", leg="customer") == 1
    assert value(registry, "dialer_recordings_written_total") == 2
    assert value(registry, "dialer_recordings_repaired_total") == 1
    assert value(registry, "dialer_recording_bytes_total") == 1_920_044 + 32_044
    assert value(registry, "dialer_recordings_failed_total") == 1
    assert value(registry, "dialer_phone_registrations_total") == 1
    assert value(registry, "dialer_phone_unregistrations_total", reason="expired") == 1


def test_event_lag_is_now_minus_the_event_instant() -> None:
    clock = Clock()
    registry, metrics = make(clock)
    clock.ms = T0_MS + 30
    metrics.observe(assigned("k1", at_ms=T0_MS))  # 30 ms late
    clock.ms = T0_MS + 2_000
    metrics.observe(ended("k1", CallOutcome.BUSY, at_ms=T0_MS + 1_000))  # 1 s late
    clock.ms = T0_MS
    metrics.observe(ended("k9", CallOutcome.BUSY, at_ms=T0_MS + 5))  # a clock step: not negative
    assert value(registry, "dialer_event_lag_seconds_count") == 3
    assert value(registry, "dialer_event_lag_seconds_sum") == pytest.approx(1.030)
    assert value(registry, "dialer_event_lag_seconds_bucket", le="0.001") == 1
    assert value(registry, "dialer_event_lag_seconds_bucket", le="0.05") == 2
    assert value(registry, "dialer_event_lag_seconds_bucket", le="1.0") == 3
