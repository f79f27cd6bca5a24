"""Roles over the real API on a real floor: who may read calls, recordings and exports.

The must-show of issue 9: an agent cannot read another agent's calls, any
recording, or an export; QA never sees a full number (search and detail
masked, export refused); each refusal is a 403 whose message gives the
reason, in the user's language (zh-CN and en). Supervisors see full numbers
and export; every export and playback, refused ones too, is in the audit log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from api_support import api_config

from cdr.audit import AuditAction
from cdr.record import CallRecord, Outcome, RecordingRef
from dialer.api.app import api_context, create_app
from dialer.api.context import ApiContext
from dialer.config import Config
from dialer.floor import Floor, running_floor
from dialer.media.wav import build_header

A1_NUMBER, A2_NUMBER = "+8613812345678", "+8613987654321"
DAY_MS = 1_780_000_000_000  # 2026-05-28, inside any search without dates


def config(tmp_path: Path) -> Config:
    """Both agents on one team: team views cannot tell them apart, the per-agent rules can."""
    base = api_config(tmp_path)
    return dataclasses.replace(
        base, agents=tuple(dataclasses.replace(a, team="t1") for a in base.agents)
    )


def stereo_wav(path: Path, frames: int = 800) -> RecordingRef:
    audio = struct.pack("<hh", 1000, -3000) * frames
    data = build_header(2, 8000, 16, len(audio)) + audio
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=frames // 8,
        size_bytes=len(data),
        agent_speech_ms=0,
        customer_speech_ms=0,
    )


@dataclass
class Api:
    floor: Floor
    ctx: ApiContext
    client: httpx.AsyncClient
    tokens: dict[str, str]

    async def get(self, who: str, url: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.client.get(url, params=params, headers=headers)


async def add_call(ctx: ApiContext, call_id: str, agent: str, number: str, at: int) -> None:
    recording = stereo_wav(Path(ctx.floor.config.media.recordings_dir) / f"{call_id}.wav")
    record = CallRecord(
        call_id=call_id,
        campaign="c1",
        agent=agent,
        number=number,
        created_at_ms=at,
        answered_at_ms=at + 5_000,
        bridged_at_ms=at + 5_100,
        ended_at_ms=at + 65_000,
        talk_ms=59_900,
        outcome=Outcome.ANSWERED,
        effective=True,
        recording=recording,
    )
    assert await ctx.cdrs.close(record, at + 66_000)


USERS = {
    # username: (role, locale, agent)
    "agent1": ("agent", "en", "a1"),
    "agent1zh": ("agent", "zh-CN", "a2"),  # a2's agent, reading in Chinese
    "qa": ("qa", "en", None),
    "qazh": ("qa", "zh-CN", None),
    "boss": ("supervisor", "en", None),
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_floor(config(tmp_path), serve_metrics=False, serve_http=False) as floor:
        ctx = api_context(floor)
        tokens = {}
        for username, (role, locale, agent) in USERS.items():
            user = await ctx.users.create_user(
                username=username, password="secret", role=role, locale=locale, agent_id=agent
            )
            tokens[username] = await ctx.users.issue_token(user.id)
        await add_call(ctx, "call-a1", "a1", A1_NUMBER, DAY_MS)
        await add_call(ctx, "call-a2", "a2", A2_NUMBER, DAY_MS + 1_000)
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://floor") as client:
            yield Api(floor, ctx, client, tokens)
        ctx.live.close()


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    message: str = error["message"]
    return message


async def test_agent_reads_only_its_own_calls_masked(api: Api) -> None:
    found = await api.get("agent1", "/api/v1/cdrs")
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["total"] == 1
    [call] = body["items"]
    assert call["call_id"] == "call-a1"
    assert call["number"] == "+86138****5678"
    detail = await api.get("agent1", "/api/v1/cdrs/call-a1")
    assert detail.status_code == 200
    assert detail.json()["number"] == "+86138****5678"


async def test_agent_cannot_read_another_agents_calls(api: Api) -> None:
    assert refusal(await api.get("agent1", "/api/v1/cdrs", agent="a2")) == (
        "Agents may only read their own calls."
    )
    assert refusal(await api.get("agent1", "/api/v1/cdrs/call-a2")) == (
        "Agents may only read their own calls."
    )
    assert refusal(await api.get("agent1zh", "/api/v1/cdrs/call-a1")) == (
        "坐席只能查看自己的通话记录。"
    )
    assert refusal(await api.get("agent1zh", "/api/v1/cdrs", agent="a1")) == (
        "坐席只能查看自己的通话记录。"
    )


async def test_agent_cannot_play_any_recording_and_it_is_audited(api: Api) -> None:
    for call_id in ("call-a1", "call-a2"):  # not even its own call's
        message = refusal(await api.get("agent1", f"/api/v1/recordings/{call_id}"))
        assert message == "Agents may not listen to recordings; QA, supervisors and admins may."
    message = refusal(await api.get("agent1zh", "/api/v1/recordings/call-a2"))
    assert message == "坐席无权收听录音，只有质检、班长和管理员可以收听。"
    assert refusal(await api.get("agent1", "/api/v1/recordings/call-a1/peaks"))
    refused = await api.ctx.audit.entries(who="agent1", action=AuditAction.PLAY)
    assert [(e.call_id, e.ok) for e in refused] == [("call-a1", False), ("call-a2", False)]


async def test_agent_and_qa_cannot_export(api: Api) -> None:
    assert refusal(await api.get("agent1", "/api/v1/cdrs/export")) == (
        "Only supervisors and admins may export calls; you are signed in as agent."
    )
    assert refusal(await api.get("qa", "/api/v1/cdrs/export", format="jsonl")) == (
        "Only supervisors and admins may export calls; you are signed in as QA."
    )
    assert refusal(await api.get("qazh", "/api/v1/cdrs/export")) == (
        "只有班长和管理员可以导出通话记录；您的角色是质检。"
    )
    refused = await api.ctx.audit.entries(action=AuditAction.EXPORT)
    assert [(e.who, e.ok) for e in refused] == [
        ("agent1", False),
        ("qa", False),
        ("qazh", False),
    ]


async def test_qa_never_sees_a_full_number(api: Api) -> None:
    found = await api.get("qa", "/api/v1/cdrs")
    assert found.status_code == 200
    numbers = {item["call_id"]: item["number"] for item in found.json()["items"]}
    assert numbers == {"call-a1": "+86138****5678", "call-a2": "+86139****4321"}
    for call_id in numbers:
        detail = await api.get("qa", f"/api/v1/cdrs/{call_id}")
        assert detail.status_code == 200
        assert "****" in detail.json()["number"]
        assert A1_NUMBER not in detail.text and A2_NUMBER not in detail.text
    assert A1_NUMBER not in found.text and A2_NUMBER not in found.text


async def test_qa_plays_recordings_audited(api: Api) -> None:
    played = await api.get("qa", "/api/v1/recordings/call-a2")
    assert played.status_code == 200
    assert played.headers["content-type"] == "audio/wav"
    wav = Path(api.floor.config.media.recordings_dir) / "call-a2.wav"
    assert played.content == wav.read_bytes()
    [entry] = await api.ctx.audit.entries(who="qa", action=AuditAction.PLAY)
    assert (entry.call_id, entry.ok) == ("call-a2", True)


async def test_supervisor_sees_full_numbers_and_exports_audited(api: Api) -> None:
    found = await api.get("boss", "/api/v1/cdrs")
    assert {item["number"] for item in found.json()["items"]} == {A1_NUMBER, A2_NUMBER}
    exported = await api.get("boss", "/api/v1/cdrs/export", format="jsonl", agent="a2")
    assert exported.status_code == 200, exported.text
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert [(row["call_id"], row["number"]) for row in rows] == [("call-a2", A2_NUMBER)]
    [entry] = await api.ctx.audit.entries(who="boss", action=AuditAction.EXPORT)
    assert entry.ok
    assert "1 calls" in entry.detail and "agent=a2" in entry.detail


async def test_unauthenticated_is_401_not_403(api: Api) -> None:
    response = await api.client.get("/api/v1/cdrs", headers={"Accept-Language": "en"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
