"""What the API tests share: a two-agent floor's config and its API, served in-process.

The app runs for real over a real floor (SQLite in tmp_path, SIP on
loopback); requests go through httpx's ASGI transport, so no port is needed
for HTTP. Users are created in the floor's database with API tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from peers.ports import free_udp_tcp_port
from support import floor_config

from cdr.record import RecordingRef
from dialer.api.app import api_context, create_app
from dialer.api.context import ApiContext
from dialer.config import AgentConfig, CampaignConfig, Config, PhoneConfig
from dialer.dialing.running import running_campaigns
from dialer.floor import running_floor
from dialer.media.wav import build_header

PASSWORD = "secret"
Users = Mapping[str, tuple[str, str | None]]  # username -> (role, agent id)


def api_config(tmp_path: Path, **changes: Any) -> Config:
    """Agents a1 (李雷, team t1) and a2 (韩梅梅, t2) on progressive campaign c1; ``changes``
    replace whole fields."""
    base = floor_config(tmp_path)
    port = free_udp_tcp_port()  # SIP listens on UDP and TCP: a port free for both
    config = dataclasses.replace(
        base,
        sip=dataclasses.replace(base.sip, udp_port=port, tcp_port=port),
        phones=(PhoneConfig("1001", "pw-1001"), PhoneConfig("1002", "pw-1002")),
        agents=(
            AgentConfig("a1", "1001", name="李雷", team="t1"),
            AgentConfig("a2", "1002", name="韩梅梅", team="t2"),
        ),
        campaigns=(CampaignConfig("c1", "progressive", agents=("a1", "a2"), abandon_cap=0.03),),
    )
    return dataclasses.replace(config, **changes)


@dataclass
class Api:
    ctx: ApiContext
    client: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@contextlib.asynccontextmanager
async def serving_api(
    config: Config,
    users: Users,
    *,
    now_ms: Callable[[], int] | None = None,
    run_campaigns: bool = False,
) -> AsyncIterator[Api]:
    """The floor of ``config`` with its API, and a token for each of ``users`` (locale en);
    with ``run_campaigns`` the floor runs its campaigns as ``dialer serve`` does."""
    async with contextlib.AsyncExitStack() as stack:
        floor = await stack.enter_async_context(
            running_floor(config, serve_metrics=False, serve_http=False)
        )
        if run_campaigns:
            await stack.enter_async_context(running_campaigns(floor))
        ctx = api_context(floor) if now_ms is None else api_context(floor, now_ms=now_ms)
        tokens = {}
        for username, (role, agent) in users.items():
            user = await ctx.users.create_user(
                username=username, password=PASSWORD, role=role, locale="en", agent_id=agent
            )
            tokens[username] = await ctx.users.issue_token(user.id)
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://floor") as client:
            yield Api(ctx, client, tokens)
        ctx.live.close()


# Full marks on the standard script's scorecard.
FULL_MARKS = {
    "greeting": 5,
    "self_introduction": 5,
    "needs_discovery": 10,
    "product_explanation": 10,
    "compliance_no_false_promises": 1,
    "closing": 5,
}


def recording(path: Path) -> RecordingRef:
    """A tiny two-channel WAV written at ``path``, as the index knows it."""
    audio = struct.pack("<hh", 1000, -3000) * 800
    data = build_header(2, 8000, 16, len(audio)) + audio
    path.write_bytes(data)
    return RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=100,
        size_bytes=len(data),
        agent_speech_ms=100,
        customer_speech_ms=100,
    )
