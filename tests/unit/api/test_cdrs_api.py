"""CDR search, detail and export over the real API on a real floor (tmp SQLite)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_support import PASSWORD, Api, api_config, serving_api

from cdr.record import CallRecord, Outcome
from dialer.api.context import ApiContext
from dialer.config import DEFAULT_DISPOSITIONS, DispositionConfig

SHANGHAI = ZoneInfo("Asia/Shanghai")
USERS = {"boss": ("supervisor", None), "qa": ("qa", None), "agent1": ("agent", "a1")}


def at(day: int, hour: int) -> int:
    """UTC ms of 2026-05-<day> <hour>:00 in Shanghai (the floor's zone)."""
    return int(datetime(2026, 5, day, hour, tzinfo=SHANGHAI).timestamp() * 1000)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(api_config(tmp_path), USERS) as api:
        yield api


CALLS = [
    # call id, agent, campaign, outcome, talk s, effective, created
    ("k1", "a1", "c1", Outcome.ANSWERED, 45, True, at(1, 9)),
    ("k2", "a1", "c1", Outcome.BUSY, 0, False, at(1, 23)),  # 15:00 UTC: still May 1st here
    ("k3", "a2", "c1", Outcome.ANSWERED, 12, False, at(2, 10)),
    ("k4", "a2", "c2", Outcome.ANSWERED, 300, True, at(3, 11)),
    ("k5", "a1", "c2", Outcome.NO_ANSWER, 0, False, at(3, 12)),
]


async def add_calls(ctx: ApiContext) -> None:
    for call_id, agent, campaign, outcome, talk_s, effective, created in CALLS:
        answered = outcome is Outcome.ANSWERED
        record = CallRecord(
            call_id=call_id,
            campaign=campaign,
            agent=agent,
            number="+8613812345678",
            created_at_ms=created,
            answered_at_ms=created + 1000 if answered else None,
            ended_at_ms=created + 2000 + talk_s * 1000,
            talk_ms=talk_s * 1000,
            outcome=outcome,
            effective=effective,
            disposition="sale" if effective else None,
        )
        assert await ctx.cdrs.close(record, created + 3000 + talk_s * 1000)


async def ids(api: Api, who: str = "boss", **params: str) -> list[str]:
    response = await api.client.get("/api/v1/cdrs", params=params, headers=api.auth(who))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] >= len(body["items"])
    return [item["call_id"] for item in body["items"]]


async def test_filters_each_alone_and_together(api: Api) -> None:
    await add_calls(api.ctx)
    assert await ids(api) == ["k5", "k4", "k3", "k2", "k1"]  # newest first
    assert await ids(api, agent="a2") == ["k4", "k3"]
    assert await ids(api, campaign="c2") == ["k5", "k4"]
    assert await ids(api, outcome="answered") == ["k4", "k3", "k1"]
    assert await ids(api, effective="true") == ["k4", "k1"]
    assert await ids(api, effective="false", agent="a1") == ["k5", "k2"]
    assert await ids(api, min_talk_s="12", max_talk_s="45") == ["k3", "k1"]
    assert await ids(api, agent="nobody") == []


async def test_dates_are_local_days_inclusive(api: Api) -> None:
    await add_calls(api.ctx)
    assert await ids(api, date_from="2026-05-01", date_to="2026-05-01") == ["k2", "k1"]
    assert await ids(api, date_from="2026-05-02") == ["k5", "k4", "k3"]
    assert await ids(api, date_to="2026-05-02") == ["k3", "k2", "k1"]


async def test_paging_and_total(api: Api) -> None:
    await add_calls(api.ctx)
    response = await api.client.get(
        "/api/v1/cdrs", params={"limit": "2", "offset": "1"}, headers=api.auth("boss")
    )
    body = response.json()
    assert body["total"] == 5
    assert [item["call_id"] for item in body["items"]] == ["k4", "k3"]
    [item] = (
        await api.client.get("/api/v1/cdrs", params={"limit": "1"}, headers=api.auth("boss"))
    ).json()["items"]
    assert item == {
        "call_id": "k5",
        "campaign": "c2",
        "lead_id": None,
        "agent": "a1",
        "mode": None,
        "number": "+8613812345678",
        "outcome": "no_answer",
        "created_at_ms": at(3, 12),
        "answered_at_ms": None,
        "ended_at_ms": at(3, 12) + 2000,
        "talk_ms": 0,
        "effective": False,
        "disposition": None,
        "disposition_label": None,
        "disposition_note": "",
        "hangup_by": None,
        "has_recording": False,
        "recording_duration_ms": None,
        "qa_score": None,
    }


