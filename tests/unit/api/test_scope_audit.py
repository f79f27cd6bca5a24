"""An audit of every HTTP route for role and team-scope holes, one test per rule.

The floor (``api_support.api_config``) has agents a1 (team t1) and a2 (t2);
campaign c1 is shared by both, c2 is a2's alone, c3 is a1's alone. The users:
``agent1`` (a1), ``agent2`` (a2), ``qa``, ``lead`` (a supervisor leading
t1), ``boss`` (a supervisor without a team: the floor manager) and
``admin``. Calls: one of a1's, one of a2's (both answered and recorded) and
one that rang out (no agent).

A team lead reads a campaign (list, stats, wallboard tile) only if one of
its agents works it, and acts on one (pause, resume, lead upload, create)
only if every agent of it is in the team (``dialer.api.scope``), since a
pause or a lead list moves the dialing of every agent of the campaign.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_support import FULL_MARKS, Api, api_config, recording, serving_api

from cdr.audit import AuditAction, AuditEntry
from cdr.record import CallRecord, Outcome
from dialer.api.app import create_app
from dialer.api.users import User
from dialer.config import Config, TrunkConfig
from dialer.dialing.runner import CampaignRunner
from dialer.dialing.setup import campaign_runner
from dialer.events import CallAssigned, Direction
from quota.progress import QuotaProgress

DAY_START = int(datetime(2026, 5, 4, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
NOW = DAY_START + 15 * 3_600_000  # 15:00 on Monday 2026-05-04, Shanghai
TODAY = "2026-05-04"
A1_CALL, A2_CALL, NOBODY = "a1-call", "a2-call", "rang-out"
A1_NUMBER, A2_NUMBER, NOBODY_NUMBER = "+8613812345678", "+8613987654321", "+8613700001111"
MASKED = {A1_NUMBER: "+86138****5678", A2_NUMBER: "+86139****4321"}
USERS = {
    "agent1": ("agent", "a1"),
    "agent2": ("agent", "a2"),
    "qa": ("qa", None),
    "boss": ("supervisor", None),
    "admin": ("admin", None),
}
ROLES = ("agent1", "qa", "lead", "boss", "admin")
TEAM_REFUSED = "As the lead of team t1 you see that team's agents and calls only."
SCORE = {"scorecard": "standard-script", "answers": FULL_MARKS}
CSV = b"phone\n13612345678\n"


def config(tmp_path: Path, **changes: Any) -> Config:
    base = api_config(tmp_path)
    shared = base.campaigns[0]
    campaigns = (
        shared,
        dataclasses.replace(shared, id="c2", agents=("a2",)),
        dataclasses.replace(shared, id="c3", agents=("a1",)),
    )
    return dataclasses.replace(base, campaigns=campaigns, **changes)


async def add_call(
    api: Api, call_id: str, agent: str | None, number: str, campaign: str, *, wav: Path | None
) -> None:
    created = DAY_START + 10 * 3_600_000
    record = CallRecord(
        call_id=call_id,
        campaign=campaign,
        agent=agent,
        number=number,
        created_at_ms=created,
        answered_at_ms=created + 1_000 if agent else None,
        bridged_at_ms=created + 1_100 if agent else None,
        ended_at_ms=created + 41_100,
        talk_ms=40_000 if agent else 0,
        outcome=Outcome.ANSWERED if agent else Outcome.NO_ANSWER,
        recording=recording(wav) if wav is not None else None,
    )
    assert await api.ctx.cdrs.close(record, created + 42_000)


async def with_lead(api: Api) -> Api:
    lead = await api.ctx.users.create_user(
        username="lead", password="secret", role="supervisor", locale="en", team="t1"
    )
    api.tokens["lead"] = await api.ctx.users.issue_token(lead.id)
    return api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(config(tmp_path), USERS, now_ms=lambda: NOW) as api:
        await with_lead(api)
        await add_call(api, A1_CALL, "a1", A1_NUMBER, "c1", wav=tmp_path / f"{A1_CALL}.wav")
        await add_call(api, A2_CALL, "a2", A2_NUMBER, "c2", wav=tmp_path / f"{A2_CALL}.wav")
        await add_call(api, NOBODY, None, NOBODY_NUMBER, "c1", wav=None)
        yield api


@pytest.fixture
async def runners(api: Api) -> AsyncIterator[dict[str, CampaignRunner]]:
    """A runner (no leads, no agents) for each campaign, as a node that runs them has."""
    floor = api.ctx.floor
    made = {
        c.id: campaign_runner(floor.service.calls, floor.config, c) for c in floor.config.campaigns
    }
    for runner in made.values():
        floor.add_runner(runner)
    try:
        yield made
    finally:
        for runner in made.values():
            await runner.close()


async def call(
    api: Api,
    who: str,
    method: str,
    path: str,
    *,
    body: Mapping[str, object] | None = None,
    upload: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    files = {"file": ("leads.csv", upload, "text/csv")} if upload is not None else None
    return await api.client.request(
        method,
        path,
        json=body,
        files=files,
        headers={**api.auth(who), **(headers or {})},
    )


async def audit(api: Api, action: AuditAction, who: str) -> list[AuditEntry]:
    return [e for e in await api.ctx.audit.entries(action=action) if e.who == who]


# -- the role gate of every route ---------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as the router declares it
    allowed: frozenset[str]  # of ROLES
    path: str = ""  # the template filled in; empty: the template itself
    body: Mapping[str, object] | None = None
    upload: bytes | None = None

    @property
    def url(self) -> str:
        return self.path or self.template


AGENT_ONLY = frozenset({"agent1"})
REVIEWERS = frozenset({"qa", "lead", "boss", "admin"})
MANAGERS = frozenset({"lead", "boss", "admin"})
WORKERS = frozenset({"agent1", "lead", "boss", "admin"})
EVERYONE = frozenset(ROLES)
V1 = "/api/v1"
ROUTES = (
    Route("GET", f"{V1}/me", EVERYONE),
    Route("PATCH", f"{V1}/me", EVERYONE, body={"locale": "en"}),
    Route("GET", f"{V1}/desk", AGENT_ONLY),
    Route("POST", f"{V1}/desk/sign-in", AGENT_ONLY, body={}),
    Route("POST", f"{V1}/desk/sign-out", AGENT_ONLY),
    Route("POST", f"{V1}/desk/state", AGENT_ONLY, body={"state": "ready"}),
    Route("POST", f"{V1}/desk/disposition", AGENT_ONLY, body={"code": "sale"}),
    Route("POST", f"{V1}/desk/hangup", AGENT_ONLY),
    Route("POST", f"{V1}/desk/dial", AGENT_ONLY, body={"number": "13812345678"}),
    Route("POST", f"{V1}/desk/preview/next", AGENT_ONLY),
    Route("POST", f"{V1}/desk/preview/accept", AGENT_ONLY),
    Route("POST", f"{V1}/desk/preview/skip", AGENT_ONLY, body={"reason": "busy"}),
    Route("GET", f"{V1}/desk/quota", AGENT_ONLY),
    Route("GET", f"{V1}/cdrs", EVERYONE),
    Route("GET", f"{V1}/cdrs/export", MANAGERS),
    Route("GET", f"{V1}/cdrs/{{call_id}}", EVERYONE, f"{V1}/cdrs/{A1_CALL}"),
    Route("GET", f"{V1}/recordings/{{call_id}}", REVIEWERS, f"{V1}/recordings/{A1_CALL}"),
    Route(
        "GET", f"{V1}/recordings/{{call_id}}/peaks", REVIEWERS, f"{V1}/recordings/{A1_CALL}/peaks"
    ),
    Route("GET", f"{V1}/qa/scorecards", REVIEWERS),
    Route("GET", f"{V1}/qa/queue", REVIEWERS),
    Route("POST", f"{V1}/qa/scores", REVIEWERS, body={"call_id": A1_CALL, **SCORE}),
    Route("GET", f"{V1}/quotas/progress", WORKERS, f"{V1}/quotas/progress?agent=a1"),
    Route("GET", f"{V1}/quotas/reports/{{day}}", MANAGERS, f"{V1}/quotas/reports/{TODAY}"),
    Route(
        "POST",
        f"{V1}/quotas/exemptions",
        WORKERS,
        body={"agent": "a1", "day": "2026-05-05", "reason": "training"},
    ),
    Route("GET", f"{V1}/campaigns", MANAGERS),
    Route(
        "POST",
        f"{V1}/campaigns",
        MANAGERS,
        body={"id": "c9", "mode": "progressive", "trunks": ["gw"], "agents": ["a1"]},
    ),
    Route("POST", f"{V1}/campaigns/{{campaign_id}}/pause", MANAGERS, f"{V1}/campaigns/c3/pause"),
    Route("POST", f"{V1}/campaigns/{{campaign_id}}/resume", MANAGERS, f"{V1}/campaigns/c3/resume"),
    Route("GET", f"{V1}/campaigns/{{campaign_id}}/stats", MANAGERS, f"{V1}/campaigns/c3/stats"),
    Route(
        "POST",
        f"{V1}/campaigns/{{campaign_id}}/leads",
        MANAGERS,
        f"{V1}/campaigns/c3/leads",
        upload=CSV,
    ),
    Route("GET", f"{V1}/admin/users", frozenset({"admin"})),
    Route(
        "POST",
        f"{V1}/admin/users",
        frozenset({"admin"}),
        body={"username": "new", "password": "secret", "role": "admin"},
    ),
    Route(
        "POST",
        f"{V1}/admin/users/{{user_id}}/tokens",
        frozenset({"admin"}),
        f"{V1}/admin/users/1/tokens",
    ),
    Route("GET", f"{V1}/admin/phones", frozenset({"admin"})),
    Route("GET", f"{V1}/admin/trunks", frozenset({"admin"})),
    Route("GET", f"{V1}/floor", MANAGERS),
)
# Judged on their own below: sign-in needs no user, sign-out ends the token, the stream is
# endless (its scope is the live hub's).
ELSEWHERE = {("POST", f"{V1}/session"), ("DELETE", f"{V1}/session"), ("GET", f"{V1}/events")}


def test_every_route_of_the_api_is_in_this_audit(api: Api) -> None:
    paths = create_app(api.ctx).openapi()["paths"]
    declared = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert declared == {(r.method, r.template) for r in ROUTES} | ELSEWHERE


async def test_each_role_is_let_through_or_refused_with_a_reason(api: Api) -> None:
    for route in ROUTES:
        for who in ROLES:
            response = await call(
                api, who, route.method, route.url, body=route.body, upload=route.upload
            )
            where = (route.method, route.url, who, response.text)
            assert response.status_code < 500, where
            if who in route.allowed:
                assert response.status_code not in {401, 403}, where
            else:
                assert response.status_code == 403, where
                error = response.json()["error"]
                assert error["code"] == "forbidden" and error["message"], where


async def test_signing_in_out_and_me_change_nobodys_role(api: Api) -> None:
    changed = await call(api, "agent1", "PATCH", f"{V1}/me", body={"role": "admin"})
    assert changed.status_code == 422
    assert (await call(api, "agent1", "GET", f"{V1}/me")).json()["role"] == "agent"
    out = await call(api, "agent2", "DELETE", f"{V1}/session")
    assert out.status_code == 204
    assert (await call(api, "agent2", "GET", f"{V1}/me")).status_code == 401
    assert (await call(api, "agent1", "GET", f"{V1}/me")).status_code == 200  # only that token
    stream = await api.client.get(f"{V1}/events", params={"token": api.tokens["agent2"]})
    assert stream.status_code == 401  # a revoked token opens no stream either


# -- an agent: its own calls, quota and desk ----------------------------------------------

OTHER_AGENTS = (
    ("GET", f"{V1}/cdrs?agent=a1", None),
    ("GET", f"{V1}/cdrs/{A1_CALL}", None),
    ("GET", f"{V1}/cdrs/{NOBODY}", None),
    ("GET", f"{V1}/quotas/progress?agent=a1", None),
    ("POST", f"{V1}/quotas/exemptions", {"agent": "a1", "day": "2026-05-05", "reason": "x"}),
)


async def test_an_agent_is_refused_another_agents_calls_and_quota(api: Api) -> None:
    for method, path, body in OTHER_AGENTS:
        response = await call(api, "agent2", method, path, body=body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["message"]


async def test_an_agent_searches_its_own_calls_only_and_its_desk_is_its_own(api: Api) -> None:
    found = (await call(api, "agent2", "GET", f"{V1}/cdrs")).json()
    assert (found["total"], [c["call_id"] for c in found["items"]]) == (1, [A2_CALL])
    desk = await call(api, "agent2", "GET", f"{V1}/desk?agent=a1")
    assert desk.json()["agent_id"] == "a2"
    quota = await call(api, "agent2", "GET", f"{V1}/desk/quota?agent=a1")
    assert quota.json()["agent_id"] == "a2"


# -- full numbers: supervisors and admins only --------------------------------------------


SEES_FULL = {"agent1": False, "qa": False, "lead": True, "boss": True, "admin": True}


async def test_stored_numbers_are_whole_only_for_supervisors_and_admins(api: Api) -> None:
    for who, full in SEES_FULL.items():
        expected = A1_NUMBER if full else MASKED[A1_NUMBER]
        page = (await call(api, who, "GET", f"{V1}/cdrs?agent=a1")).json()
        assert [item["number"] for item in page["items"]] == [expected], who
        detail = (await call(api, who, "GET", f"{V1}/cdrs/{A1_CALL}")).json()
        assert detail["number"] == expected, who
        if not full:
            for text in (json.dumps(page), json.dumps(detail)):
                assert "13812345678" not in text, who


async def test_the_qa_queue_and_exports_show_qa_no_number(api: Api) -> None:
    queue = await call(api, "qa", "GET", f"{V1}/qa/queue")
    assert sorted(item["call_id"] for item in queue.json()) == [A1_CALL, A2_CALL]
    assert "13812345678" not in queue.text and "13987654321" not in queue.text
    refused = await call(api, "qa", "GET", f"{V1}/cdrs/export?format=jsonl")
    assert refused.status_code == 403 and "13812345678" not in refused.text
    whole = await call(api, "boss", "GET", f"{V1}/cdrs/export?format=jsonl")
    numbers = sorted(json.loads(line)["number"] for line in whole.text.splitlines())
    assert numbers == sorted([A1_NUMBER, A2_NUMBER, NOBODY_NUMBER])


# -- a team lead: its team's agents, calls, recordings and quotas -------------------------

OTHER_TEAM = (
    ("GET", f"{V1}/cdrs?agent=a2", None),
    ("GET", f"{V1}/cdrs/{A2_CALL}", None),
    ("GET", f"{V1}/cdrs/{NOBODY}", None),
    ("GET", f"{V1}/cdrs/export?agent=a2", None),
    ("GET", f"{V1}/recordings/{A2_CALL}", None),
    ("GET", f"{V1}/recordings/{NOBODY}", None),
    ("GET", f"{V1}/recordings/{A2_CALL}/peaks", None),
    ("GET", f"{V1}/quotas/progress?agent=a2", None),
    ("POST", f"{V1}/quotas/exemptions", {"agent": "a2", "day": "2026-05-05", "reason": "x"}),
)


async def test_a_lead_is_refused_another_teams_agent_the_floor_manager_is_not(api: Api) -> None:
    for method, path, body in OTHER_TEAM:
        refused = await call(api, "lead", method, path, body=body)
        assert (refused.status_code, refused.json()["error"]["message"]) == (403, TEAM_REFUSED), (
            path
        )
        boss = await call(api, "boss", method, path, body=body)
        assert boss.status_code not in {401, 403}, (path, boss.text)


async def test_a_leads_search_and_export_hold_its_team_only(api: Api) -> None:
    page = (await call(api, "lead", "GET", f"{V1}/cdrs")).json()
    assert (page["total"], [c["call_id"] for c in page["items"]]) == (1, [A1_CALL])
    exported = await call(api, "lead", "GET", f"{V1}/cdrs/export?format=jsonl&campaign=c1")
    assert [json.loads(line)["call_id"] for line in exported.text.splitlines()] == [A1_CALL]


async def test_a_leads_qa_queue_holds_its_team_only(api: Api) -> None:
    queue = await call(api, "lead", "GET", f"{V1}/qa/queue")
    assert [item["call_id"] for item in queue.json()] == [A1_CALL]


async def test_a_lead_cannot_score_another_teams_call(api: Api) -> None:
    scored = await call(api, "lead", "POST", f"{V1}/qa/scores", body={"call_id": A2_CALL, **SCORE})
    assert scored.status_code == 403, scored.text
    assert scored.json()["error"]["message"] == TEAM_REFUSED
    assert (await call(api, "boss", "GET", f"{V1}/cdrs/{A2_CALL}")).json()["qa_score"] is None


async def test_a_lead_scores_its_teams_call(api: Api) -> None:
    scored = await call(api, "lead", "POST", f"{V1}/qa/scores", body={"call_id": A1_CALL, **SCORE})
    assert scored.status_code == 201, scored.text


# -- a team lead and the campaigns --------------------------------------------------------


async def test_a_lead_runs_its_teams_own_campaign(
    api: Api, runners: dict[str, CampaignRunner]
) -> None:
    stats = await call(api, "lead", "GET", f"{V1}/campaigns/c3/stats")
    assert stats.status_code == 200
    shared = await call(api, "lead", "GET", f"{V1}/campaigns/c1/stats")
    assert shared.status_code == 200  # figures of the whole campaign, no agent's or call's
    paused = await call(api, "lead", "POST", f"{V1}/campaigns/c3/pause")
    assert (paused.status_code, paused.json()["state"]) == (200, "paused")
    resumed = await call(api, "lead", "POST", f"{V1}/campaigns/c3/resume")
    assert (resumed.status_code, resumed.json()["state"]) == (200, "running")
    uploaded = await call(api, "lead", "POST", f"{V1}/campaigns/c3/leads", upload=CSV)
    assert uploaded.json()["accepted"] == 1


CAMPAIGN_ACTIONS = (
    ("POST", f"{V1}/campaigns/c1/pause"),
    ("POST", f"{V1}/campaigns/c2/pause"),
    ("POST", f"{V1}/campaigns/c2/resume"),
    ("POST", f"{V1}/campaigns/c1/leads"),
    ("POST", f"{V1}/campaigns/c2/leads"),
    ("GET", f"{V1}/campaigns/c2/stats"),
)


async def lead_refused(api: Api, method: str, path: str) -> None:
    upload = CSV if path.endswith("/leads") else None
    refused = await call(api, "lead", method, path, upload=upload)
    assert refused.status_code == 403, (path, refused.text)


async def test_a_lead_cannot_pause_a_campaign_of_another_teams_agents(
    api: Api, runners: dict[str, CampaignRunner]
) -> None:
    for method, path in CAMPAIGN_ACTIONS[:3]:
        await lead_refused(api, method, path)
    assert not any(runner.dialing_paused for runner in runners.values())


async def test_a_lead_cannot_feed_a_campaign_of_another_teams_agents(api: Api) -> None:
    for method, path in CAMPAIGN_ACTIONS[3:5]:
        await lead_refused(api, method, path)


async def test_a_lead_cannot_read_a_campaign_of_another_team_only(api: Api) -> None:
    for method, path in CAMPAIGN_ACTIONS[5:]:
        await lead_refused(api, method, path)


async def test_the_floor_manager_acts_on_every_campaign(
    api: Api, runners: dict[str, CampaignRunner]
) -> None:
    for method, path in CAMPAIGN_ACTIONS:
        upload = CSV if path.endswith("/leads") else None
        response = await call(api, "boss", method, path, upload=upload)
        assert response.status_code == 200, (path, response.text)


async def test_a_lead_lists_the_campaigns_its_team_works(api: Api) -> None:
    listed = (await call(api, "lead", "GET", f"{V1}/campaigns")).json()
    assert [c["id"] for c in listed] == ["c1", "c3"]


async def test_a_leads_wallboard_shows_its_teams_campaigns(api: Api) -> None:
    board = (await call(api, "lead", "GET", f"{V1}/floor")).json()
    assert [tile["id"] for tile in board["campaigns"]] == ["c1", "c3"]


def running_config(tmp_path: Path) -> Config:
    return api_config(tmp_path, campaigns=(), trunks=(TrunkConfig("gw", "127.0.0.1", 5999),))


def new_campaign(campaign_id: str, agents: list[str]) -> dict[str, object]:
    return {"id": campaign_id, "mode": "progressive", "trunks": ["gw"], "agents": agents}


async def test_a_lead_creates_campaigns_for_its_team_only(tmp_path: Path) -> None:
    async with serving_api(running_config(tmp_path), USERS, run_campaigns=True) as api:
        await with_lead(api)
        own = await call(api, "lead", "POST", f"{V1}/campaigns", body=new_campaign("own", ["a1"]))
        assert own.status_code == 201, own.text
        other = new_campaign("other", ["a1", "a2"])
        refused = await call(api, "lead", "POST", f"{V1}/campaigns", body=other)
        assert refused.status_code == 403, refused.text
        assert [runner.campaign_id for runner in api.ctx.floor.runners] == ["own"]


# -- the audit log: every playback and export, refused or not -----------------------------


async def test_every_playback_is_audited_refused_or_not(api: Api, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.wav"
    await add_call(api, "tampered", "a1", A1_NUMBER, "c1", wav=tampered)
    tampered.write_bytes(tampered.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    cases: tuple[tuple[str, str, dict[str, str], int], ...] = (
        ("agent1", A1_CALL, {}, 403),
        ("lead", A2_CALL, {}, 403),
        ("lead", NOBODY, {}, 403),
        ("qa", NOBODY, {}, 404),  # no recording at all
        ("qa", "no-such-call", {}, 404),
        ("qa", A1_CALL, {"Range": "bytes=999999-"}, 416),
        ("qa", "tampered", {}, 409),
        ("qa", A1_CALL, {}, 200),
        ("lead", A1_CALL, {"Range": "bytes=0-99"}, 206),
    )
    for who, call_id, headers, status in cases:
        before = await api.ctx.audit.entries(action=AuditAction.PLAY)
        response = await call(api, who, "GET", f"{V1}/recordings/{call_id}", headers=headers)
        assert response.status_code == status, (who, call_id, response.text)
        [entry] = (await api.ctx.audit.entries(action=AuditAction.PLAY))[len(before) :]
        assert (entry.who, entry.call_id, entry.ok) == (who, call_id, status in {200, 206})


async def test_every_export_is_audited_refused_or_not(api: Api) -> None:
    cases = (
        ("agent1", "", 403),
        ("qa", "", 403),
        ("lead", "?agent=a2", 403),
        ("lead", "", 200),
        ("boss", "?format=jsonl", 200),
        ("admin", "", 200),
    )
    for who, query, status in cases:
        before = await api.ctx.audit.entries(action=AuditAction.EXPORT)
        response = await call(api, who, "GET", f"{V1}/cdrs/export{query}")
        assert response.status_code == status, (who, response.text)
        [entry] = (await api.ctx.audit.entries(action=AuditAction.EXPORT))[len(before) :]
        assert (entry.who, entry.ok) == (who, status == 200), (who, query, entry)
        assert entry.call_id is None and entry.detail


async def test_an_agents_export_with_bad_filters_is_still_refused_and_audited(api: Api) -> None:
    bad = ("?date_from=2026-05-05&date_to=2026-05-04", "?format=xml", "?agent=a%20b")
    for done, query in enumerate(bad, 1):
        response = await call(api, "agent1", "GET", f"{V1}/cdrs/export{query}")
        assert response.status_code == 403, (query, response.text)
        entries = await audit(api, AuditAction.EXPORT, "agent1")
        assert [e.ok for e in entries] == [False] * done, query


# -- live events: an agent its own, a lead its team's, QA nothing -------------------------


def assigned(call_id: str, agent: str | None, number: str) -> CallAssigned:
    return CallAssigned(
        call_id=call_id,
        at_ms=NOW,
        mono=1.0,
        campaign="c1",
        lead_id=None,
        agent=agent,
        mode="progressive",
        direction=Direction.OUTBOUND,
        number=number,
    )


def progress(agent: str, team: str) -> QuotaProgress:
    return QuotaProgress(
        agent=agent,
        team=team,
        day=date(2026, 5, 4),
        counts={"effective_calls": 1.0},
        targets={"effective_calls": 10.0},
    )


async def test_live_events_hold_each_users_scope_and_carry_no_number(api: Api) -> None:
    hub = api.ctx.live
    users: dict[str, User] = {}
    for who in ("agent1", "agent2", "qa", "lead", "boss"):
        found = await api.ctx.users.by_username(who)
        assert found is not None
        users[who] = found
    subs = {who: hub.subscribe(user) for who, user in users.items()}
    try:
        hub.on_event(assigned("live-a1", "a1", A1_NUMBER))
        hub.on_event(assigned("live-a2", "a2", A2_NUMBER))
        hub.on_event(assigned("live-nobody", None, NOBODY_NUMBER))
        hub.on_quota(progress("a1", "t1"))
        hub.on_quota(progress("a2", "t2"))
        seen = {
            who: [
                (name, json.loads(data).get("call_id") or json.loads(data)["agent_id"])
                for name, data in sub.queue
            ]
            for who, sub in subs.items()
        }
        assert seen == {
            "agent1": [("call", "live-a1"), ("quota", "a1")],
            "agent2": [("call", "live-a2"), ("quota", "a2")],
            "qa": [],
            "lead": [("call", "live-a1"), ("quota", "a1")],
            "boss": [
                ("call", "live-a1"),
                ("call", "live-a2"),
                ("call", "live-nobody"),
                ("quota", "a1"),
                ("quota", "a2"),
            ],
        }
        queued = json.dumps([list(sub.queue) for sub in subs.values()])
        for number in (A1_NUMBER, A2_NUMBER, NOBODY_NUMBER):
            assert number[3:] not in queued
        assert not (subs["qa"].desk_changed or subs["lead"].desk_changed)
    finally:
        for sub in subs.values():
            hub.unsubscribe(sub)


async def test_a_leads_wallboard_counts_the_calls_its_agents_are_on(api: Api) -> None:
    for call_id, agent, number in (
        ("open-a1", "a1", A1_NUMBER),
        ("open-a2", "a2", A2_NUMBER),
        ("open-nobody", None, NOBODY_NUMBER),
    ):
        api.ctx.floor.service.calls.publish(assigned(call_id, agent, number))
    await asyncio.sleep(0)  # the collector and the desk tracker take them in order
    lead = (await call(api, "lead", "GET", f"{V1}/floor")).json()
    boss = (await call(api, "boss", "GET", f"{V1}/floor")).json()
    assert (lead["calls_in_progress"], boss["calls_in_progress"]) == (1, 3)
