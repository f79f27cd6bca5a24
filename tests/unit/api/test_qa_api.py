"""QA over the real API: scorecards, the day's sample queue, scores that show in the CDR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_support import FULL_MARKS, Api, api_config, serving_api

from cdr.audit import AuditAction
from cdr.record import CallRecord, Outcome
from dialer.api.context import ApiContext

DAY_START = int(datetime(2026, 5, 4, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
NOW = DAY_START + 15 * 3_600_000  # 15:00 on Monday 2026-05-04, Shanghai
USERS = {"qa": ("qa", None), "agent1": ("agent", "a1")}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(api_config(tmp_path), USERS, now_ms=lambda: NOW) as api:
        yield api


async def answered_calls(ctx: ApiContext, count: int) -> None:
    for n in range(count):
        created = DAY_START + 10 * 3_600_000 + n * 60_000
        record = CallRecord(
            call_id=f"q{n}",
            campaign="c1",
            agent="a1",
            number="+8613812345678",
            created_at_ms=created,
            answered_at_ms=created + 1_000,
            bridged_at_ms=created + 1_100,
            ended_at_ms=created + 41_100,
            talk_ms=40_000,
            outcome=Outcome.ANSWERED,
        )
        assert await ctx.cdrs.close(record, created + 42_000)


async def test_scorecards_are_the_standard_script(api: Api) -> None:
    response = await api.client.get("/api/v1/qa/scorecards", headers=api.auth("qa"))
    assert response.status_code == 200
    [card] = response.json()
    assert card["ref"] == "standard-script@1"
    assert {item["key"] for item in card["items"]} == set(FULL_MARKS)
    fatal = [item["key"] for item in card["items"] if item["fatal"]]
    assert fatal == ["compliance_no_false_promises"]
    assert {item["key"]: item["max"] for item in card["items"]} == FULL_MARKS


async def test_queue_is_the_days_sample_without_scored_calls(api: Api) -> None:
    await answered_calls(api.ctx, 3)  # 5 % of 3 is under the minimum of 2 a day
    queue = await api.client.get("/api/v1/qa/queue", headers=api.auth("qa"))
    assert queue.status_code == 200
    picked = [item["call_id"] for item in queue.json()]
    assert len(picked) == 2 and set(picked) <= {"q0", "q1", "q2"}
    again = await api.client.get(
        "/api/v1/qa/queue", params={"day": "2026-05-04"}, headers=api.auth("qa")
    )
    assert [item["call_id"] for item in again.json()] == picked  # reproducible
    scored = await api.client.post(
        "/api/v1/qa/scores",
        json={"call_id": picked[0], "scorecard": "standard-script", "answers": FULL_MARKS},
        headers=api.auth("qa"),
    )
    assert scored.status_code == 201, scored.text
    left = await api.client.get("/api/v1/qa/queue", headers=api.auth("qa"))
    assert [item["call_id"] for item in left.json()] == picked[1:]
    other_day = await api.client.get(
        "/api/v1/qa/queue", params={"day": "2026-05-05"}, headers=api.auth("qa")
    )
    assert other_day.json() == []


async def test_a_score_shows_in_the_cdr(api: Api) -> None:
    await answered_calls(api.ctx, 1)
    answers = {**FULL_MARKS, "closing": 0}
    response = await api.client.post(
        "/api/v1/qa/scores",
        json={
            "call_id": "q0",
            "scorecard": "standard-script@1",
            "answers": answers,
            "comment": "没有约定回访时间",
        },
        headers=api.auth("qa"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["score"], body["failed"], body["reviewer"]) == (85.0, False, "qa")
    assert body["at_ms"] == NOW
    cdr = (await api.client.get("/api/v1/cdrs/q0", headers=api.auth("qa"))).json()
    assert cdr["qa_score"] == 85.0
    [stored] = cdr["qa_scores"]
    assert (stored["scorecard"], stored["score"], stored["reviewer"], stored["comment"]) == (
        "standard-script@1",
        85.0,
        "qa",
        "没有约定回访时间",
    )
    assert body["comment"] == "没有约定回访时间"
    entries = await api.ctx.audit.entries(action=AuditAction.SCORE, call_id="q0")
    assert [entry.ok for entry in entries] == [True]


async def test_a_missed_fatal_item_scores_zero(api: Api) -> None:
    await answered_calls(api.ctx, 1)
    response = await api.client.post(
        "/api/v1/qa/scores",
        json={
            "call_id": "q0",
            "scorecard": "standard-script@1",
            "answers": {**FULL_MARKS, "compliance_no_false_promises": 0},
        },
        headers=api.auth("qa"),
    )
    assert (response.json()["score"], response.json()["failed"]) == (0.0, True)


@pytest.mark.parametrize(
    ("body", "status", "details"),
    [
        (
            {"call_id": "q0", "scorecard": "standard-script@1", "answers": {"greeting": 9}},
            422,
            ["item 'greeting': 9.0 points is outside 0–5", "item 'closing' (结束语) has no answer"],
        ),
        (
            {"call_id": "q0", "scorecard": "standard-script@1", "answers": {**FULL_MARKS, "x": 1}},
            422,
            ["answer for unknown item 'x' (scorecard standard-script@1)"],
        ),
        (
            {"call_id": "q0", "scorecard": "nope@1", "answers": FULL_MARKS},
            422,
            ["scorecard: known are standard-script@1"],
        ),
        ({"call_id": "zz", "scorecard": "standard-script@1", "answers": FULL_MARKS}, 404, []),
    ],
)
async def test_bad_scores_are_refused_naming_every_problem(
    api: Api, body: dict[str, object], status: int, details: list[str]
) -> None:
    await answered_calls(api.ctx, 1)
    response = await api.client.post("/api/v1/qa/scores", json=body, headers=api.auth("qa"))
    assert response.status_code == status, response.text
    found = response.json()["error"]["details"]
    for detail in details:
        assert detail in found, found
    assert await api.ctx.cdrs.qa_score("q0") is None  # nothing half-applied


async def test_agents_may_not_review(api: Api) -> None:
    for url in ("/api/v1/qa/queue", "/api/v1/qa/scorecards"):
        response = await api.client.get(url, headers=api.auth("agent1"))
        assert response.status_code == 403
        assert "qa" in response.json()["error"]["message"]