async def test_a_calls_result_is_named_in_the_readers_language(tmp_path: Path) -> None:
    base = api_config(tmp_path)
    visit = DispositionConfig("visit", "到店预约", effect="callback")
    policy = dataclasses.replace(base.agent_policy, dispositions=(*DEFAULT_DISPOSITIONS, visit))
    async with serving_api(dataclasses.replace(base, agent_policy=policy), USERS) as api:
        # "retired" was a result once; the floor no longer defines it.
        for n, code in enumerate(("sale", "visit", "retired")):
            created = at(1, 9) + n * 60_000
            record = CallRecord(
                call_id=f"r{n}",
                campaign="c1",
                agent="a1",
                number="+8613812345678",
                created_at_ms=created,
                answered_at_ms=created + 1000,
                ended_at_ms=created + 30_000,
                talk_ms=29_000,
                outcome=Outcome.ANSWERED,
                disposition=code,
            )
            assert await api.ctx.cdrs.close(record, created + 31_000)
        reader = await api.ctx.users.create_user(
            username="zh", password=PASSWORD, role="supervisor", locale="zh-CN"
        )
        zh = {"Authorization": f"Bearer {await api.ctx.users.issue_token(reader.id)}"}

        async def labels(headers: dict[str, str]) -> dict[str, str]:
            page = (await api.client.get("/api/v1/cdrs", headers=headers)).json()
            return {item["call_id"]: item["disposition_label"] for item in page["items"]}

        assert await labels(api.auth("boss")) == {"r0": "Sale", "r1": "到店预约", "r2": "retired"}
        assert await labels(zh) == {"r0": "成交", "r1": "到店预约", "r2": "retired"}
        detail = (await api.client.get("/api/v1/cdrs/r0", headers=zh)).json()
        assert (detail["disposition"], detail["disposition_label"]) == ("sale", "成交")


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"date_from": "2026-05-03", "date_to": "2026-05-01"}, None),
        ({"min_talk_s": "50", "max_talk_s": "10"}, None),
        ({"outcome": "great"}, "query.outcome"),
        ({"limit": "0"}, "query.limit"),
        ({"effective": "maybe"}, "query.effective"),
        ({"date_from": "1900-01-01"}, "query.date_from"),
        ({"agent": "no spaces"}, "query.agent"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(
    api: Api, params: dict[str, str], detail: str | None
) -> None:
    response = await api.client.get("/api/v1/cdrs", params=params, headers=api.auth("boss"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]
    if detail is not None:
        assert any(line.startswith(detail) for line in error["details"]), error["details"]


async def test_detail_and_unknown_call(api: Api) -> None:
    await add_calls(api.ctx)
    found = await api.client.get("/api/v1/cdrs/k4", headers=api.auth("qa"))
    assert found.status_code == 200
    body = found.json()
    assert (body["call_id"], body["number"], body["qa_scores"]) == ("k4", "+86138****5678", [])
    missing = await api.client.get("/api/v1/cdrs/nope", headers=api.auth("qa"))
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "There is no call nope."


async def test_export_csv_for_excel_with_filters(api: Api) -> None:
    await add_calls(api.ctx)
    response = await api.client.get(
        "/api/v1/cdrs/export", params={"agent": "a1", "max_talk_s": "10"}, headers=api.auth("boss")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    assert response.content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a BOM
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(row["call_id"], row["number"]) for row in rows] == [
        ("k2", "+8613812345678"),
        ("k5", "+8613812345678"),
    ]


async def test_export_jsonl_of_nothing(api: Api) -> None:
    await add_calls(api.ctx)
    response = await api.client.get(
        "/api/v1/cdrs/export",
        params={"format": "jsonl", "agent": "ghost"},
        headers=api.auth("boss"),
    )
    assert response.status_code == 200
    assert response.text == ""
    everything = await api.client.get(
        "/api/v1/cdrs/export", params={"format": "jsonl"}, headers=api.auth("boss")
    )
    assert [json.loads(line)["call_id"] for line in everything.text.splitlines()] == [
        "k1",
        "k2",
        "k3",
        "k4",
        "k5",
    ]
