"""What is read at scrape time (agents, engine, quota) and what the service sets (pacing, caps)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrics.errors import MetricsError
from metrics.registry import FloorMetrics
from metrics.sources import AgentsByState, EngineSnapshot, EngineSource, RtpFigures, TrunkFigures

T0_MS = 1_767_225_600_000


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def make(
    *, agents_by_state: AgentsByState | None = None, engine: EngineSource | None = None
) -> tuple[CollectorRegistry, FloorMetrics]:
    registry = CollectorRegistry()
    metrics = FloorMetrics(
        registry,
        now_ms=lambda: T0_MS,
        tz=ZoneInfo("UTC"),
        agents_by_state=agents_by_state,
        engine=engine,
    )
    return registry, metrics


def test_agents_by_state_is_read_at_each_scrape() -> None:
    floor = {"ready": 3, "talking": 5}
    registry, _ = make(agents_by_state=lambda: dict(floor))
    assert value(registry, "dialer_agents", state="ready") == 3
    floor["ready"] = 1
    floor["paused"] = 2
    assert value(registry, "dialer_agents", state="ready") == 1
    assert value(registry, "dialer_agents", state="paused") == 2


def test_engine_snapshot_is_exported_as_is() -> None:
    snapshot = EngineSnapshot(
        sip_requests={"INVITE": 40, "BYE": 38},
        sip_responses={"2xx": 70, "4xx": 3},
        sip_malformed=2,
        sip_transaction_timeouts=1,
        sip_transactions_in_flight=4,
        phones={"unregistered": 1},
        trunks={
            "t1": TrunkFigures(
                up=True, registration="registered", channels_in_use=7, channels_limit=30
            ),
            "t2": TrunkFigures(up=False, registration="failed", failures=5),
        },
        rtp={
            "customer": RtpFigures(
                packets_received=1000, packets_sent=990, packets_lost=10, jitter_seconds=0.012
            )
        },
        cdr_journal_backlog=12,
        database_up=True,
        mqtt_up=False,
    )
    registry, _ = make(engine=lambda: snapshot)
    assert value(registry, "dialer_sip_requests_total", method="INVITE") == 40
    assert value(registry, "dialer_sip_responses_total", **{"class": "4xx"}) == 3
    assert value(registry, "dialer_sip_malformed_total") == 2
    assert value(registry, "dialer_sip_transaction_timeouts_total") == 1
    assert value(registry, "dialer_sip_transactions_in_flight") == 4
    # "registered" is always there, so that "no phone registered" can alert.
    assert value(registry, "dialer_phones", state="registered") == 0
    assert value(registry, "dialer_phones", state="unregistered") == 1
    assert value(registry, "dialer_trunk_up", trunk="t1") == 1
    assert value(registry, "dialer_trunk_up", trunk="t2") == 0
    assert value(registry, "dialer_trunk_registration", trunk="t2", state="failed") == 1
    assert value(registry, "dialer_trunk_channels_in_use", trunk="t1") == 7
    assert value(registry, "dialer_trunk_channels_limit", trunk="t1") == 30
    assert value(registry, "dialer_trunk_channels_limit", trunk="t2") is None
    assert value(registry, "dialer_trunk_failures_total", trunk="t2") == 5
    assert value(registry, "dialer_rtp_packets_received_total", leg="customer") == 1000
    assert value(registry, "dialer_rtp_packets_sent_total", leg="customer") == 990
    assert value(registry, "dialer_rtp_packets_lost_total", leg="customer") == 10
    assert value(registry, "dialer_rtp_jitter_seconds", leg="customer") == 0.012
    assert value(registry, "dialer_cdr_journal_backlog") == 12
    assert value(registry, "dialer_database_up") == 1
    assert value(registry, "dialer_mqtt_up") == 0


def test_a_failing_snapshot_leaves_its_metrics_out_counts_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = {"now": True}

    def engine() -> EngineSnapshot:
        if broken["now"]:
            raise RuntimeError("endpoint gone")
        return EngineSnapshot(database_up=True)

    registry, _ = make(engine=engine)
    with caplog.at_level(logging.ERROR, logger="metrics.collectors"):
        for _ in range(3):
            text = generate_latest(registry).decode()
    assert "\ndialer_database_up " not in text  # a sample line, not the HELP line
    assert value(registry, "dialer_engine_snapshot_failures_total") == 4
    assert [r.getMessage() for r in caplog.records].count(
        "metrics: the engine snapshot failed; its metrics are left out"
    ) == 1
    broken["now"] = False
    assert value(registry, "dialer_database_up") == 1
    assert value(registry, "dialer_engine_snapshot_failures_total") == 4


@dataclass(frozen=True)
class Progress:
    agent: str
    team: str | None
    counts: Mapping[str, float]
    targets: Mapping[str, float]
    shortfall: Mapping[str, float] = field(default_factory=dict)


def test_quota_keeps_the_latest_standing_per_agent() -> None:
    registry, metrics = make()
    metrics.observe_quota(
        Progress(
            "a1", "blue", {"effective_calls": 6}, {"effective_calls": 20}, {"effective_calls": 14}
        )
    )
    metrics.observe_quota(Progress("a2", None, {"talk_seconds": 3600}, {"talk_seconds": 0}))
    metrics.observe_quota(
        Progress(
            "a1", "blue", {"effective_calls": 10}, {"effective_calls": 20}, {"effective_calls": 10}
        )
    )
    labels = {"agent": "a1", "team": "blue", "target": "effective_calls"}
    assert value(registry, "dialer_quota_count", **labels) == 10
    assert value(registry, "dialer_quota_target", **labels) == 20
    assert value(registry, "dialer_quota_shortfall", **labels) == 10
    assert value(registry, "dialer_quota_progress_ratio", **labels) == 0.5
    a2 = {"agent": "a2", "team": "none", "target": "talk_seconds"}
    assert value(registry, "dialer_quota_count", **a2) == 3600
    assert value(registry, "dialer_quota_progress_ratio", **a2) is None  # a zero target
    metrics.forget_quota("a1")
    assert value(registry, "dialer_quota_count", **labels) is None
    assert value(registry, "dialer_quota_count", **a2) == 3600


def test_bad_quota_progress_is_refused_naming_every_problem() -> None:
    registry, metrics = make()
    with pytest.raises(MetricsError) as caught:
        metrics.observe_quota(Progress("", None, {"calls": float("nan")}, {"calls": -1, "": 2}))
    assert caught.value.problems == (
        "agent is empty",
        "counts['calls'] must be a finite number >= 0, got nan",
        "targets['calls'] must be a finite number >= 0, got -1",
        "targets has an empty target name",
    )
    assert value(registry, "dialer_quota_count", agent="", team="none", target="calls") is None


def test_dial_level_and_abandon_cap_are_set_and_checked() -> None:
    registry, metrics = make()
    metrics.set_dial_level("c1", 2.4)
    metrics.set_abandon_cap("c1", 0.03)
    assert value(registry, "dialer_dial_level", campaign="c1") == 2.4
    assert value(registry, "dialer_abandon_cap_ratio", campaign="c1") == 0.03
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(MetricsError, match="dial level of campaign 'c1': must be a finite"):
            metrics.set_dial_level("c1", bad)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(MetricsError, match="abandon cap of campaign 'c1': must be above 0"):
            metrics.set_abandon_cap("c1", bad)
    assert value(registry, "dialer_dial_level", campaign="c1") == 2.4


def test_names_list_every_exported_sample_and_the_text_format_parses() -> None:
    snapshot = EngineSnapshot(trunks={"t1": TrunkFigures(up=True)}, rtp={"agent": RtpFigures()})
    registry, metrics = make(engine=lambda: snapshot, agents_by_state=lambda: {"ready": 1})
    metrics.set_dial_level("c1", 1.0)
    exported = {
        sample.name
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert exported <= metrics.names
    assert all(name.startswith("dialer_") for name in metrics.names)
    counters = {name for name in metrics.names if name.endswith("_total")}
    assert "dialer_dial_attempts_total" in counters
    assert "dialer_talk_seconds_bucket" in metrics.names
    assert "dialer_dial_attempts" not in metrics.names  # not a sample name


def test_metrics_are_declared_once_per_registry() -> None:
    registry, _ = make()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        FloorMetrics(registry, now_ms=lambda: T0_MS, tz=ZoneInfo("UTC"))
    FloorMetrics(CollectorRegistry(), now_ms=lambda: T0_MS, tz=ZoneInfo("UTC"))
