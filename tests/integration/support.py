"""What the call tests share: the service's test configuration and an event recorder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeVar

from peers.ports import LOOPBACK

from dialer.config import Config, MediaConfig, PhoneConfig, SipConfig
from dialer.events import CallEvent, Event

E = TypeVar("E", bound=CallEvent)

EXTENSION, PASSWORD = "1002", "desk-phone-1002"
CUSTOMER_HZ, AGENT_HZ = 1000.0, 440.0


class Seen:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def first(self, kind: type[E], call_ids: set[str], within: float) -> E:
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if isinstance(event, kind) and event.call_id in call_ids:
                        return event
                self.changed.clear()
                await self.changed.wait()


def service_config(recordings: Path) -> Config:
    return Config(
        sip=SipConfig(bind_host=LOOPBACK, udp_port=0, tcp_port=0),
        phones=(PhoneConfig(EXTENSION, PASSWORD, vendor="baresip"),),
        media=MediaConfig(recordings_dir=str(recordings), media_timeout_s=10.0),
    )
