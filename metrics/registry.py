"""The floor's Prometheus metrics, declared once on the registry the service passes in.

``FloorMetrics`` is a consumer of the event stream and of finished CDRs:

* ``observe(event)`` counts what happens as it happens: dial attempts,
  outcomes per campaign and per trunk, bridges (connects), calls in progress,
  agent wait time and pauses, media timeouts, recordings, phone
  registrations, and the lag from an event's instant to its consumption.
* ``observe_cdr(record)`` takes what only a finished call knows: talk, ring
  and wrap-up durations, live answers, abandoned calls, effective calls and
  dispositions. The abandon rate is kept per campaign and local day (see
  ``metrics.abandon``), so today's rate and the rolling 30 days are computed
  as of ``now_ms()`` at every scrape.
* ``observe_quota(progress)`` keeps the latest standing of an agent.
* Snapshots (agents by state, the engine's counters) are read at scrape time
  by collectors; nothing here copies them on change.

Time is handed in: ``now_ms`` is a callable returning the wall clock in UTC
milliseconds (used for the event lag and for "today"), ``tz`` is the floor's
time zone (where "today" starts). Label values are bounded sets (campaign,
trunk, outcome, agent, team, state, reason, leg, disposition, target): never a
call id, never a number. A missing campaign, trunk or team is "none".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import tzinfo
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

from cdr.record import AnsweredBy, CallRecord, Outcome
from dialer.events import (
    AgentStateChanged,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallStarted,
    Direction,
    Event,
    MediaTimeout,
    PacingDecided,
    PhoneRegistered,
    PhoneUnregistered,
    RecordingClosed,
    RecordingFailed,
)
from metrics.abandon import AbandonLedger, AbandonRates
from metrics.calls import DEFAULT_MAX_CALLS, CallLabelMap, CallLabels
from metrics.collectors import (
    NO_LABEL,
    AbandonCollector,
    AgentsCollector,
    EngineCollector,
    QuotaCollector,
    QuotaFigures,
)
from metrics.errors import MetricsError
from metrics.sources import AgentsByState, EngineSource, QuotaProgressLike

# Bucket bounds in seconds, chosen for a call floor rather than for web requests.
RING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 90.0, 120.0)
TALK_BUCKETS = (
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
)
WRAP_UP_BUCKETS = (5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Agent states as ``AgentStateChanged`` spells them (dialer.agents.state is not ours to import).
READY = "ready"
PAUSED = "paused"

_TYPE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


class _Describing(Protocol):
    def describe(self) -> Iterable[Metric]: ...


class FloorMetrics:
    """Every ``dialer_*`` metric, registered on ``registry``; see the module docstring."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        now_ms: Callable[[], int],
        tz: tzinfo,
        agents_by_state: AgentsByState | None = None,
        engine: EngineSource | None = None,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        self._now_ms = now_ms
        self._calls = CallLabelMap(max_calls)
        self._ready_since: dict[str, float] = {}
        self._ledger = AbandonLedger(tz)
        self._collectors: list[_Describing] = []

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            metric = Counter(name, doc, labels, registry=registry)
            self._collectors.append(metric)
            return metric

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            metric = Gauge(name, doc, labels, registry=registry)
            self._collectors.append(metric)
            return metric

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            metric = Histogram(name, doc, labels, registry=registry, buckets=buckets)
            self._collectors.append(metric)
            return metric

        # -- from events
        self.dial_attempts = counter(
            "dialer_dial_attempts_total", "Outbound call attempts placed.", ("campaign",)
        )
        self.inbound_calls = counter(
            "dialer_inbound_calls_total", "Inbound calls assigned to the floor.", ("campaign",)
        )
        self.call_outcomes = counter(
            "dialer_call_outcomes_total",
            "Ended call attempts by outcome of the customer leg.",
            ("campaign", "outcome"),
        )
        self.trunk_outcomes = counter(
            "dialer_trunk_call_outcomes_total",
            "Ended call attempts by trunk and outcome.",
            ("trunk", "outcome"),
        )
        self.bridged = counter(
            "dialer_calls_bridged_total",
            "Calls whose customer was connected to an agent (connects).",
            ("campaign",),
        )
        self.in_progress = gauge(
            "dialer_calls_in_progress", "Call attempts assigned and not yet ended.", ("campaign",)
        )
        self.calls_evicted = counter(
            "dialer_metrics_calls_evicted_total",
            "Calls forgotten by the metrics before their end arrived (end event lost).",
        )
        self.agent_wait = histogram(
            "dialer_agent_wait_seconds",
            "Time agents spent ready, waiting for a call.",
            WAIT_BUCKETS,
        )
        self.agent_pauses = counter(
            "dialer_agent_pauses_total", "Agents going on pause, by reason code.", ("reason",)
        )
        self.media_timeouts = counter(
            "dialer_media_timeouts_total", "Calls ended because a side sent no RTP.", ("leg",)
        )
        self.recordings_written = counter(
            "dialer_recordings_written_total", "Call recordings completed on disk."
        )
        self.recordings_repaired = counter(
            "dialer_recordings_repaired_total", "Recordings closed at start-up after a crash."
        )
        self.recording_bytes = counter(
            "dialer_recording_bytes_total", "Bytes of completed call recordings."
        )
        self.recordings_failed = counter(
            "dialer_recordings_failed_total", "Call recordings that stopped on an error."
        )
        self.phone_registrations = counter(
            "dialer_phone_registrations_total", "Desk phone registrations accepted."
        )
        self.phone_unregistrations = counter(
            "dialer_phone_unregistrations_total", "Desk phone bindings removed.", ("reason",)
        )
        self.event_lag = histogram(
            "dialer_event_lag_seconds",
            "Wall-clock delay from an event's instant to the metrics consuming it.",
            LAG_BUCKETS,
        )
        # -- from CDRs
        self.ring_time = histogram(
            "dialer_ring_seconds", "Ring time of attempts that rang.", RING_BUCKETS, ("campaign",)
        )
        self.talk_time = histogram(
            "dialer_talk_seconds", "Talk time of bridged calls.", TALK_BUCKETS, ("campaign",)
        )
        self.wrap_up_time = histogram(
            "dialer_wrap_up_seconds", "Agents' after-call work.", WRAP_UP_BUCKETS, ("campaign",)
        )
        self.live_answers = counter(
            "dialer_live_answers_total",
            "Answers by a person (or not known to be a machine), one per call chain.",
            ("campaign",),
        )
        self.abandoned = counter(
            "dialer_abandoned_calls_total",
            "Live answers that reached no agent in time.",
            ("campaign",),
        )
        self.effective = counter(
            "dialer_effective_calls_total",
            "Calls judged effective by the versioned rule.",
            ("campaign", "agent"),
        )
        self.dispositions = counter(
            "dialer_dispositions_total", "Agents' call results.", ("campaign", "disposition")
        )
        # -- set by the pacing and the campaign configuration
        self.dial_level = gauge(
            "dialer_dial_level", "Calls placed per available agent (pacing).", ("campaign",)
        )
        self.abandon_cap = gauge(
            "dialer_abandon_cap_ratio",
            "The campaign's abandon cap, as a fraction of live answers.",
            ("campaign",),
        )
        # -- read at scrape time
        self._quota = QuotaCollector()
        for collector in (
            AbandonCollector(self._ledger, now_ms),
            AgentsCollector(agents_by_state),
            EngineCollector(engine),
            self._quota,
        ):
            registry.register(collector)
            self._collectors.append(collector)

    @property
    def names(self) -> frozenset[str]:
        """Every sample name these metrics can export (with _total, _bucket, ... suffixes)."""
        names: set[str] = set()
        for collector in self._collectors:
            for family in collector.describe():
                suffixes = _TYPE_SUFFIXES.get(family.type)
                if suffixes is None:
                    names.add(family.name)
                else:
                    names.update(family.name + suffix for suffix in suffixes)
        return frozenset(names)

    # -- events ------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Account one event of the ordered stream."""
        self.event_lag.observe(max(0, self._now_ms() - event.at_ms) / 1000)
        match event:
            case CallAssigned():
                self._assigned(event)
            case CallStarted():
                self._calls.reach(event.call_id)
            case CallBridged():
                labels = self._calls.get(event.call_id)
                if labels is not None:
                    self.bridged.labels(labels.campaign).inc()
            case CallEnded():
                self._ended(event)
            case AgentStateChanged():
                self._agent_state(event)
            case MediaTimeout():
                self.media_timeouts.labels(event.leg).inc()
            case RecordingClosed():
                self.recordings_written.inc()
                self.recording_bytes.inc(event.size_bytes)
                if event.repaired:
                    self.recordings_repaired.inc()
            case RecordingFailed():
                self.recordings_failed.inc()
            case PacingDecided():
                self.set_dial_level(event.campaign, event.dial_level)
            case PhoneRegistered():
                self.phone_registrations.inc()
            case PhoneUnregistered():
                self.phone_unregistrations.labels(event.reason or NO_LABEL).inc()
            case _:
                pass  # the rest (DTMF, progress, ...) is for the CDRs and the feed

    def _assigned(self, event: CallAssigned) -> None:
        previous = self._calls.pop(event.call_id)
        if previous is not None:
            self.in_progress.labels(previous.campaign).dec()
        inbound = event.direction is not Direction.OUTBOUND
        labels = CallLabels(event.campaign or NO_LABEL, event.trunk or NO_LABEL, reached=inbound)
        for gone in self._calls.add(event.call_id, labels):
            self.in_progress.labels(gone.campaign).dec()
            self.calls_evicted.inc()
        self.in_progress.labels(labels.campaign).inc()
        if event.direction is Direction.OUTBOUND:
            self.dial_attempts.labels(labels.campaign).inc()
        else:
            self.inbound_calls.labels(labels.campaign).inc()

    def _ended(self, event: CallEnded) -> None:
        # Agent legs end too, under their own ids: only assigned calls are dial outcomes.
        labels = self._calls.pop(event.call_id)
        if labels is None:
            return
        self.in_progress.labels(labels.campaign).dec()
        self.call_outcomes.labels(labels.campaign, event.outcome.value).inc()
        if labels.reached:  # a customer never dialed says nothing of the trunk
            self.trunk_outcomes.labels(labels.trunk, event.outcome.value).inc()

    def _agent_state(self, event: AgentStateChanged) -> None:
        since = self._ready_since.pop(event.agent, None)
        if since is not None and event.previous == READY:
            self.agent_wait.observe(max(0.0, event.mono - since))
        if event.state == READY:
            self._ready_since[event.agent] = event.mono
        if event.state == PAUSED:
            self.agent_pauses.labels(event.reason or NO_LABEL).inc()

    # -- CDRs --------------------------------------------------------------

    def observe_cdr(self, record: CallRecord) -> None:
        """Account one finished CDR; a record with impossible durations is refused whole."""
        problems = [
            f"{name} is negative ({value})"
            for name, value in (
                ("ring_ms", record.ring_ms),
                ("talk_ms", record.talk_ms),
                ("wrap_up_ms", record.wrap_up_ms),
            )
            if value is not None and value < 0
        ]
        if problems:
            raise MetricsError(f"CDR of call {record.call_id}", problems)
        campaign = record.campaign or NO_LABEL
        if record.ringing_at_ms is not None:
            self.ring_time.labels(campaign).observe(record.ring_ms / 1000)
        if record.bridged_at_ms is not None:
            self.talk_time.labels(campaign).observe(record.talk_ms / 1000)
        if record.wrap_up_ms is not None:
            self.wrap_up_time.labels(campaign).observe(record.wrap_up_ms / 1000)
        live, abandoned = _live_and_abandoned(record)
        if live:
            self.live_answers.labels(campaign).inc()
        if abandoned:
            self.abandoned.labels(campaign).inc()
        self._ledger.add(campaign, _answer_instant(record), live=live, abandoned=abandoned)
        if record.effective:
            self.effective.labels(campaign, record.agent or NO_LABEL).inc()
        if record.disposition:
            self.dispositions.labels(campaign, record.disposition).inc()

    def load_abandon_history(self, records: Iterable[CallRecord]) -> None:
        """Seed the abandon rates from stored CDRs at start-up; no counter moves."""
        for record in records:
            live, abandoned = _live_and_abandoned(record)
            self._ledger.add(
                record.campaign or NO_LABEL, _answer_instant(record), live=live, abandoned=abandoned
            )

    def abandon_rates(self) -> dict[str, AbandonRates]:
        """Today's and the rolling window's figures per campaign, as of ``now_ms()``."""
        return self._ledger.rates(self._now_ms())

    # -- quota, pacing, configuration -------------------------------------

    def observe_quota(self, progress: QuotaProgressLike) -> None:
        """Keep an agent's latest quota standing; refused whole if any figure is not usable."""
        problems: list[str] = []
        if not progress.agent:
            problems.append("agent is empty")
        for what, figures in (
            ("counts", progress.counts),
            ("targets", progress.targets),
            ("shortfall", progress.shortfall),
        ):
            for name, value in figures.items():
                if not name:
                    problems.append(f"{what} has an empty target name")
                if not math.isfinite(value) or value < 0:
                    problems.append(f"{what}[{name!r}] must be a finite number >= 0, got {value}")
        if problems:
            raise MetricsError(f"quota progress of agent {progress.agent!r}", problems)
        self._quota.update(
            QuotaFigures(
                agent=progress.agent,
                team=progress.team or NO_LABEL,
                counts=dict(progress.counts),
                targets=dict(progress.targets),
                shortfall=dict(progress.shortfall),
            )
        )

    def forget_quota(self, agent: str) -> None:
        """Stop exporting an agent's quota (signed out for the period, left the floor)."""
        self._quota.forget(agent)

    def set_dial_level(self, campaign: str, level: float) -> None:
        if not math.isfinite(level) or level < 0:
            raise MetricsError(
                f"dial level of campaign {campaign!r}",
                [f"must be a finite number >= 0, got {level}"],
            )
        self.dial_level.labels(campaign).set(level)

    def set_abandon_cap(self, campaign: str, cap: float) -> None:
        if not math.isfinite(cap) or not 0 < cap <= 1:
            raise MetricsError(
                f"abandon cap of campaign {campaign!r}",
                [f"must be above 0 and at most 1, got {cap}"],
            )
        self.abandon_cap.labels(campaign).set(cap)


def _live_and_abandoned(record: CallRecord) -> tuple[int, int]:
    """A live answer is an answer not known to be a machine; an abandon is always one.

    A transferred attempt is not counted: the chain's next attempt carries the answer.
    """
    abandoned = 1 if record.abandoned else 0
    answered = record.outcome is Outcome.ANSWERED and record.answered_by is not AnsweredBy.MACHINE
    return (1 if answered or abandoned else 0), abandoned


def _answer_instant(record: CallRecord) -> int:
    """The instant that decides the call's day for the abandon rate."""
    return record.answered_at_ms if record.answered_at_ms is not None else record.created_at_ms
