"""The pages in Chromium against the real app on a real floor (no calls): sign-in, roles, language.

The floor runs in the test's loop as the service runs it (SQLite file,
loopback SIP, the API and the pages served on a free port); users are
created in its store. What is checked is what a person sees: the server's
refusal in their language, the page of their role, a language switch that
sticks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from browser_support import Browsers, sign_in
from playwright.async_api import Page, expect

from dialer.api.context import ApiContext
from dialer.api.messages import text
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

pytestmark = pytest.mark.integration

PASSWORD = "page-test-pw"


@dataclasses.dataclass
class Site:
    url: str
    ctx: ApiContext


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "desk-1001"),),
        agents=(AgentConfig("a1", "1001", team="t1"),),
        http=HttpConfig(bind_host="127.0.0.1", port=0),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"),
        media=MediaConfig(recordings_dir=str(tmp_path / "recordings")),
    )
    config = dataclasses.replace(
        config, service=dataclasses.replace(config.service, data_dir=tmp_path)
    )
    # The floor as the service runs it: the API and the pages on the floor's own app.
    async with running_floor(config, serve_metrics=False) as floor:
        assert floor.api is not None and floor.http_port is not None
        users = floor.api.users
        await users.create_user(
            username="agent1", password=PASSWORD, role="agent", name="王小明", agent_id="a1"
        )
        await users.create_user(username="qa1", password=PASSWORD, role="qa", name="QA One")
        await users.create_user(
            username="boss", password=PASSWORD, role="supervisor", name="Boss", locale="en"
        )
        url = f"http://127.0.0.1:{floor.http_port}"
        async with httpx.AsyncClient() as client:
            login = await client.get(f"{url}/login")
        if login.status_code != 200:
            pytest.fail(
                f"the floor's app serves no pages (GET /login: {login.status_code}): "
                "create_app must call dialer.web.pages.mount_pages(app)",
                pytrace=False,
            )
        yield Site(url, floor.api)


async def log_in(page: Page, site: Site, username: str, password: str = PASSWORD) -> None:
    await sign_in(page, site.url, username, password)


async def test_sign_in_refusal_then_desk_then_english(site: Site, browsers: Browsers) -> None:
    page = await browsers.open("agent", locale="zh-CN")
    await page.goto(site.url + "/")
    await expect(page).to_have_url(f"{site.url}/login")
    await expect(page.get_by_test_id("login-submit")).to_have_text("登录")
    await browsers.screenshot(page, "login")

    await log_in(page, site, "agent1", "wrong password")
    # The server's own message, in the language the page asked for.
    refused = text("auth.bad_credentials", "zh-CN")
    await expect(page.get_by_test_id("error-message")).to_have_text(refused)
    await browsers.screenshot(page, "login-refused")
    # Before sign-in the page's own language choice is what the server answers in.
    await page.get_by_test_id("locale-switch").select_option("en")
    await expect(page.get_by_test_id("login-submit")).to_have_text("Sign in")
    await page.get_by_test_id("login-password").fill("still wrong")
    await page.get_by_test_id("login-submit").click()
    english = text("auth.bad_credentials", "en")
    await expect(page.get_by_test_id("error-message")).to_have_text(english)
    await page.get_by_test_id("locale-switch").select_option("zh-CN")

    await log_in(page, site, "agent1")
    await expect(page).to_have_url(f"{site.url}/desk")
    await expect(page.get_by_test_id("user-name")).to_have_text("王小明")
    await expect(page.get_by_test_id("desk-state")).to_have_text("未签入")
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "open")

    # No campaign runs on this floor: the desk says so, in Chinese, and stays signed out.
    await page.get_by_test_id("btn-sign-in").click()
    no_campaign = text("desk.no_campaign", "zh-CN")
    await expect(page.get_by_test_id("error-message")).to_have_text(no_campaign)
    await expect(page.get_by_test_id("desk-state")).to_have_text("未签入")
    await browsers.screenshot(page, "desk-refused")

    await page.get_by_test_id("locale-switch").select_option("en")
    await expect(page.get_by_test_id("desk-state")).to_have_text("Signed out")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    me = await site.ctx.users.by_username("agent1")
    assert me is not None and me.locale == "en"
    await browsers.screenshot(page, "desk-english")

    # An agent is not a reviewer: the QA page says so instead of showing calls.
    await page.goto(f"{site.url}/qa")
    await expect(page.get_by_test_id("wrong-page")).to_contain_text("Agent")
    await expect(page.get_by_test_id("cdr-rows")).to_have_count(0)

    await page.goto(f"{site.url}/desk")
    await page.get_by_test_id("sign-out").click()
    await expect(page).to_have_url(f"{site.url}/login")
    await page.goto(f"{site.url}/desk")
    await expect(page).to_have_url(f"{site.url}/login?next=%2Fdesk")


async def test_reviewer_and_supervisor_land_on_their_pages(
    site: Site, browsers: Browsers
) -> None:
    qa = await browsers.open("qa", locale="zh-CN")
    await log_in(qa, site, "qa1")
    await expect(qa).to_have_url(f"{site.url}/qa")
    await expect(qa.get_by_test_id("result-count")).to_contain_text("共 0 通")
    await expect(qa.get_by_test_id("player-empty")).to_be_visible()
    await browsers.screenshot(qa, "qa-empty")

    boss = await browsers.open("supervisor", locale="zh-CN")
    await log_in(boss, site, "boss")
    await expect(boss).to_have_url(f"{site.url}/wallboard")
    await expect(boss.get_by_test_id("user-role")).to_have_text("Supervisor")  # user's locale: en
    await expect(boss.locator("body[data-ready=true]")).to_be_attached()
    await expect(boss.locator("html")).to_have_attribute("lang", "en")
    # The one configured agent, signed out, and no call: the floor as it is.
    agent = boss.locator("[data-testid=state-group][data-state=signed_out] [data-agent=a1]")
    await expect(agent).to_be_visible()
    await expect(boss.get_by_test_id("calls-waiting")).to_have_text("0")
    await expect(boss.get_by_test_id("error")).to_be_hidden()
    await browsers.screenshot(boss, "wallboard")
