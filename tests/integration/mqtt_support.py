"""An MQTT subscriber for the integration tier: aiomqtt on the other side of the feed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from peers.mosquitto import Mosquitto

WALL_USER, WALL_PASSWORD = "wallboard", "wall-pw"
WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def body(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Inbox:
    client: aiomqtt.Client
    messages: list[Received] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            self.messages.append(Received(str(message.topic), payload, message.retain))
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def on(self, pattern: str) -> list[Received]:
        return [m for m in self.messages if aiomqtt.Topic(m.topic).matches(pattern)]

    async def wait_for(self, pattern: str, count: int, timeout: float = WAIT) -> list[Received]:  # noqa: ASYNC109 (a test's deadline)
        """The first ``count`` messages on ``pattern``, waiting for them to arrive."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.on(pattern)) < count:
                    await self._changed.wait()
        except TimeoutError:
            got = len(self.on(pattern))
            raise AssertionError(f"{got} of {count} messages on {pattern} in {timeout}s") from None
        return self.on(pattern)[:count]


@contextlib.asynccontextmanager
async def subscriber(
    broker: Mosquitto,
    *patterns: str,
    identifier: str | None = None,
    clean: bool = True,
    username: str | None = WALL_USER,
    password: str | None = WALL_PASSWORD,
) -> AsyncIterator[Inbox]:
    """An aiomqtt client subscribed to ``patterns``, collecting what arrives."""
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=password,
        identifier=identifier,
        clean_session=clean,
    )
    async with client:
        for pattern in patterns:
            await client.subscribe(pattern, qos=1)
        inbox = Inbox(client)
        task = asyncio.create_task(inbox.collect(), name="test-subscriber")
        try:
            yield inbox
        finally:
            task.cancel()
            await asyncio.wait({task})
