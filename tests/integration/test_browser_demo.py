"""The floor's day in Chromium: an agent works a call at the desk, a reviewer scores it.

A real demo floor runs as a subprocess (``uv run dialer demo``: SIP on
loopback, simulated desk phones and customers, the API and pages on a free
port). Its first agent is left to this test, which works the desk page as a
person would: sign in, take the call the campaign dials, read the lead card,
set the result, watch the quota bar move, pause with a reason, dial a
number on the pad, hang up, book a callback, go ready again. A QA reviewer
then finds the first call, plays it (both channels drawn and non-silent),
seeks, scores it, and the score is in the CDR. A supervisor's wallboard
shows the floor. Screenshots of each page are saved (see
``browser_support.screenshots_dir``).

The tests share the one floor and run in file order: the reviewer's test
scores the call the agent's test took.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from browser_support import Browsers, DemoFloor, demo_floor, open_desk, sign_in
from playwright.async_api import Page, Response, expect

from dialer.api.dispositions import label as result_label
from dialer.config import DEFAULT_DISPOSITIONS
from dialer.web.pages import STATIC_DIR

pytestmark = pytest.mark.integration

DESK_AGENT = "agent-1001"
OTHER_AGENT = "agent-1002"
MANUAL_NUMBER = "13800138000"
NOTE = "客户明天上午方便接电话"
ZH: dict[str, str] = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
CALL_S = 30_000  # ms: ringing plus 4-6 s of talk, on a loaded machine


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoFloor]:
    with demo_floor(tmp_path_factory.mktemp("demo"), desk_agent=DESK_AGENT, phones=2) as floor:
        yield floor


@pytest.fixture(scope="module")
def story() -> dict[str, Any]:
    """What one test leaves for the next (the call the agent took)."""
    return {}


async def done_of(page: Page, metric: str) -> float:
    item = page.locator(f"[data-testid=quota-item][data-metric={metric}]")
    return float(await item.get_attribute("data-done") or "nan")


async def test_agent_takes_a_call_and_sets_its_result(
    demo: DemoFloor, browsers: Browsers, story: dict[str, Any]
) -> None:
    page = await open_desk(browsers, demo)
    state = page.get_by_test_id("desk-state")
    effective = page.locator("[data-testid=quota-item][data-metric=effective_calls]")
    await expect(effective).to_be_visible()
    effective_before = await done_of(page, "effective_calls")
    await browsers.screenshot(page, "desk-signed-out")

    # Signing in calls the desk phone; once it is up the agent is available.
    await page.get_by_test_id("btn-sign-in").click()
    await expect(state).to_have_attribute(
        "data-state", re.compile("^(ready|paused|reserved|talking)$"), timeout=CALL_S
    )
    if await state.get_attribute("data-state") == "paused":
        await page.get_by_test_id("btn-ready").click()

    # The campaign dials a customer for the ready agent: the screen pops the lead.
    card = page.get_by_test_id("lead-card")
    await expect(card).to_be_visible(timeout=CALL_S)
    await expect(state).to_have_attribute("data-state", "talking", timeout=CALL_S)
    call_id = await card.get_attribute("data-call-id")
    assert call_id
    number = await page.get_by_test_id("call-number").inner_text()
    assert re.fullmatch(r"\+?\d{11,15}", number), number  # the agent's own call: unmasked
    await expect(page.get_by_test_id("lead-phone")).to_have_text(number)
    await expect(page.get_by_test_id("lead-name")).to_have_text(re.compile(r"^客户\d{4}$"))
    await expect(page.get_by_test_id("call-duration")).to_have_text(re.compile(r"^0:0[1-9]"))
    await browsers.screenshot(page, "desk-talking")

    # The customer hangs up after a few seconds: wrap-up, the result is due.
    form = page.get_by_test_id("disposition-form")
    await expect(form).to_have_attribute("data-awaiting", "true", timeout=CALL_S)
    await expect(state).to_have_attribute("data-state", "wrap_up")
    await expect(page.get_by_test_id("callback-fields")).to_be_hidden()
    await page.get_by_test_id("disposition-code").select_option("callback")
    await expect(page.get_by_test_id("callback-fields")).to_be_visible()
    tomorrow = datetime.now() + timedelta(days=1)
    await page.get_by_test_id("callback-at").fill(tomorrow.strftime("%Y-%m-%dT10:30"))
    await page.get_by_test_id("disposition-note").fill(NOTE)
    await browsers.screenshot(page, "desk-wrap-up")
    await page.get_by_test_id("btn-disposition").click()
    # The result ends the after-call work: the agent is available for the next customer.
    await expect(form).to_have_attribute("data-awaiting", "false")
    await expect(state).to_have_attribute("data-state", re.compile("^(ready|reserved|talking)$"))

    # The call's CDR counts for today's quota: the bar moves (live, from the server).
    await page.wait_for_function(
        """before => Number(document.querySelector(
            '[data-testid=quota-item][data-metric=effective_calls]').dataset.done) > before""",
        arg=effective_before,
        timeout=CALL_S,
    )
    shortfall = await effective.get_by_test_id("quota-shortfall").inner_text()
    assert shortfall, "the shortfall is shown"
    await browsers.screenshot(page, "desk-quota-moved")

    # A break: at once when ready, else when the call in hand is over (its wrap-up
    # ends by the time limit here, as nobody sets that call's result).
    await page.get_by_test_id("pause-reason").select_option("break")
    await page.get_by_test_id("btn-pause").click()
    # Either paused now, or the desk says the pause waits for the call in hand.
    said = page.locator(
        "[data-testid=desk-state][data-state=paused], [data-testid=pause-pending]:has-text('休息')"
    )
    await expect(said.first).to_be_visible()
    await expect(state).to_have_attribute("data-state", "paused", timeout=CALL_S)
    await expect(page.get_by_test_id("pause-pending")).to_be_hidden()
    await expect(page.get_by_test_id("desk-reason")).to_have_text("休息")
    await browsers.screenshot(page, "desk-paused")

    # From the pause, a manual dial on the pad; the agent hangs up.
    for key in MANUAL_NUMBER:
        await page.get_by_test_id(f"dial-key-{key}").click()
    await expect(page.get_by_test_id("dial-number")).to_have_value(MANUAL_NUMBER)
    await page.get_by_test_id("btn-dial").click()
    await expect(card).not_to_have_attribute("data-call-id", call_id, timeout=CALL_S)
    await expect(page.get_by_test_id("call-number")).to_have_text(re.compile(f"{MANUAL_NUMBER}$"))
    await expect(state).to_have_attribute("data-state", "talking", timeout=CALL_S)
    await browsers.screenshot(page, "desk-manual-call")
    await page.get_by_test_id("btn-hangup").click()
    # A manual call has its result too; then the agent is back on the break it dialed from.
    await expect(form).to_have_attribute("data-awaiting", "true", timeout=CALL_S)
    await page.get_by_test_id("disposition-code").select_option("not_interested")
    await page.get_by_test_id("btn-disposition").click()
    await expect(form).to_have_attribute("data-awaiting", "false")
    await expect(state).to_have_attribute("data-state", "paused")

    # Done with the after-call work: ready for the campaign's next customer.
    await page.get_by_test_id("btn-ready").click()
    await expect(state).to_have_attribute(
        "data-state", re.compile("^(ready|reserved|talking)$")
    )
    await expect(page.get_by_test_id("error")).to_be_hidden()
    story["call_id"] = call_id
    story["number"] = number


async def test_reviewer_plays_and_scores_the_call(
    demo: DemoFloor, browsers: Browsers, story: dict[str, Any]
) -> None:
    call_id = story.get("call_id")
    if call_id is None:
        pytest.fail("the agent's test took no call to review (run this module whole)")
    page = await browsers.open("qa")
    ranges: list[Response] = []

    def partial(response: Response) -> None:
        if response.url.endswith(f"/recordings/{call_id}") and response.status == 206:
            ranges.append(response)

    page.on("response", partial)
    await sign_in(page, demo.url, "qa", demo.password)
    await expect(page).to_have_url(f"{demo.url}/qa")

    await page.get_by_test_id("filter-agent").fill(DESK_AGENT)
    await page.get_by_test_id("filter-outcome").select_option("answered")
    await page.get_by_test_id("btn-search").click()
    row = page.locator(f"[data-testid=cdr-row][data-call-id='{call_id}']")
    await expect(row).to_be_visible(timeout=CALL_S)
    shown = await row.locator("td").nth(3).inner_text()
    # QA never sees the full number: the same length, the middle hidden, the end kept.
    assert shown != story["number"] and "****" in shown, f"QA sees {shown!r}"
    assert len(shown) == len(story["number"]) and shown[-4:] == story["number"][-4:]
    # The result the agent set, as the reviewer's language names it.
    [callback] = [d for d in DEFAULT_DISPOSITIONS if d.code == "callback"]
    await expect(row.locator("td").nth(7)).to_have_text(result_label(callback, "zh-CN"))
    await browsers.screenshot(page, "qa-search")

    await row.click()
    player = page.get_by_test_id("player")
    await expect(player).to_have_attribute("data-call-id", call_id)
    wave = page.get_by_test_id("waveform")
    await expect(wave).to_have_attribute("data-points", re.compile(r"^\d+$"))
    # Both sides of the call are on the recording: neither track is silence.
    assert float(await wave.get_attribute("data-agent-peak") or 0) > 0.01
    assert float(await wave.get_attribute("data-customer-peak") or 0) > 0.01

    audio = page.get_by_test_id("player-audio")
    await audio.evaluate("a => a.play()")
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=player-audio]').currentTime > 0.3",
        timeout=15_000,
    )
    await audio.evaluate("a => a.pause()")
    duration = float(await audio.evaluate("a => a.duration"))
    assert duration > 3, duration  # 4-6 s of talk
    box = await wave.bounding_box()
    assert box is not None
    await wave.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    position = float(await audio.evaluate("a => a.currentTime"))
    assert abs(position - 0.75 * duration) < 0.25, (position, duration)
    await expect(wave).to_have_attribute("data-playhead-x", re.compile(r"^0\.7[45]"))
    assert ranges, "the player fetched the recording with Range requests (206)"
    await browsers.screenshot(page, "qa-player")

    items = page.locator("[data-testid=score-items] input[data-key]")
    assert await items.count() > 0
    for n in range(await items.count()):
        item = items.nth(n)
        await item.fill(await item.get_attribute("max") or "0")
    await page.get_by_test_id("score-comment").fill("浏览器测试评分")
    await page.get_by_test_id("btn-score").click()
    result = page.get_by_test_id("score-result")
    await expect(result).to_have_attribute("data-score", re.compile(r"^\d"))
    score = float(await result.get_attribute("data-score") or "nan")
    await expect(page.get_by_test_id("score-entry").first).to_be_visible()
    await browsers.screenshot(page, "qa-scored")

    # The score is the CDR's: what the API answers for the call, not only the page.
    answer = await page.request.get(f"{demo.url}/api/v1/cdrs/{call_id}")
    assert answer.ok, await answer.text()
    cdr = await answer.json()
    assert cdr["qa_score"] == pytest.approx(score)
    assert [s["score"] for s in cdr["qa_scores"]] == [pytest.approx(score)]
    assert cdr["qa_scores"][0]["comment"] == "浏览器测试评分"
    assert cdr["disposition_note"] == NOTE  # what the agent wrote in wrap-up
    await expect(row.get_by_test_id("cdr-score")).not_to_have_text("")


async def test_supervisor_watches_the_wallboard(demo: DemoFloor, browsers: Browsers) -> None:
    page = await browsers.open("supervisor")
    await sign_in(page, demo.url, "supervisor", demo.password)
    await expect(page).to_have_url(f"{demo.url}/wallboard")
    for agent in (DESK_AGENT, OTHER_AGENT):
        await expect(page.locator(f"[data-testid=wall-agent][data-agent={agent}]")).to_be_visible()
    await expect(page.get_by_test_id("calls-waiting")).to_have_text(re.compile(r"^\d+$"))
    await expect(page.get_by_test_id("abandon-row").first).to_be_visible()
    await expect(page.get_by_test_id("team-row").first).to_be_visible()
    # Time in state ticks on the page between refreshes.
    since = page.locator("[data-testid=agent-since][data-since]").first
    first = await since.inner_text()
    await expect(since).not_to_have_text(first, timeout=5_000)
    await expect(page.get_by_test_id("error")).to_be_hidden()
    await browsers.screenshot(page, "wallboard")
