"""Composition root: builds the service from a validated configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dialer.config import Config
from dialer.events import Event
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.endpoint import Clock, SipEndpoint
from dialer.sip.registrar import Registrar, RegistrarPolicy
from dialer.sip.registration import RegistrationClient, RegistrationTarget
from dialer.sip.timers import TimerConfig
from dialer.transport.tcp import TcpServer
from dialer.transport.udp import UdpAdapter, open_udp

log = logging.getLogger(__name__)


def wall_clock() -> Clock:
    """The one place that pairs the wall clock with the loop's monotonic clock."""
    return Clock(wall_ms=time.time_ns() // 1_000_000, mono=asyncio.get_running_loop().time())


@dataclass
class Service:
    config: Config
    endpoint: SipEndpoint
    adapter: UdpAdapter

    @property
    def sip_address(self) -> tuple[str, int]:
        return self.adapter.local_address

    def take_events(self) -> list[Event]:
        return self.endpoint.take_events()


def build_endpoint(config: Config, clock: Clock) -> SipEndpoint:
    sip = config.sip
    verifier = DigestVerifier(sip.realm, NonceIssuer(secrets.token_bytes(32), lifetime=300.0))
    registrar = Registrar(
        verifier,
        {phone.extension: phone.password for phone in config.phones},
        RegistrarPolicy(
            min_expires=sip.register_min_expires,
            max_expires=sip.register_max_expires,
            failures_before_throttle=sip.auth_failures_before_throttle,
            throttle_seconds=sip.throttle_seconds,
            algorithms=sip.digest_algorithms,
        ),
    )
    return SipEndpoint(
        (sip.bind_host, sip.udp_port),
        registrar=registrar,
        timers=TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4),
        clock=clock,
        max_message_bytes=sip.max_message_bytes,
        max_headers=sip.max_headers,
    )


@contextlib.asynccontextmanager
async def running_service(config: Config) -> AsyncIterator[Service]:
    clock = wall_clock()
    endpoint = build_endpoint(config, clock)
    streams: list[TcpServer] = []

    def send_streams() -> None:
        for server in streams:
            server.send_pending()

    adapter = await open_udp(
        endpoint, config.sip.bind_host, config.sip.udp_port, on_activity=send_streams
    )
    endpoint.local = adapter.local_address
    tcp = TcpServer(
        endpoint, max_message_bytes=config.sip.max_message_bytes, on_activity=adapter.send_pending
    )
    # Port 0 (tests, demo): TCP takes the port the OS gave UDP, as phones expect.
    await tcp.start(config.sip.bind_host, config.sip.tcp_port or endpoint.local[1])
    streams.append(tcp)
    loop = asyncio.get_running_loop()
    rng = random.Random(secrets.randbits(64))
    for trunk in config.trunks:
        if not trunk.register:
            continue
        host, port = endpoint.local
        target = RegistrationTarget(
            registrar_uri=f"sip:{trunk.host}:{trunk.port}",
            aor=f"sip:{trunk.username}@{trunk.host}",
            contact=f"sip:{trunk.username}@{host}:{port}",
            via_host=host,
            via_port=port,
            username=trunk.username,
            password=trunk.password,
            expires=trunk.expires,
        )
        endpoint.add_registration(
            RegistrationClient(target, rng), (trunk.host, trunk.port), loop.time()
        )
    adapter.flush()
    log.info("SIP on udp %s:%d", *endpoint.local)
    try:
        yield Service(config, endpoint, adapter)
    finally:
        endpoint.stop_registrations(loop.time())
        adapter.flush()
        adapter.close()
        await tcp.close()


async def serve(config: Config, duration: float | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    async with running_service(config):
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
