"""A team's lead sees the team; the floor manager (a supervisor without a team) sees the floor.

a1 (李雷) is in team t1, a2 (韩梅梅) in t2. ``lead`` leads t1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_support import Api, api_config, recording, serving_api

from cdr.audit import AuditAction
from cdr.record import CallRecord, Outcome

USERS = {"boss": ("supervisor", None)}
A1_CALL, A2_CALL, NOBODY = "t1-call", "t2-call", "rang-out"
REFUSED = "As the lead of team t1 you see that team's agents and calls only."


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(api_config(tmp_path), USERS) as api:
        lead = await api.ctx.users.create_user(
            username="lead", password="secret", role="supervisor", locale="en", team="t1"
        )
        api.tokens["lead"] = await api.ctx.users.issue_token(lead.id)
        now = api.ctx.now_ms()
        for call_id, agent in ((A1_CALL, "a1"), (A2_CALL, "a2"), (NOBODY, None)):
            record = CallRecord(
                call_id=call_id,
                campaign="c1",
                agent=agent,
                number="+8613812345678",
                created_at_ms=now - 60_000,
                answered_at_ms=now - 50_000 if agent else None,
                bridged_at_ms=now - 49_000 if agent else None,
                ended_at_ms=now - 10_000,
                talk_ms=39_000 if agent else 0,
                outcome=Outcome.ANSWERED if agent else Outcome.NO_ANSWER,
                recording=recording(tmp_path / f"{call_id}.wav") if agent else None,
            )
            assert await api.ctx.cdrs.close(record, now)
        yield api


async def calls(api: Api, who: str, **params: str) -> list[str]:
    response = await api.client.get("/api/v1/cdrs", params=params, headers=api.auth(who))
    assert response.status_code == 200, response.text
    return sorted(item["call_id"] for item in response.json()["items"])


async def test_search_detail_and_export_hold_the_team_only(api: Api) -> None:
    assert await calls(api, "boss") == sorted([A1_CALL, A2_CALL, NOBODY])
    assert await calls(api, "lead") == [A1_CALL]
    other = await api.client.get("/api/v1/cdrs", params={"agent": "a2"}, headers=api.auth("lead"))
    assert (other.status_code, other.json()["error"]["message"]) == (403, REFUSED)
    detail = await api.client.get(f"/api/v1/cdrs/{A2_CALL}", headers=api.auth("lead"))
    assert detail.status_code == 403
    assert (await api.client.get(f"/api/v1/cdrs/{A1_CALL}", headers=api.auth("lead"))).is_success
    exported = await api.client.get("/api/v1/cdrs/export?format=jsonl", headers=api.auth("lead"))
    assert exported.status_code == 200
    [line] = exported.text.splitlines()
    assert json.loads(line)["call_id"] == A1_CALL
    assert A2_CALL not in exported.text and NOBODY not in exported.text
    refused = await api.client.get("/api/v1/cdrs/export?agent=a2", headers=api.auth("lead"))
    assert refused.status_code == 403
    [entry] = [
        e
        for e in await api.ctx.audit.entries(action=AuditAction.EXPORT)
        if not e.ok and e.who == "lead"
    ]
    assert "not in team t1" in entry.detail


async def test_recordings_quotas_and_the_wallboard_hold_the_team_only(api: Api) -> None:
    mine = await api.client.get(f"/api/v1/recordings/{A1_CALL}", headers=api.auth("lead"))
    assert mine.status_code == 200
    theirs = await api.client.get(f"/api/v1/recordings/{A2_CALL}", headers=api.auth("lead"))
    assert (theirs.status_code, theirs.json()["error"]["message"]) == (403, REFUSED)
    peaks = await api.client.get(f"/api/v1/recordings/{A2_CALL}/peaks", headers=api.auth("lead"))
    assert peaks.status_code == 403
    assert (
        await api.client.get(f"/api/v1/recordings/{A2_CALL}", headers=api.auth("boss"))
    ).is_success
    plays = await api.ctx.audit.entries(action=AuditAction.PLAY, call_id=A2_CALL)
    assert [(e.who, e.ok) for e in plays] == [("lead", False), ("boss", True)]

    own = await api.client.get("/api/v1/quotas/progress?agent=a1", headers=api.auth("lead"))
    assert own.status_code == 200
    other = await api.client.get("/api/v1/quotas/progress?agent=a2", headers=api.auth("lead"))
    assert other.status_code == 403
    day = (await api.client.get("/api/v1/desk/quota", headers=api.auth("boss"))).status_code
    assert day == 403  # the desk is an agent's page
    report = await api.client.get(
        f"/api/v1/quotas/reports/{own.json()['day']}", headers=api.auth("lead")
    )
    scopes = [(row["scope"], row["agent"], row["team"]) for row in report.json()["rows"]]
    assert {agent for _, agent, _ in scopes if agent} == {"a1"}
    assert {team for _, agent, team in scopes if agent is None} == {"t1"}

    board = (await api.client.get("/api/v1/floor", headers=api.auth("lead"))).json()
    assert [tile["agent_id"] for tile in board["agents"]] == ["a1"]
    assert [row["team"] for row in board["quota_by_team"]] == ["t1"]
    everyone = (await api.client.get("/api/v1/floor", headers=api.auth("boss"))).json()
    assert [tile["agent_id"] for tile in everyone["agents"]] == ["a1", "a2"]
