"""One connection's event stream over a real floor: first frames, heartbeat, the end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dialer.api.app import api_context
from dialer.api.live import stream
from dialer.api.users import Role, User
from dialer.config import (
    AgentConfig,
    Config,
    DatabaseConfig,
    HttpConfig,
    MediaConfig,
    PhoneConfig,
    SipConfig,
)
from dialer.floor import running_floor

AGENT = User(1, "a1", "A1", Role.AGENT, "en", "a1", "t1")
QA = User(2, "qa", "QA", Role.QA, "en", None, None)


def config_for(tmp: Path) -> Config:
    config = Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "desk-1001"),),
        agents=(AgentConfig("a1", "1001", team="t1"),),
        http=HttpConfig(enabled=False),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'dialer.db'}"),
        media=MediaConfig(recordings_dir=str(tmp / "recordings")),
    )
    return dataclasses.replace(config, service=dataclasses.replace(config.service, data_dir=tmp))


async def test_an_idle_stream_sends_heartbeats_and_ends_when_the_hub_closes(
    tmp_path: Path,
) -> None:
    async with running_floor(config_for(tmp_path), serve_metrics=False) as floor:
        ctx = api_context(floor, heartbeat_s=0.05)
        agent, qa = ctx.live.subscribe(AGENT), ctx.live.subscribe(QA)
        frames = stream(ctx, agent)
        assert await anext(frames) == "retry: 3000\n\n"
        quota = await anext(frames)
        assert quota.startswith("event: quota\ndata: ")
        assert json.loads(quota.split("data: ", 1)[1])["agent_id"] == "a1"
        desk = await anext(frames)
        assert desk.startswith("event: desk\ndata: ")
        assert json.loads(desk.split("data: ", 1)[1])["state"] == "signed_out"
        assert await anext(frames) == ": heartbeat\n\n"  # nothing happened for heartbeat_s

        idle = stream(ctx, qa)
        assert await anext(idle) == "retry: 3000\n\n"
        assert await anext(idle) == ": heartbeat\n\n"  # QA gets no desk, quota or floor
        ctx.live.close()
        assert [frame async for frame in idle] == []
        assert [frame async for frame in frames] == []
        assert ctx.live.subscriptions == set()  # both streams let go of their queues


async def test_a_team_leads_stream_is_scoped_to_the_team_the_floor_configures(
    tmp_path: Path,
) -> None:
    config = config_for(tmp_path)
    config = dataclasses.replace(
        config,
        phones=(*config.phones, PhoneConfig("1002", "desk-1002")),
        agents=(*config.agents, AgentConfig("a2", "1002", team="t2")),
    )
    lead = User(3, "lead", "Lead", Role.SUPERVISOR, "en", None, "t2")
    manager = User(4, "boss", "Boss", Role.SUPERVISOR, "en", None, None)
    async with running_floor(config, serve_metrics=False) as floor:
        ctx = api_context(floor)
        assert ctx.live.subscribe(lead).team == frozenset({"a2"})
        assert ctx.live.subscribe(manager).team is None
        assert ctx.live.subscribe(AGENT).team is None  # an agent's own filter applies instead
        ctx.live.close()
