"""Collectors that read state at scrape time instead of counting events.

Agents by state, the engine's counters, quota standing and abandon rates are
state that already exists elsewhere (or is derived from a clock): copying it
on every change would be wasted work and a second owner of the same figure.
Each collector here builds its metric families when Prometheus scrapes, and
``describe`` returns the same families without samples, so the registry knows
every name up front and refuses a duplicate at registration.

A snapshot callable that raises does not fail the scrape: its families are
exported without samples, a failure counter goes up (so an alert can see
it), and the error is logged once per streak of failures, not every scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics.abandon import AbandonLedger, AbandonRates
from metrics.sources import AgentsByState, EngineSnapshot, EngineSource

log = logging.getLogger(__name__)

NO_LABEL = "none"  # the label value for "not set" (no campaign, no team)

T = TypeVar("T")


class _Source(Generic[T]):
    """Calls a snapshot callable, counting and logging (once per streak) its failures.

    ``read`` gives None when no callable was wired in or when it raised: either
    way the families it feeds are exported without samples.
    """

    def __init__(self, name: str, read: Callable[[], T] | None) -> None:
        self.name = name
        self._read = read
        self.failures = 0
        self._failing = False

    def read(self) -> T | None:
        if self._read is None:
            return None
        try:
            value = self._read()
        except Exception:
            self.failures += 1
            if not self._failing:
                log.exception(
                    "metrics: the %s snapshot failed; its metrics are left out", self.name
                )
            self._failing = True
            return None
        if self._failing:
            log.info("metrics: the %s snapshot works again", self.name)
        self._failing = False
        return value

    def failure_family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            f"dialer_{self.name}_snapshot_failures_total",
            f"Scrapes at which the {self.name} snapshot raised and its metrics were left out.",
        )
        family.add_metric([], self.failures)
        return family


class AgentsCollector(Collector):
    """``dialer_agents{state}``: signed-in agents by state, from a callable read per scrape."""

    def __init__(self, agents_by_state: AgentsByState | None) -> None:
        self._source: _Source[Mapping[str, int]] = _Source("agents", agents_by_state)

    def describe(self) -> Iterable[Metric]:
        return [_agents_family(None), self._source.failure_family()]

    def collect(self) -> Iterable[Metric]:
        return [_agents_family(self._source.read()), self._source.failure_family()]


def _agents_family(counts: Mapping[str, int] | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily("dialer_agents", "Agents by state right now.", labels=["state"])
    for state, count in sorted((counts or {}).items()):
        family.add_metric([state], count)
    return family


class EngineCollector(Collector):
    """SIP, registrations, trunks, RTP, journal and connectivity, copied per scrape."""

    def __init__(self, engine: EngineSource | None) -> None:
        self._source: _Source[EngineSnapshot] = _Source("engine", engine)

    def describe(self) -> Iterable[Metric]:
        return [*_engine_families(None), self._source.failure_family()]

    def collect(self) -> Iterable[Metric]:
        return [*_engine_families(self._source.read()), self._source.failure_family()]


def _engine_families(snap: EngineSnapshot | None) -> Iterator[Metric]:
    """The engine's families; without a snapshot, the same families with no samples."""

    def counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=labels)

    def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels)

    requests = counter("dialer_sip_requests_total", "SIP requests received, by method.", ["method"])
    responses = counter(
        "dialer_sip_responses_total", "SIP responses received, by class (2xx...).", ["class"]
    )
    malformed = counter("dialer_sip_malformed_total", "SIP messages refused as malformed.")
    timeouts = counter(
        "dialer_sip_transaction_timeouts_total", "SIP transactions ended by a timer."
    )
    in_flight = gauge("dialer_sip_transactions_in_flight", "SIP transactions not yet finished.")
    phones = gauge("dialer_phones", "Desk phones by registration state.", ["state"])
    trunk_up = gauge("dialer_trunk_up", "1 if calls can go out on the trunk, else 0.", ["trunk"])
    trunk_registration = gauge(
        "dialer_trunk_registration",
        "1 for the trunk's current registration state.",
        ["trunk", "state"],
    )
    channels = gauge("dialer_trunk_channels_in_use", "Trunk channels carrying a call.", ["trunk"])
    channel_limit = gauge(
        "dialer_trunk_channels_limit", "Channels the trunk allows (if limited).", ["trunk"]
    )
    trunk_failures = counter(
        "dialer_trunk_failures_total",
        "Trunk-level failures: registration refused, health check unanswered, transport.",
        ["trunk"],
    )
    rtp_received = counter("dialer_rtp_packets_received_total", "RTP packets received.", ["leg"])
    rtp_sent = counter("dialer_rtp_packets_sent_total", "RTP packets sent.", ["leg"])
    rtp_lost = counter(
        "dialer_rtp_packets_lost_total", "RTP packets expected but never received.", ["leg"]
    )
    jitter = gauge(
        "dialer_rtp_jitter_seconds", "Worst interarrival jitter among live streams.", ["leg"]
    )
    backlog = gauge("dialer_cdr_journal_backlog", "CDR journal entries not yet stored.")
    database = gauge("dialer_database_up", "1 if the database answers, else 0.")
    mqtt = gauge("dialer_mqtt_up", "1 if the MQTT broker connection is up, else 0.")

    if snap is not None:
        for method, count in sorted(snap.sip_requests.items()):
            requests.add_metric([method], count)
        for klass, count in sorted(snap.sip_responses.items()):
            responses.add_metric([klass], count)
        malformed.add_metric([], snap.sip_malformed)
        timeouts.add_metric([], snap.sip_transaction_timeouts)
        in_flight.add_metric([], snap.sip_transactions_in_flight)
        by_state = {"registered": 0, **snap.phones}
        for state, count in sorted(by_state.items()):
            phones.add_metric([state], count)
        for name, trunk in sorted(snap.trunks.items()):
            trunk_up.add_metric([name], 1 if trunk.up else 0)
            trunk_registration.add_metric([name, trunk.registration], 1)
            channels.add_metric([name], trunk.channels_in_use)
            if trunk.channels_limit is not None:
                channel_limit.add_metric([name], trunk.channels_limit)
            trunk_failures.add_metric([name], trunk.failures)
        for leg, rtp in sorted(snap.rtp.items()):
            rtp_received.add_metric([leg], rtp.packets_received)
            rtp_sent.add_metric([leg], rtp.packets_sent)
            rtp_lost.add_metric([leg], rtp.packets_lost)
            jitter.add_metric([leg], rtp.jitter_seconds)
        backlog.add_metric([], snap.cdr_journal_backlog)
        database.add_metric([], 1 if snap.database_up else 0)
        mqtt.add_metric([], 1 if snap.mqtt_up else 0)

    yield from (
        requests,
        responses,
        malformed,
        timeouts,
        in_flight,
        phones,
        trunk_up,
        trunk_registration,
        channels,
        channel_limit,
        trunk_failures,
        rtp_received,
        rtp_sent,
        rtp_lost,
        jitter,
        backlog,
        database,
        mqtt,
    )


