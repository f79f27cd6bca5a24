"""Campaigns over the real API: the list, today's stats, lead uploads with their row report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_support import Api, api_config, serving_api
from sqlalchemy import func, select

from cdr.record import CallRecord, Outcome
from dialer.api.campaigns import row_reports
from dialer.api.context import ApiContext
from dialer.config import Config, HttpConfig, TrunkConfig
from dialer.dialing.running import running_campaigns
from dialer.dialing.setup import campaign_runner
from dialer.floor import running_floor
from dialer.leads.csv_import import RowError
from dialer.store.models import Lead

NOW = int(datetime(2026, 5, 4, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
USERS = {"boss": ("supervisor", None), "agent1": ("agent", "a1")}


def test_row_reports_group_every_problem_by_row() -> None:
    errors = [
        RowError(3, "phone", "12", "too short"),
        RowError(2, None, "a,b", "expected 3 fields, found 2"),
        RowError(3, "priority", "x", "priority must be a whole number, 0 or more"),
    ]
    assert [(r.row, r.problems) for r in row_reports(errors)] == [
        (2, ["value 'a,b': expected 3 fields, found 2"]),
        (
            3,
            [
                "column 'phone', value '12': too short",
                "column 'priority', value 'x': priority must be a whole number, 0 or more",
            ],
        ),
    ]


def config(tmp_path: Path) -> Config:
    return api_config(
        tmp_path,
        http=HttpConfig(max_upload_bytes=4096),
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(config(tmp_path), USERS, now_ms=lambda: NOW) as api:
        yield api


async def upload(api: Api, data: bytes, campaign: str = "c1", who: str = "boss") -> httpx.Response:
    return await api.client.post(
        f"/api/v1/campaigns/{campaign}/leads",
        files={"file": ("leads.csv", data, "text/csv")},
        headers=api.auth(who),
    )


async def leads_in(ctx: ApiContext) -> int:
    async with ctx.floor.database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Lead)) or 0)


async def test_list_and_stats(api: Api) -> None:
    listed = await api.client.get("/api/v1/campaigns", headers=api.auth("boss"))
    assert listed.json() == [
        {
            "id": "c1",
            "name": "c1",
            "mode": "progressive",
            "state": "stopped",
            "agents": ["a1", "a2"],
            "trunks": [],
            "signed_in": 0,
        }
    ]
    for n, abandoned in enumerate((False, False, False, True)):
        record = CallRecord(
            call_id=f"s{n}",
            campaign="c1",
            number="+8613812345678",
            created_at_ms=NOW - 60_000,
            answered_at_ms=NOW - 50_000,
            ended_at_ms=NOW - 40_000,
            outcome=Outcome.ANSWERED,
            abandoned=abandoned,
        )
        assert await api.ctx.cdrs.close(record, NOW)
    stats = await api.client.get("/api/v1/campaigns/c1/stats", headers=api.auth("boss"))
    body = stats.json()
    assert (body["calls_today"], body["answered_today"], body["abandoned_today"]) == (4, 4, 1)
    assert (body["abandon_rate_today"], body["abandon_cap"]) == (0.25, 0.03)
    assert body["leads_by_state"]["new"] == 0
    unknown = await api.client.get("/api/v1/campaigns/zz/stats", headers=api.auth("boss"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "There is no campaign zz."


async def test_upload_imports_valid_rows_and_reports_the_rest(api: Api) -> None:
    data = (
        "手机号,姓名,优先级\n"
        "13812345678,张三,1\n"
        "12,李四,x\n"  # two problems on one row
        "13812345678,王五,0\n"  # a duplicate of row 2
        "13987654321,赵六\n"  # a field short
        "13700001111,钱七,3\n"
    ).encode()
    response = await upload(api, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total_rows"], body["accepted"]) == (5, 2)
    assert [(r["row"], len(r["problems"])) for r in body["rejected"]] == [(3, 2), (5, 1)]
    assert "priority must be a whole number" in body["rejected"][0]["problems"][1]
    assert [r["row"] for r in body["duplicates"]] == [4]
    assert await leads_in(api.ctx) == 2
    stats = await api.client.get("/api/v1/campaigns/c1/stats", headers=api.auth("boss"))
    assert stats.json()["leads_by_state"]["new"] == 2
    again = await upload(api, b"phone\n13812345678\n")
    assert again.json()["accepted"] == 0
    assert "already in the campaign" in again.json()["duplicates"][0]["problems"][0]
    assert await leads_in(api.ctx) == 2


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "file is empty"),
        ("姓名\n张三\n".encode(), "missing required column 'phone'"),
        (b'phone,name\n13812345678,"unclosed\n', "unclosed quote"),
        (b"\xff\xfe\x00", "invalid utf-16-le"),
    ],
)
async def test_a_broken_file_is_refused_whole(api: Api, data: bytes, problem: str) -> None:
    response = await upload(api, data)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_file"
    assert "nothing was imported" in error["message"]
    assert any(problem in line for line in error["details"]), error["details"]
    assert await leads_in(api.ctx) == 0


async def test_oversized_upload_is_413(api: Api) -> None:
    data = b"phone\n" + b"13812345678\n" * 400  # over the 4096 bytes configured
    response = await upload(api, data)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "The file is too large: at most 4096 bytes may be uploaded."
    )
    assert await leads_in(api.ctx) == 0


async def test_only_supervisors_and_admins_upload(api: Api) -> None:
    response = await upload(api, b"phone\n13812345678\n", who="agent1")
    assert response.status_code == 403
    missing = await upload(api, b"phone\n13812345678\n", campaign="zz")
    assert missing.status_code == 404
    assert await leads_in(api.ctx) == 0


async def test_new_leads_reach_the_running_campaign(api: Api) -> None:
    floor = api.ctx.floor
    runner = campaign_runner(floor.service.calls, floor.config, floor.config.campaigns[0])
    floor.add_runner(runner)
    try:
        response = await upload(api, b"phone\n13812345678\n13987654321\n")
        assert response.json()["accepted"] == 2
        assert sorted(lead.phone for lead in runner.leads.values()) == [
            "+8613812345678",
            "+8613987654321",
        ]
        more = await upload(api, b"phone\n13987654321\n13700001111\n")
        assert more.json()["accepted"] == 1
        assert len(runner.leads) == 3
    finally:
        await runner.close()


async def test_pause_and_resume_hold_the_runners_dialing(api: Api) -> None:
    stopped = await api.client.post("/api/v1/campaigns/c1/pause", headers=api.auth("boss"))
    assert stopped.status_code == 409
    assert stopped.json()["error"]["message"] == (
        "Campaign c1 is not running on this node: there is nothing to pause or resume."
    )
    floor = api.ctx.floor
    runner = campaign_runner(floor.service.calls, floor.config, floor.config.campaigns[0])
    floor.add_runner(runner)
    refused = await api.client.post("/api/v1/campaigns/c1/pause", headers=api.auth("agent1"))
    assert refused.status_code == 403
    assert not runner.dialing_paused
    paused = await api.client.post("/api/v1/campaigns/c1/pause", headers=api.auth("boss"))
    assert (paused.status_code, paused.json()["state"]) == (200, "paused")
    assert runner.dialing_paused
    resumed = await api.client.post("/api/v1/campaigns/c1/resume", headers=api.auth("boss"))
    assert (resumed.status_code, resumed.json()["state"]) == (200, "running")
    assert not runner.dialing_paused
    unknown = await api.client.post("/api/v1/campaigns/zz/resume", headers=api.auth("boss"))
    assert unknown.status_code == 404


async def test_a_body_far_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    data = b"phone\n" + b"13812345678\n" * 10_000  # 120 kB: past the limit and its envelope
    response = await upload(api, data)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_large",
        "message": "The request body is too large: at most 4096 bytes may be uploaded.",
        "details": [],
    }
    # The signed-in user's language wins over the request's; without a user, the request's.
    headers = {"Accept-Language": "zh-CN", "Content-Type": "text/csv"}
    url = "/api/v1/campaigns/c1/leads"
    own = await api.client.post(url, content=b"x" * 100_000, headers=api.auth("boss") | headers)
    assert own.json()["error"]["message"].startswith("The request body is too large")
    anonymous = await api.client.post(url, content=b"x" * 100_000, headers=headers)
    assert anonymous.json()["error"]["message"] == "请求内容过大：最多可上传 4096 字节。"
    assert await leads_in(api.ctx) == 0


async def test_a_chunked_body_is_counted_as_it_arrives(api: Api) -> None:
    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"y" * 8192

    big = await api.client.post(
        "/api/v1/campaigns/c1/leads", content=chunks(20), headers=api.auth("boss")
    )
    assert big.status_code == 413
    # A small chunked body goes through to the route, which reads it as usual.
    small = await api.client.post(
        "/api/v1/campaigns/c1/leads", content=chunks(1), headers=api.auth("boss")
    )
    assert small.status_code == 422  # not multipart: the route says what is missing
    assert "file" in " ".join(small.json()["error"]["details"])


SUMMER = {
    "id": "summer",
    "mode": "progressive",
    "name": "夏季回访",
    "trunks": ["gw"],
    "agents": ["a1"],
    "timezone": "Asia/Shanghai",
    "windows": {"mon-sun": ["09:00-21:00"]},
    "ring_timeout_s": 20,
}


def running_config(tmp_path: Path) -> Config:
    return api_config(tmp_path, campaigns=(), trunks=(TrunkConfig("gw", "127.0.0.1", 5999),))


async def test_a_campaign_created_over_the_api_runs_now_and_after_a_restart(
    tmp_path: Path,
) -> None:
    cfg = running_config(tmp_path)
    async with serving_api(cfg, USERS, run_campaigns=True) as api:
        bad = await api.client.post(
            "/api/v1/campaigns",
            json={**SUMMER, "trunks": ["nope"], "agents": ["a1", "zz"], "ring_timeout_s": 5},
            headers=api.auth("boss"),
        )
        assert bad.status_code == 422, bad.text
        error = bad.json()["error"]
        assert (
            error["message"] == f"The campaign was not created: {len(error['details'])} problem(s)."
        )
        joined = "\n".join(error["details"])
        for key in ("campaign.trunks", "campaign.agents", "campaign.ring_timeout_s"):
            assert key in joined, error["details"]
        assert "nope" in joined and "zz" in joined
        refused = await api.client.post(
            "/api/v1/campaigns", json=SUMMER, headers=api.auth("agent1")
        )
        assert refused.status_code == 403
        assert api.ctx.floor.runners == []  # nothing half-made

        created = await api.client.post("/api/v1/campaigns", json=SUMMER, headers=api.auth("boss"))
        assert created.status_code == 201, created.text
        assert (created.json()["id"], created.json()["state"]) == ("summer", "running")
        [runner] = api.ctx.floor.runners
        assert (runner.campaign_id, runner.ring_timeout_s) == ("summer", 20.0)
        again = await api.client.post("/api/v1/campaigns", json=SUMMER, headers=api.auth("boss"))
        assert again.status_code == 409
        assert again.json()["error"]["message"] == "Campaign summer already exists."
        uploaded = await upload(api, b"phone\n13812345678\n", campaign="summer")
        assert uploaded.json()["accepted"] == 1
        assert len(runner.leads) == 1
    # The definition is kept: the next start of the node runs the campaign again.
    async with (
        running_floor(cfg, serve_metrics=False, serve_http=False) as floor,
        running_campaigns(floor) as campaigns,
    ):
        [again_runner] = campaigns.runners
        assert again_runner.campaign_id == "summer"
        assert [c.id for c in floor.config.campaigns] == ["summer"]
        assert len(again_runner.leads) == 1  # its lead, from the database


async def test_a_node_that_runs_no_campaigns_creates_none(api: Api) -> None:
    response = await api.client.post("/api/v1/campaigns", json=SUMMER, headers=api.auth("boss"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_run_here"
