"""The whole floor in one context: database, telephony, CDRs and metrics, wired once.

``running_floor(config)`` is what ``dialer serve`` and ``dialer demo`` run:
it migrates the database, starts the SIP/RTP service, subscribes the CDR
path and the Prometheus metrics to the one ordered event stream, and serves
``/metrics``. Campaign runners started on it are registered with
``Floor.add_runner`` so the metrics can read agents and trunks at scrape time.
With ``http.enabled`` it also serves the HTTP API (``dialer.api``) in the same
loop, on ``Floor.http_port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from cdr.store import CdrStore
from dialer.agent_commands import AgentCommands
from dialer.app import Service, running_service
from dialer.campaigns.trunks import TrunkState
from dialer.config import Config, agent_tokens
from dialer.dialing.runner import CampaignRunner
from dialer.events import Event
from dialer.quotas import FloorQuotas, floor_quotas
from dialer.records import CallRecords, call_records
from dialer.store.database import Database
from metrics.mqtt.feed import MqttFeed
from metrics.mqtt.topics import default_prefix
from metrics.registry import FloorMetrics
from metrics.server import MetricsServer
from metrics.sources import EngineSnapshot, RtpFigures, TrunkFigures

if TYPE_CHECKING:
    from dialer.api.context import ApiContext
    from dialer.dialing.running import Campaigns

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Floor:
    config: Config
    database: Database
    service: Service
    records: CallRecords
    quotas: FloorQuotas
    metrics: FloorMetrics
    registry: CollectorRegistry
    metrics_port: int | None
    feed: MqttFeed | None = None
    runners: list[CampaignRunner] = field(default_factory=list)
    http_port: int | None = None  # None: the API is not served
    api: ApiContext | None = None
    campaigns: Campaigns | None = None  # None: no campaigns are run by the floor itself

    def add_runner(self, runner: CampaignRunner) -> None:
        self.runners.append(runner)
        config = {c.id: c for c in self.config.campaigns}.get(runner.campaign_id)
        if config is not None:
            self.metrics.set_abandon_cap(runner.campaign_id, config.abandon_cap)

    def agents_by_state(self) -> Mapping[str, int]:
        states = Counter(
            floor.agent.state.value for runner in self.runners for floor in runner.agents.values()
        )
        return dict(states)

    def engine(self) -> EngineSnapshot:
        service = self.service
        endpoint = service.endpoint
        counters = endpoint.counters
        now = asyncio.get_running_loop().time()  # scrapes are served in the loop
        registered = len(endpoint.registrar.registered_extensions(now)) if endpoint.registrar else 0
        trunks: dict[str, TrunkFigures] = {}
        for runner in self.runners:
            if runner.trunks is None:
                continue
            for name, health in runner.trunks.health(now).items():
                trunks[name] = TrunkFigures(
                    up=health.state is not TrunkState.DOWN,
                    channels_in_use=health.in_use,
                    channels_limit=health.max_channels,
                    failures=health.failures,
                )
        return EngineSnapshot(
            sip_requests=dict(counters.requests_by_method),
            sip_responses=dict(counters.responses_by_class),
            sip_malformed=counters.malformed,
            sip_transaction_timeouts=counters.transaction_timeouts,
            phones={
                "registered": registered,
                "unregistered": max(0, len(self.config.phones) - registered),
            },
            trunks=trunks,
            rtp={
                side: RtpFigures(packets_received=got, packets_lost=lost, jitter_seconds=jitter)
                for side, (got, lost, jitter) in service.relay.reception().items()
            },
            cdr_journal_backlog=self.records.sink.backlog,
            database_up=self.records.sink.state.value == "connected",
            mqtt_up=self.feed is not None and self.feed.connected,
        )


@contextlib.asynccontextmanager
async def running_floor(
    config: Config, *, serve_metrics: bool = True, serve_http: bool = True
) -> AsyncIterator[Floor]:
    async with Database(config.database.url) as database:
        await database.upgrade()
        async with running_service(config) as service:
            registry = CollectorRegistry()
            holder: list[Floor] = []
            metrics = FloorMetrics(
                registry,
                now_ms=now_ms,
                tz=ZoneInfo(config.service.timezone),
                agents_by_state=lambda: holder[0].agents_by_state() if holder else {},
                engine=lambda: holder[0].engine() if holder else EngineSnapshot(),
            )
            service.subscribe(metrics.observe)
            async with (
                call_records(config, database, service.subscribe) as records,
                floor_quotas(config, CdrStore(database.sessionmaker)) as quotas,
            ):
                records.listeners.append(metrics.observe_cdr)
                records.listeners.append(quotas.on_record)
                records.listening.set()
                quotas.publishers.append(metrics.observe_quota)
                async with contextlib.AsyncExitStack() as stack:
                    port: int | None = None
                    if serve_metrics:
                        server = await stack.enter_async_context(
                            MetricsServer(registry, config.metrics.bind_host, config.metrics.port)
                        )
                        port = server.port
                    floor = Floor(
                        config, database, service, records, quotas, metrics, registry, port
                    )
                    holder.append(floor)
                    if config.mqtt.host:
                        feed = await stack.enter_async_context(mqtt_feed(config, floor))
                        floor.feed = feed

                        def publish(event: Event) -> None:
                            feed.publish_event(event)  # False (not for MQTT) needs no action

                        service.subscribe(publish)
                        quotas.publishers.append(feed.publish_quota)
                    if serve_http and config.http.enabled:
                        await _serve_api(stack, floor)
                    yield floor


async def _serve_api(stack: contextlib.AsyncExitStack, floor: Floor) -> None:
    """The HTTP API on the floor, in this loop; its live streams end before the server."""
    from dialer.api.app import api_context, create_app
    from dialer.api.server import ApiServer

    ctx = api_context(floor)
    http = floor.config.http
    server = await stack.enter_async_context(ApiServer(create_app(ctx), http.bind_host, http.port))
    stack.callback(ctx.live.close)
    floor.api = ctx
    floor.http_port = server.port


def mqtt_feed(config: Config, floor: Floor) -> MqttFeed:
    """The MQTT feed of the floor's events, quota progress and agents' commands."""
    mqtt = config.mqtt
    password = os.environ.get(mqtt.password_env) if mqtt.password_env else None
    tls = None
    if mqtt.tls:
        tls = ssl.create_default_context(cafile=mqtt.ca_file or None)
    loop = asyncio.get_running_loop()
    return MqttFeed(
        mqtt.host,
        mqtt.port,
        prefix=mqtt.prefix or default_prefix(config.service.node_name),
        username=mqtt.username or None,
        password=password,
        tls=tls,
        handler=AgentCommands(
            lambda: floor.config, floor.runners, floor.service.endpoint.registrar, loop.time
        ),
        secrets=agent_tokens(config),
        client_id=f"dialer-{config.service.node_name}",
    )


async def serve(config: Config, duration: float | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from dialer.config_notes import notes
    from dialer.dialing.running import running_campaigns  # it builds on this module

    for note in notes(config):
        log.warning("%s", note)
    async with running_floor(config) as floor, running_campaigns(floor):
        log.info("metrics on http://%s:%s/metrics", config.metrics.bind_host, floor.metrics_port)
        if floor.http_port is not None:
            log.info("HTTP API on http://%s:%s/api/docs", config.http.bind_host, floor.http_port)
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
