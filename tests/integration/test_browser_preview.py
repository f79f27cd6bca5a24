"""Preview dialing at the desk page in Chromium: next lead, skip it, accept the next.

A demo floor runs as a subprocess with ``--desk-mode preview``: its first
agent works a preview campaign of its own (nothing is dialed until the agent
accepts a lead), the other agent stays
on the progressive campaign. The test works the desk page as a person would:
sign in, ask for the next lead and read its card, try to skip it without a
reason (refused), skip it with one, get a different lead, accept it, see the
call become the current call, let the customer hang up, set the result. The
API then tells the same story: the accepted lead's call is the campaign's
only CDR, with the result the agent set; the skipped lead was never dialed.
Screenshots of each step are saved (see ``browser_support.screenshots_dir``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Browsers, DemoFloor, demo_floor, open_desk
from playwright.async_api import Page, expect

pytestmark = pytest.mark.integration

DESK_AGENT = "agent-1001"
SKIP_REASON = "客户上周刚投诉过"
NOTE = "预览拨打，客户有意向"
CALL_S = 30_000  # ms: the customer ringing, then 4-6 s of talk, on a loaded machine
NAME = re.compile(r"^客户\d{4}$")  # the demo's leads, as its CSV names them
PHONE = re.compile(r"^\+?\d{11,15}$")  # the agent's own lead: unmasked
# The preview campaign's CDRs once the accepted call's result is in them: the page's
# own fetch (its session cookie), retried by Playwright until the row is complete.
CDRS_WITH_RESULT = """async ([campaign, callId]) => {
  const answer = await fetch(`/api/v1/cdrs?campaign=${encodeURIComponent(campaign)}`);
  if (!answer.ok) return null;
  const found = await answer.json();
  const call = found.items.find((item) => item.call_id === callId);
  return call !== undefined && call.disposition !== null ? found : null;
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoFloor]:
    data_dir = tmp_path_factory.mktemp("demo-preview")
    with demo_floor(data_dir, desk_agent=DESK_AGENT, phones=2, desk_mode="preview") as floor:
        yield floor


async def desk_now(page: Page, demo: DemoFloor) -> dict[str, Any]:
    """The desk as the API answers it to the signed-in agent (the page's own session)."""
    answer = await page.request.get(f"{demo.url}/api/v1/desk")
    assert answer.ok, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


