"""The service's instants follow a wall clock that was stepped after it started."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

from dialer.app import CLOCK_STEP_MS, follow_wall_clock, running_service
from dialer.config import Config, SipConfig
from dialer.sip.endpoint import Clock, SipEndpoint

HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def following(endpoint: SipEndpoint) -> AsyncIterator[None]:
    task = asyncio.create_task(follow_wall_clock(endpoint, every=0.01))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_service_started_an_hour_off_stamps_the_true_time_once_the_clock_is_set() -> None:
    config = Config(sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0))
    loop = asyncio.get_running_loop()
    async with running_service(config) as service:
        endpoint = service.endpoint
        # As if the service had paired its clocks before NTP set the wall clock back an hour.
        paired = endpoint.clock
        endpoint.clock = dataclasses.replace(paired, wall_ms=paired.wall_ms + HOUR_MS)
        assert endpoint.clock.wall(loop.time()) - now_ms() > HOUR_MS - 1000
        async with following(endpoint):
            for _ in range(100):
                await asyncio.sleep(0.01)
                if abs(endpoint.clock.wall(loop.time()) - now_ms()) < CLOCK_STEP_MS:
                    break
        assert abs(endpoint.clock.wall(loop.time()) - now_ms()) < CLOCK_STEP_MS
        # The media relay stamps recordings and its events from the same, re-paired clock.
        assert abs(service.relay.wall(loop.time()) - now_ms()) < CLOCK_STEP_MS


async def test_a_clock_within_the_step_threshold_is_left_as_paired() -> None:
    loop = asyncio.get_running_loop()
    paired = Clock(wall_ms=now_ms() + CLOCK_STEP_MS // 5, mono=loop.time())
    endpoint = SipEndpoint(("127.0.0.1", 5060), clock=paired)
    async with following(endpoint):
        await asyncio.sleep(0.1)  # about ten checks
    assert endpoint.clock is paired
