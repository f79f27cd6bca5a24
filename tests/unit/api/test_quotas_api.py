"""Quotas over the real API: today's progress, the day's report, exempt days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_support import Api, api_config, serving_api

from cdr.record import CallRecord, Outcome
from dialer.api.context import ApiContext

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = int(datetime(2026, 5, 4, 8, 0, tzinfo=SHANGHAI).timestamp() * 1000)  # Monday 08:00
USERS = {"boss": ("supervisor", None), "agent1": ("agent", "a1"), "qa": ("qa", None)}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(api_config(tmp_path), USERS, now_ms=lambda: NOW) as api:
        yield api


def count_effective_call(ctx: ApiContext, call_id: str) -> None:
    """A finished effective call of a1 today, as the floor hands it to the quotas."""
    created = NOW - 3_600_000
    ctx.floor.quotas.on_record(
        CallRecord(
            call_id=call_id,
            campaign="c1",
            agent="a1",
            number="+8613812345678",
            created_at_ms=created,
            answered_at_ms=created + 1_000,
            bridged_at_ms=created + 1_100,
            ended_at_ms=created + 121_100,
            talk_ms=120_000,
            outcome=Outcome.ANSWERED,
            effective=True,
        )
    )


def items(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = body["items"]
    assert isinstance(found, list)
    return {item["metric"]: item for item in found}


async def test_agent_sees_its_own_progress(api: Api) -> None:
    count_effective_call(api.ctx, "e1")
    response = await api.client.get("/api/v1/quotas/progress", headers=api.auth("agent1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["agent_id"], body["day"]) == ("a1", "2026-05-04")
    effective = items(body)["effective_calls"]
    assert effective["done"] == 1
    assert effective["shortfall"] == effective["target"] - 1
    assert effective["label"] == "Effective calls"


async def test_who_may_read_whose_progress(api: Api) -> None:
    other = await api.client.get(
        "/api/v1/quotas/progress", params={"agent": "a2"}, headers=api.auth("agent1")
    )
    assert other.status_code == 403
    assert other.json()["error"]["message"] == (
        "Agents may only see and ask for their own quota days."
    )
    boss = await api.client.get(
        "/api/v1/quotas/progress", params={"agent": "a2"}, headers=api.auth("boss")
    )
    assert (boss.status_code, boss.json()["agent_id"]) == (200, "a2")
    nobody = await api.client.get(
        "/api/v1/quotas/progress", params={"agent": "zz"}, headers=api.auth("boss")
    )
    assert nobody.status_code == 404
    unsaid = await api.client.get("/api/v1/quotas/progress", headers=api.auth("boss"))
    assert unsaid.status_code == 422
    qa = await api.client.get("/api/v1/quotas/progress", headers=api.auth("qa"))
    assert qa.status_code == 403


async def test_day_report_has_agents_teams_and_floor(api: Api) -> None:
    count_effective_call(api.ctx, "e1")
    response = await api.client.get("/api/v1/quotas/reports/2026-05-04", headers=api.auth("boss"))
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    scopes = [(row["scope"], row["agent"], row["team"]) for row in rows]
    assert scopes == [
        ("agent", "a1", "t1"),
        ("agent", "a2", "t2"),
        ("team", None, "t1"),
        ("team", None, "t2"),
        ("floor", None, None),
    ]
    assert rows[0]["counts"]["effective_calls"] == 1
    assert rows[-1]["counts"]["effective_calls"] == 1
    refused = await api.client.get("/api/v1/quotas/reports/2026-05-04", headers=api.auth("agent1"))
    assert refused.status_code == 403


async def test_exempt_days_follow_the_seeds_rules(api: Api) -> None:
    async def ask(who: str, agent: str, day: str) -> httpx.Response:
        return await api.client.post(
            "/api/v1/quotas/exemptions",
            json={"agent": agent, "day": day, "reason": "培训"},
            headers=api.auth(who),
        )

    own = await ask("agent1", "a1", "2026-05-04")  # before 09:00 on the day
    assert own.status_code == 201, own.text
    body = own.json()
    assert (body["approved_by"], body["reason"]) == ("agent1 (own day)", "培训")
    assert all(item["target"] == 0 for item in body["progress"]["items"])
    assert (await ask("agent1", "a1", "2026-05-04")).status_code == 201  # idempotent
    assert (await ask("boss", "a1", "2026-05-05")).status_code == 201
    third = await ask("boss", "a1", "2026-05-06")
    assert third.status_code == 409
    assert "2 exempt days a month" in third.json()["error"]["message"]
    late = await ask("boss", "a2", "2026-05-01")
    assert late.status_code == 409
    assert "before 09:00" in late.json()["error"]["details"][0]
    weekend = await ask("boss", "a2", "2026-05-09")
    assert "not a work day" in weekend.json()["error"]["message"]
    assert (await ask("agent1", "a2", "2026-05-04")).status_code == 403
    state = api.ctx.floor.quotas.state_file.read_text(encoding="utf-8")
    assert '"2026-05-05"' in state  # written at once, kept across a restart
    assert '"reason":"培训"' in state


@pytest.mark.parametrize("day", ["2026-13-01", "1900-01-01", "tomorrow"])
async def test_bad_days_are_422(api: Api, day: str) -> None:
    response = await api.client.get(f"/api/v1/quotas/reports/{day}", headers=api.auth("boss"))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0].startswith("path.day")