async def test_agent_skips_a_previewed_lead_and_calls_the_next(
    demo: DemoFloor, browsers: Browsers
) -> None:
    page = await open_desk(browsers, demo)
    state = page.get_by_test_id("desk-state")

    # Signing in calls the desk phone; once it is up the agent is ready, and in preview
    # nothing is dialed for a ready agent until it accepts a lead.
    await page.get_by_test_id("btn-sign-in").click()
    await expect(state).to_have_attribute("data-state", "ready", timeout=CALL_S)
    campaign = await page.get_by_test_id("desk-campaign").inner_text()
    assert campaign.endswith("-preview"), campaign  # the desk agent's own campaign
    next_lead = page.get_by_test_id("btn-preview-next")
    preview = page.get_by_test_id("preview-card")
    await expect(preview).to_be_hidden()
    await expect(page.get_by_test_id("no-call")).to_be_visible()
    await expect(next_lead).to_be_enabled()
    await browsers.screenshot(page, "ready")

    # The next lead: its card shows who and which number; the agent is held for it.
    await next_lead.click()
    await expect(preview).to_be_visible()
    await expect(state).to_have_attribute("data-state", "reserved")
    await expect(state).to_have_text("预览中")  # held for the card, no call coming yet
    name = page.get_by_test_id("preview-name")
    phone = page.get_by_test_id("preview-phone")
    await expect(name).to_have_text(NAME)
    await expect(phone).to_have_text(PHONE)
    await expect(next_lead).to_be_disabled()  # one lead at a time
    await expect(page.get_by_test_id("lead-card")).to_be_hidden()  # nothing dialed yet
    skipped_name, skipped_phone = await name.inner_text(), await phone.inner_text()
    shown = await desk_now(page, demo)
    assert shown["current_call"] is None
    assert (shown["preview"]["name"], shown["preview"]["phone"]) == (skipped_name, skipped_phone)
    skipped_id = shown["preview"]["id"]
    await browsers.screenshot(page, "preview-first-lead")

    # A skip needs a reason: without one it is refused and the lead stays on screen.
    skip = page.get_by_test_id("btn-preview-skip")
    await skip.click()
    await expect(page.get_by_test_id("error")).to_contain_text("请填写跳过该客户的原因")
    await expect(preview).to_be_visible()
    await expect(name).to_have_text(skipped_name)
    await browsers.screenshot(page, "preview-skip-refused")
    reason = page.get_by_test_id("preview-skip-reason")
    await reason.fill(SKIP_REASON)
    await skip.click()
    await expect(preview).to_be_hidden()
    await expect(state).to_have_attribute("data-state", "ready")
    await expect(page.get_by_test_id("error")).to_be_hidden()
    await expect(page.get_by_test_id("no-call")).to_be_visible()

    # The next lead is another one: the skipped lead waits for a later turn.
    await next_lead.click()
    await expect(preview).to_be_visible()
    await expect(name).to_have_text(NAME)
    await expect(name).not_to_have_text(skipped_name)
    await expect(reason).to_have_value("")  # the last lead's reason is not this one's
    accepted_name, accepted_phone = await name.inner_text(), await phone.inner_text()
    assert re.fullmatch(PHONE, accepted_phone) and accepted_phone != skipped_phone
    accepted_id = (await desk_now(page, demo))["preview"]["id"]
    assert accepted_id != skipped_id
    await browsers.screenshot(page, "preview-second-lead")

    # Accepted, it is dialed: the customer rings, answers and is bridged to the desk
    # phone; the previewed lead becomes the current call's lead card.
    await page.get_by_test_id("btn-preview-accept").click()
    card = page.get_by_test_id("lead-card")
    await expect(card).to_be_visible(timeout=CALL_S)
    await expect(preview).to_be_hidden()
    await expect(state).to_have_attribute("data-state", "talking", timeout=CALL_S)
    call_id = await card.get_attribute("data-call-id")
    assert call_id
    await expect(page.get_by_test_id("lead-name")).to_have_text(accepted_name)
    await expect(page.get_by_test_id("lead-phone")).to_have_text(accepted_phone)
    await expect(page.get_by_test_id("call-number")).to_have_text(accepted_phone)
    await expect(page.get_by_test_id("call-duration")).to_have_text(re.compile(r"^0:0[1-9]"))
    await browsers.screenshot(page, "preview-talking")

    # The customer hangs up after a few seconds: wrap-up, the result is due.
    form = page.get_by_test_id("disposition-form")
    await expect(form).to_have_attribute("data-awaiting", "true", timeout=CALL_S)
    await expect(state).to_have_attribute("data-state", "wrap_up")
    await page.get_by_test_id("disposition-code").select_option("sale")
    await page.get_by_test_id("disposition-note").fill(NOTE)
    await browsers.screenshot(page, "preview-wrap-up")
    await page.get_by_test_id("btn-disposition").click()
    await expect(form).to_have_attribute("data-awaiting", "false")
    # Preview never dials by itself: after the result the agent is simply ready.
    await expect(state).to_have_attribute("data-state", "ready")
    await expect(card).to_be_hidden()
    await expect(next_lead).to_be_enabled()
    await expect(page.get_by_test_id("error")).to_be_hidden()
    await browsers.screenshot(page, "preview-done")

    # The API's account: the accepted lead's call is the campaign's one CDR, answered,
    # the agent's, with its result; the skipped lead was never dialed.
    found = await page.wait_for_function(
        CDRS_WITH_RESULT, arg=[campaign, call_id], polling=250, timeout=CALL_S
    )
    cdrs: dict[str, Any] = await found.json_value()
    assert cdrs["total"] == 1, cdrs
    assert [item["lead_id"] for item in cdrs["items"]] == [accepted_id]
    assert skipped_id not in {item["lead_id"] for item in cdrs["items"]}
    answer = await page.request.get(f"{demo.url}/api/v1/cdrs/{call_id}")
    assert answer.ok, await answer.text()
    cdr = await answer.json()
    assert (cdr["campaign"], cdr["agent"], cdr["mode"]) == (campaign, DESK_AGENT, "preview")
    assert (cdr["outcome"], cdr["disposition"], cdr["disposition_note"]) == (
        "answered",
        "sale",
        NOTE,
    )
    assert cdr["talk_ms"] > 3_000  # the customer talked 4-6 s
    after = await desk_now(page, demo)
    assert (after["state"], after["preview"], after["current_call"]) == ("ready", None, None)
