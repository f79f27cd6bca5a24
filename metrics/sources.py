"""The shapes the metrics package reads but does not own.

Engine figures (SIP, registrations, trunks, RTP, the CDR journal, database
and MQTT connectivity) already live as plain counters in the SIP endpoint,
the media relay and the stores. Rather than counting them a second time from
events, the service hands in a callable that copies them into an
``EngineSnapshot``; a collector calls it at scrape time, so a figure has one
owner and is never double counted.

Quota progress comes from the quota package, which is not imported here: any
object with the ``QuotaProgressLike`` attributes will do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkFigures:
    """One trunk as the engine sees it right now.

    ``registration`` is the trunk's registration state ("registered",
    "failed", "unregistered", or "none" for a trunk that does not register);
    ``up`` says whether calls can go out on it (registered if it must be, and
    its last health check answered). ``failures`` counts trunk-level failures
    since start (registration refused, health check unanswered, transport
    errors); call outcomes per trunk are counted from events instead.
    """

    up: bool
    registration: str = "none"
    channels_in_use: int = 0
    channels_limit: int | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpFigures:
    """RTP on one side of the calls ("customer" or "agent") since start.

    ``jitter_seconds`` is the worst interarrival jitter (RFC 3550 §6.4.1,
    A.8) among the streams received right now, in seconds; 0 when idle.
    """

    packets_received: int = 0
    packets_sent: int = 0
    packets_lost: int = 0
    jitter_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSnapshot:
    """Counters (monotonic since start) and gauges (current) of the telephony engine.

    ``sip_requests`` is keyed by method, ``sip_responses`` by class ("2xx",
    "4xx", ...), both as received. ``phones`` is keyed by registration state
    ("registered", "unregistered"); the exported series for "registered" is
    always present (0 if absent here) so that "no phone registered" can alert.
    ``rtp`` is keyed by leg.
    """

    sip_requests: Mapping[str, int] = field(default_factory=dict)
    sip_responses: Mapping[str, int] = field(default_factory=dict)
    sip_malformed: int = 0
    sip_transaction_timeouts: int = 0
    sip_transactions_in_flight: int = 0
    phones: Mapping[str, int] = field(default_factory=dict)
    trunks: Mapping[str, TrunkFigures] = field(default_factory=dict)
    rtp: Mapping[str, RtpFigures] = field(default_factory=dict)
    cdr_journal_backlog: int = 0
    database_up: bool = False
    mqtt_up: bool = False


class QuotaProgressLike(Protocol):
    """One agent's quota standing, as the quota package's ``QuotaProgress`` offers it.

    The three mappings are keyed by target name (e.g. "effective_calls",
    "talk_seconds"); ``shortfall`` is what is still missing to reach the
    target (0 once reached).
    """

    @property
    def agent(self) -> str: ...

    @property
    def team(self) -> str | None: ...

    @property
    def counts(self) -> Mapping[str, float]: ...

    @property
    def targets(self) -> Mapping[str, float]: ...

    @property
    def shortfall(self) -> Mapping[str, float]: ...


EngineSource = Callable[[], EngineSnapshot]
AgentsByState = Callable[[], Mapping[str, int]]
