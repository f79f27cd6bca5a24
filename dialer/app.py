"""Composition root: builds the service from a validated configuration."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from dialer.calls.manager import CallManager
from dialer.calls.relay import MediaRelay
from dialer.config import Config
from dialer.events import Event
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.endpoint import Clock, SipEndpoint
from dialer.sip.registrar import Registrar, RegistrarPolicy
from dialer.sip.registration import RegistrationClient, RegistrationTarget
from dialer.sip.timers import TimerConfig
from dialer.transport.tcp import TcpServer
from dialer.transport.udp import UdpAdapter, open_udp

SAME_PORT_TRIES = 20  # port 0: UDP's free port may be taken for TCP; choose again
CLOCK_CHECK_S = 10.0  # how often the wall clock is compared with the pairing
# A step of the wall clock (NTP setting it after boot, an operator), not the microseconds
# between two reads: both clocks are slewed alike, so only a step parts them.
CLOCK_STEP_MS = 250

log = logging.getLogger(__name__)


def wall_clock() -> Clock:
    """The one place that pairs the wall clock with the loop's monotonic clock."""
    return Clock(wall_ms=time.time_ns() // 1_000_000, mono=asyncio.get_running_loop().time())


async def follow_wall_clock(endpoint: SipEndpoint, every: float = CLOCK_CHECK_S) -> None:
    """Pair the clocks again whenever the wall clock was stepped.

    Instants (``at_ms``) are the pairing plus monotonic time. A service that
    started before NTP set the clock would otherwise stamp every CDR with the
    boot-time error until restarted; durations come from monotonic time and
    are not touched.
    """
    while True:
        await asyncio.sleep(every)
        fresh = wall_clock()
        step = fresh.wall_ms - endpoint.clock.wall(fresh.mono)
        if abs(step) >= CLOCK_STEP_MS:
            log.warning("the wall clock moved by %+d ms; instants follow it from now", step)
            endpoint.clock = fresh


@dataclass
class Service:
    config: Config
    endpoint: SipEndpoint
    adapter: UdpAdapter
    relay: MediaRelay
    calls: CallManager

    @property
    def sip_address(self) -> tuple[str, int]:
        return self.adapter.local_address

    def subscribe(self, subscriber: Callable[[Event], None]) -> None:
        """Every event of the service (SIP and media), in order, from the next turn on."""
        self.calls.subscribers.append(subscriber)


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
    managers: list[CallManager] = []

    def send_streams() -> None:
        for server in streams:
            server.send_pending()
        for manager in managers:
            manager.activity()

    def tcp_activity() -> None:
        adapter.send_pending()
        for manager in managers:
            manager.activity()

    tcp = TcpServer(
        endpoint, max_message_bytes=config.sip.max_message_bytes, on_activity=tcp_activity
    )
    # Port 0 (tests, demo): TCP takes the port the OS gave UDP, as phones expect. Another
    # process may hold that port for TCP; then both are chosen again.
    for attempt in range(SAME_PORT_TRIES):
        adapter = await open_udp(
            endpoint, config.sip.bind_host, config.sip.udp_port, on_activity=send_streams
        )
        endpoint.local = adapter.local_address
        try:
            await tcp.start(config.sip.bind_host, config.sip.tcp_port or endpoint.local[1])
        except OSError as exc:
            adapter.close()
            chosen = config.sip.udp_port == 0 and config.sip.tcp_port == 0
            if not chosen or exc.errno != errno.EADDRINUSE or attempt == SAME_PORT_TRIES - 1:
                raise
            continue
        break
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

    def flush() -> None:
        adapter.flush()
        tcp.flush()

    def wall(now: float) -> int:
        return endpoint.clock.wall(now)  # looked up each time: a step pairs the clocks again

    media = config.media
    relay = MediaRelay(
        host=config.sip.bind_host,
        port_min=media.rtp_port_min,
        port_max=media.rtp_port_max,
        media_timeout=media.media_timeout_s,
        emit=lambda event: None,
        wall=wall,
        recordings=Path(media.recordings_dir) if media.record else None,
        rng=random.Random(secrets.randbits(64)),
        cname=f"dialer@{endpoint.local[0]}".encode(),
    )
    keep_time = asyncio.create_task(follow_wall_clock(endpoint), name="follow-wall-clock")
    try:
        async with relay:
            manager = CallManager(endpoint, relay, flush=flush, media_host=config.sip.bind_host)
            managers.append(manager)
            yield Service(config, endpoint, adapter, relay, manager)
    finally:
        keep_time.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keep_time
        endpoint.stop_registrations(loop.time())
        adapter.flush()
        adapter.close()
        await tcp.close()