@dataclass(frozen=True, slots=True)
class QuotaFigures:
    """One agent's quota standing, copied out of whatever the quota package handed in."""

    agent: str
    team: str
    counts: Mapping[str, float]
    targets: Mapping[str, float]
    shortfall: Mapping[str, float]


class QuotaCollector(Collector):
    """Quota count, target, shortfall and progress per agent and target, latest known."""

    def __init__(self) -> None:
        self._agents: dict[str, QuotaFigures] = {}

    def update(self, figures: QuotaFigures) -> None:
        self._agents[figures.agent] = figures

    def forget(self, agent: str) -> None:
        self._agents.pop(agent, None)

    def describe(self) -> Iterable[Metric]:
        return list(_quota_families({}))

    def collect(self) -> Iterable[Metric]:
        return list(_quota_families(self._agents))


def _quota_families(agents: Mapping[str, QuotaFigures]) -> Iterator[Metric]:
    labels = ["agent", "team", "target"]
    count = GaugeMetricFamily(
        "dialer_quota_count", "What the agent has done so far.", labels=labels
    )
    target = GaugeMetricFamily("dialer_quota_target", "The agent's target.", labels=labels)
    shortfall = GaugeMetricFamily(
        "dialer_quota_shortfall", "What is still missing to reach the target.", labels=labels
    )
    progress = GaugeMetricFamily(
        "dialer_quota_progress_ratio",
        "Done as a fraction of the target (1 = reached).",
        labels=labels,
    )
    for agent, figures in sorted(agents.items()):
        for name, value in sorted(figures.counts.items()):
            count.add_metric([agent, figures.team, name], value)
        for name, value in sorted(figures.targets.items()):
            target.add_metric([agent, figures.team, name], value)
            if value > 0:
                done = figures.counts.get(name, 0.0)
                progress.add_metric([agent, figures.team, name], done / value)
        for name, value in sorted(figures.shortfall.items()):
            shortfall.add_metric([agent, figures.team, name], value)
    yield from (count, target, shortfall, progress)


class AbandonCollector(Collector):
    """Abandon rate today and over the rolling window per campaign, as of the clock's now."""

    def __init__(self, ledger: AbandonLedger, now_ms: Callable[[], int]) -> None:
        self._ledger = ledger
        self._now_ms = now_ms

    def describe(self) -> Iterable[Metric]:
        return list(_abandon_families(None))

    def collect(self) -> Iterable[Metric]:
        return list(_abandon_families(self._ledger.rates(self._now_ms())))


def _abandon_families(rates: Mapping[str, AbandonRates] | None) -> Iterator[Metric]:
    today = GaugeMetricFamily(
        "dialer_abandon_rate_today_ratio",
        "Abandoned calls / live answers since local midnight.",
        labels=["campaign"],
    )
    window = GaugeMetricFamily(
        "dialer_abandon_rate_30d_ratio",
        "Abandoned calls / live answers over today and the 29 local days before.",
        labels=["campaign"],
    )
    for campaign, figures in sorted((rates or {}).items()):
        today.add_metric([campaign], figures.today)
        window.add_metric([campaign], figures.window)
    yield from (today, window)
