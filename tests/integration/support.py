"""What the call tests share: the service's test configuration and an event recorder."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
from peers import Baresip
from peers.ports import LOOPBACK

from dialer.agents.state import AgentState
from dialer.app import Service
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import LeadCandidate
from dialer.campaigns.recycling import LeadState
from dialer.campaigns.windows import CallingWindows
from dialer.config import (
    Config,
    DatabaseConfig,
    HttpConfig,
    MediaConfig,
    MetricsConfig,
    PhoneConfig,
    SipConfig,
)
from dialer.dialing.runner import CampaignRunner
from dialer.events import CallEvent, Event
from dialer.floor import Floor
from dialer.sip.autoanswer import auto_answer_headers
from dialer.sip.uri import SipUri

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

    def tail(self, count: int = 25, width: int = 200) -> str:
        """The last events, one short line each."""
        return "\n".join(repr(event)[:width] for event in self.events[-count:])

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


def open_now(now: datetime) -> CallingWindows:
    """A window of two hours around ``now`` in UTC (clipped to the day)."""
    minute = now.hour * 60 + now.minute
    start, end = max(0, minute - 60), min(24 * 60, minute + 60)
    return CallingWindows.parse({"mon-sun": [f"{_hhmm(start)}-{_hhmm(end)}"]})


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


async def until(
    seen: Seen,
    condition: Callable[[], bool],
    within: float,
    explain: Callable[[], str] | None = None,
) -> None:
    """Until ``condition`` holds; a timeout names the state (``explain``) and the last events,
    since CI keeps only the tail of its output and a bare TimeoutError says nothing."""
    try:
        async with asyncio.timeout(within):
            while not condition():
                seen.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(seen.changed.wait(), 0.2)
    except TimeoutError:
        state = f"{explain()}; " if explain is not None else ""
        raise AssertionError(
            f"not true within {within} s: {state}last events:\n{seen.tail()}"
        ) from None


def lead(lead_id: str, phone: str, timezone: str | None = None) -> LeadCandidate:
    return LeadCandidate(
        lead_id=lead_id,
        phone=phone,
        timezone=timezone,
        priority=0,
        state=LeadState.NEW,
        next_attempt_at=None,
        attempts=0,
        is_follow_up=False,
        callback=None,
        campaign_id="c1",
    )


async def registered_baresip(
    service: Service, factory: Callable[..., Baresip], audio: Path
) -> tuple[Baresip, Dial]:
    """A baresip desk phone registered to ``service``, and how to call it (auto-answer)."""
    host, port = service.sip_address
    phone = factory(user=EXTENSION, password=PASSWORD, registrar=f"{host}:{port}", audio_file=audio)
    await phone.start()
    await phone.wait_event("REGISTER_OK", timeout=10)
    registrar = service.endpoint.registrar
    assert registrar is not None
    [binding] = registrar.lookup(EXTENSION, asyncio.get_running_loop().time())
    contact = SipUri.parse(binding.contact)
    assert contact.port is not None
    return phone, Dial(
        binding.contact,
        (contact.host, contact.port),
        extra_headers=auto_answer_headers("baresip"),
    )


def floor_config(tmp_path: Path, database_url: str | None = None) -> Config:
    """The service's test config, with its data, database and metrics for a whole floor."""
    config = service_config(tmp_path / "recordings")
    return dataclasses.replace(
        config,
        service=dataclasses.replace(config.service, data_dir=tmp_path),
        database=DatabaseConfig(
            url=database_url or f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"
        ),
        metrics=MetricsConfig(bind_host=LOOPBACK, port=0),
        http=HttpConfig(bind_host=LOOPBACK, port=0),
    )


async def settled(floor: Floor, within: float = 20.0) -> None:
    """Until every call's CDR is finished and in the database; fails naming the open ones."""
    records = floor.records
    try:
        async with asyncio.timeout(within):
            await records.wait_idle()
            await records.sink.wait_flushed()
    except TimeoutError:
        opened = {c: records.collector.snapshot(c) for c in records.collector.open_calls()}
        raise AssertionError(
            f"CDRs not settled: open {opened}, sink {records.sink.state}"
        ) from None


def peer_missing(message: str) -> NoReturn:
    """A real peer or tool is not installed: a failure in CI, a skip on a developer's machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def until_ready(
    seen: Seen, campaign: CampaignRunner, agent_ids: Iterable[str], within: float
) -> None:
    """Until every one of ``agent_ids`` is READY; a timeout names each one's state and leg."""
    wanted = list(agent_ids)

    def explain() -> str:
        parts = []
        for agent_id in wanted:
            floor = campaign.agents[agent_id]
            leg = campaign.calls.agent_legs.get(floor.leg) if floor.leg is not None else None
            up = "no leg" if leg is None else f"leg answered={leg.answered} call={leg.call_id}"
            parts.append(f"{agent_id} {floor.agent.state.value} ({up})")
        return ", ".join(parts)

    def ready() -> bool:
        return all(campaign.agents[a].agent.state is AgentState.READY for a in wanted)

    await until(seen, ready, within, explain)


async def until_dialed_out(
    seen: Seen, campaign: CampaignRunner, lead_ids: Iterable[str], within: float
) -> None:
    """Until none of ``lead_ids`` is new or in progress, then a moment in which nothing may be
    dialed."""
    wanted = list(lead_ids)
    busy = (LeadState.NEW, LeadState.IN_PROGRESS)
    await until(seen, lambda: all(campaign.leads[i].state not in busy for i in wanted), within)
    await asyncio.sleep(0.5)


async def wind_down(
    service: Service, campaign: CampaignRunner, stop: asyncio.Event, runner: asyncio.Task[None]
) -> None:
    """Stop the campaign's dialing and hang up its agents' persistent connections."""
    stop.set()
    await runner
    for floor in campaign.agents.values():
        if floor.leg is not None:
            service.calls.disconnect_agent(floor.leg)
    await asyncio.sleep(0.5)  # the BYEs are answered
