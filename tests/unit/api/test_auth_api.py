"""Signing in to the API: passwords, sessions, tokens, roles and refusals in two languages.

One real floor (SQLite file, loopback SIP) for the module; requests go
through the real app in-process. The clock of the user store is the test's,
so a session expires by moving it, not by waiting.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from dialer.api.app import api_context, create_app
from dialer.api.context import ApiContext
from dialer.api.users import Role, UserError, UserRow, UserTokenRow, token_hash
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

pytestmark = pytest.mark.asyncio(loop_scope="module")

START_MS = 1_800_000_000_000
names = (f"user{n}" for n in itertools.count())


@dataclasses.dataclass
class Api:
    ctx: ApiContext
    client: httpx.AsyncClient
    clock: list[int]

    def now(self) -> int:
        return self.clock[0]

    async def user(self, role: str = "supervisor", locale: str = "en", **more: Any) -> str:
        username = next(names)
        await self.ctx.users.create_user(
            username=username, password="s3cret-pw", role=role, locale=locale, **more
        )
        return username

    async def sign_in(self, username: str) -> str:
        answer = await self.client.post(
            "/api/v1/session", json={"username": username, "password": "s3cret-pw"}
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token


def config_for(tmp: Path) -> Config:
    config = Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "desk-1001"), PhoneConfig("1002", "desk-1002")),
        agents=(AgentConfig("a1", "1001", team="t1"), AgentConfig("a2", "1002", team="t2")),
        http=HttpConfig(enabled=False, session_minutes=60),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'dialer.db'}"),
        media=MediaConfig(recordings_dir=str(tmp / "recordings")),
    )
    return dataclasses.replace(config, service=dataclasses.replace(config.service, data_dir=tmp))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    clock = [START_MS]
    config = config_for(tmp_path_factory.mktemp("auth"))
    async with running_floor(config, serve_metrics=False) as floor:
        ctx = api_context(floor, now_ms=lambda: clock[0])
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield Api(ctx, client, clock)
        ctx.live.close()


@pytest.fixture(autouse=True)
def fresh(api: Api) -> None:
    api.clock[0] = START_MS
    api.client.cookies.clear()


def bearer(token: str, language: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if language:
        headers["Accept-Language"] = language
    return headers


def error(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}, body
    found: dict[str, Any] = body["error"]
    assert set(found) == {"code", "message", "details"}
    return found


async def test_sign_in_gives_a_token_and_a_session_cookie(api: Api) -> None:
    username = await api.user(role="agent", agent_id="a1", locale="zh-CN")
    answer = await api.client.post(
        "/api/v1/session", json={"username": username, "password": "s3cret-pw"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == {
        "id": body["user"]["id"],
        "username": username,
        "name": username,
        "role": "agent",
        "locale": "zh-CN",
        "agent_id": "a1",
        "team": "t1",  # the agent's team from the configuration
    }
    assert body["expires_at"] == "2027-01-15T09:00:00Z"  # START_MS + 60 minutes, UTC
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"dialer_session={body['token']};")
    assert "HttpOnly" in cookie
    # The cookie alone signs the pages in; the bearer token alone signs programs in.
    by_cookie = await api.client.get("/api/v1/me")
    api.client.cookies.clear()
    by_bearer = await api.client.get("/api/v1/me", headers=bearer(body["token"]))
    assert by_cookie.json() == by_bearer.json() == body["user"]


async def test_wrong_password_and_unknown_user_are_the_same_401(api: Api) -> None:
    username = await api.user()
    wrong = await api.client.post(
        "/api/v1/session", json={"username": username, "password": "not-it"}
    )
    unknown = await api.client.post(
        "/api/v1/session",
        json={"username": "nobody-here", "password": "s3cret-pw"},
        headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert error(wrong) == {
        "code": "unauthenticated",
        "message": "用户名或密码错误。",
        "details": [],
    }
    assert error(unknown)["message"] == "Wrong username or password."
    assert "set-cookie" not in wrong.headers


async def test_no_or_bad_token_is_401_in_the_requested_language(api: Api) -> None:
    missing = await api.client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert error(missing) == {
        "code": "unauthenticated",
        "message": "请先登录：未提供令牌或会话。",
        "details": [],
    }
    bad = await api.client.get("/api/v1/me", headers=bearer("made-up-token", "en"))
    assert bad.status_code == 401
    assert error(bad)["message"] == "The token or session is not valid; please sign in again."


async def test_a_session_expires_after_session_minutes(api: Api) -> None:
    token = await api.sign_in(await api.user())
    api.clock[0] = START_MS + 60 * 60_000 - 1
    assert (await api.client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    api.clock[0] = START_MS + 60 * 60_000
    for language, message in (
        ("zh-CN", "会话已过期，请重新登录。"),
        ("en", "Your session has expired; please sign in again."),
    ):
        expired = await api.client.get("/api/v1/me", headers=bearer(token, language))
        assert expired.status_code == 401
        assert error(expired) == {"code": "session_expired", "message": message, "details": []}


async def test_sign_out_revokes_the_session(api: Api) -> None:
    token = await api.sign_in(await api.user())
    api.client.cookies.clear()
    out = await api.client.delete("/api/v1/session", headers=bearer(token))
    assert out.status_code == 204
    assert 'dialer_session=""' in out.headers["set-cookie"]  # the page's cookie is dropped
    again = await api.client.get("/api/v1/me", headers=bearer(token, "en"))
    assert again.status_code == 401
    revoked = "This token or session has been revoked; please sign in again."
    assert error(again)["message"] == revoked


async def test_api_tokens_last_until_revoked(api: Api) -> None:
    username = await api.user(role="qa")
    user = await api.ctx.users.by_username(username)
    assert user is not None
    token = await api.ctx.users.issue_token(user.id, "wallboard screen")
    api.clock[0] = START_MS + 365 * 86_400_000  # a year on: API tokens do not expire
    me = await api.client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["role"] == "qa"
    assert await api.ctx.users.revoke(token) is True
    assert await api.ctx.users.revoke(token) is False  # already revoked: nothing changed
    assert (await api.client.get("/api/v1/me", headers=bearer(token))).status_code == 401


async def test_only_hashes_are_stored(api: Api) -> None:
    username = await api.user()
    token = await api.sign_in(username)
    async with api.ctx.floor.database.sessionmaker() as session:
        row = await session.scalar(select(UserRow).where(UserRow.username == username))
        tokens = list(await session.scalars(select(UserTokenRow.token_hash)))
    assert row is not None
    assert "s3cret-pw" not in row.password_hash
    assert row.password_hash.startswith("scrypt$16384$8$1$")
    assert token_hash(token) in tokens and token not in tokens
    # A per-user salt: the same password hashes differently for two users.
    other = await api.user()
    async with api.ctx.floor.database.sessionmaker() as session:
        theirs = await session.scalar(
            select(UserRow.password_hash).where(UserRow.username == other)
        )
    assert theirs is not None and theirs != row.password_hash


async def test_malformed_bodies_are_422_naming_each_field(api: Api) -> None:
    missing = await api.client.post("/api/v1/session", json={"username": "x"})
    assert missing.status_code == 422
    assert error(missing) == {
        "code": "invalid_request",
        "message": "请求无效：共 1 处问题。",
        "details": ["password: 必填"],
    }
    broken = await api.client.post(
        "/api/v1/session",
        content=b'{"username": ',
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert broken.status_code == 422
    assert error(broken)["details"][0].endswith("is not valid JSON")
    wrong_types = await api.client.post(
        "/api/v1/session",
        json={"username": 7, "password": "pw", "remember": True},
        headers={"Accept-Language": "en"},
    )
    assert error(wrong_types)["details"] == [
        "username: must be text",
        "remember: is not a known field",
    ]


async def test_signed_in_users_read_errors_in_their_own_locale(api: Api) -> None:
    token = await api.sign_in(await api.user(locale="en"))
    # Accept-Language says Chinese, but the user chose English.
    bad = await api.client.patch(
        "/api/v1/me", json={"locale": "fr"}, headers=bearer(token, "zh-CN")
    )
    assert bad.status_code == 422
    assert error(bad)["message"] == "The language must be one of: zh-CN, en."
    assert error(bad)["details"] == ["locale 'fr' is not one of zh-CN, en"]
    changed = await api.client.patch("/api/v1/me", json={"locale": "zh-CN"}, headers=bearer(token))
    assert changed.status_code == 200 and changed.json()["locale"] == "zh-CN"
    now_chinese = await api.client.patch("/api/v1/me", json={}, headers=bearer(token, "en"))
    assert error(now_chinese)["details"] == ["locale: 必填"]


async def test_a_role_that_may_not_is_403_naming_the_role_needed(api: Api) -> None:
    token = await api.sign_in(await api.user(role="qa", locale="en"))
    refused = await api.client.get("/api/v1/desk", headers=bearer(token))
    assert refused.status_code == 403
    assert error(refused) == {
        "code": "forbidden",
        "message": "This needs the agent role; you are signed in as qa.",
        "details": ["needs role agent, got qa"],
    }


async def test_create_user_lists_every_problem_and_writes_nothing(api: Api) -> None:
    before = await api.ctx.users.list_users()
    with pytest.raises(UserError) as raised:
        await api.ctx.users.create_user(
            username="no spaces", password="pw", role="boss", locale="fr", agent_id="a9"
        )
    assert raised.value.problems == [
        "username 'no spaces' must be 1 to 64 letters, digits or _.@- "
        "(starting with a letter or digit)",
        "password must be 4 to 1024 characters",
        "role 'boss' is not one of agent, qa, supervisor, admin",
        "locale 'fr' is not one of zh-CN, en",
        "only agent users have an agent_id, not role 'boss'",
        "agent_id 'a9' is not a configured agent",
    ]
    with pytest.raises(UserError) as agentless:
        await api.ctx.users.create_user(username="solo", password="long-enough", role=Role.AGENT)
    assert agentless.value.problems == [
        "an agent user needs agent_id (one of the configured agents)"
    ]
    taken = await api.user(role="agent", agent_id="a2")
    with pytest.raises(UserError) as twice:
        await api.ctx.users.create_user(
            username=taken, password="long-enough", role="agent", agent_id="a2"
        )
    assert twice.value.problems == [
        f"username {taken!r} is taken",
        f"agent 'a2' already belongs to user {taken!r}",
    ]
    assert len(await api.ctx.users.list_users()) == len(before) + 1  # only `taken`
