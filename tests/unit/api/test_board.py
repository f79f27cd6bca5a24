"""The wallboard over the real API: agents by state, calls, abandon rate, quota by team."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_support import Api, api_config, serving_api

from cdr.record import CallRecord, Outcome
from dialer.calls.manager import Dial
from dialer.config import CampaignConfig, Config, TrunkConfig
from dialer.dialing.setup import campaign_runner

NOW = int(datetime(2026, 5, 4, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
USERS = {"boss": ("supervisor", None), "agent1": ("agent", "a1")}


def config(tmp_path: Path) -> Config:
    return api_config(
        tmp_path,
        campaigns=(
            CampaignConfig("c1", "manual", agents=("a1", "a2"), trunks=("gw1",), abandon_cap=0.03),
        ),
        trunks=(TrunkConfig("gw1", "127.0.0.1", port=5999),),
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(config(tmp_path), USERS, now_ms=lambda: NOW) as api:
        yield api


async def test_the_floor_at_a_glance(api: Api) -> None:
    floor = api.ctx.floor
    runner = campaign_runner(floor.service.calls, floor.config, floor.config.campaigns[0])
    floor.add_runner(runner)
    try:
        await runner.sign_in("a1", Dial("sip:1001@127.0.0.1:5998", ("127.0.0.1", 5998)))
        runner.pause("a1", "break")
        for n, abandoned in enumerate((False, True)):
            record = CallRecord(
                call_id=f"b{n}",
                campaign="c1",
                agent="a1" if not abandoned else None,
                number="+8613812345678",
                created_at_ms=NOW - 600_000,
                answered_at_ms=NOW - 590_000,
                bridged_at_ms=None if abandoned else NOW - 589_000,
                ended_at_ms=NOW - 500_000,
                talk_ms=0 if abandoned else 89_000,
                outcome=Outcome.ANSWERED,
                abandoned=abandoned,
                effective=not abandoned,
            )
            floor.quotas.on_record(record)
            assert await api.ctx.cdrs.close(record, NOW)
        response = await api.client.get("/api/v1/floor", headers=api.auth("boss"))
        assert response.status_code == 200, response.text
        board = response.json()
        tiles = {tile["agent_id"]: tile for tile in board["agents"]}
        assert (tiles["a1"]["state"], tiles["a1"]["reason"], tiles["a1"]["campaign"]) == (
            "paused",
            "break",
            "c1",
        )
        assert (tiles["a1"]["name"], tiles["a1"]["team"]) == ("李雷", "t1")
        assert (tiles["a2"]["state"], tiles["a2"]["since_ms"]) == ("signed_out", None)
        assert (board["calls_waiting"], board["calls_in_progress"]) == (0, 0)
        assert board["campaigns"] == [{"id": "c1", "abandon_rate_today": 0.5, "abandon_cap": 0.03}]
        teams = {team["team"]: team for team in board["quota_by_team"]}
        assert (teams["t1"]["agents"], teams["t1"]["effective_calls"]) == (1, 1)
        assert teams["t1"]["percent"] == pytest.approx(100 / teams["t1"]["target"], abs=0.05)
        assert teams["t2"]["effective_calls"] == 0
        listed = await api.client.get("/api/v1/campaigns", headers=api.auth("boss"))
        assert [(c["state"], c["signed_in"]) for c in listed.json()] == [("running", 1)]
    finally:
        await runner.close()


async def test_agents_do_not_see_the_wallboard(api: Api) -> None:
    response = await api.client.get("/api/v1/floor", headers=api.auth("agent1"))
    assert response.status_code == 403
