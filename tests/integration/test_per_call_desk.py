"""Preview and manual work on the HTTP desk of ``dialer serve``: the desk phone rung per call.

A baresip desk phone registers to the floor; the campaign runs as ``serve``
runs it, its customers are SIPp behind the configured trunk. The agent works
through the desk API and each call is checked in the agent's states, the
CDR (one per call, the agent's, its outcome and talk time) and the lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_support import Api, api_config, serving_api
from audio import tone, write_ulaw, write_wav
from peers import Baresip, Sipp
from peers.ports import LOOPBACK
from peers.sipp import SCENARIOS
from sqlalchemy import text
from support import AGENT_HZ, CUSTOMER_HZ, Seen, open_now, settled, until

from dialer.agents.state import AgentState
from dialer.campaigns.recycling import LeadState
from dialer.config import (
    AgentConfig,
    AgentPolicyConfig,
    CampaignConfig,
    Config,
    PhoneConfig,
    TrunkConfig,
)
from dialer.dialing.runner import CampaignRunner
from dialer.events import (
    AgentStateChanged,
    CallAssigned,
    CallEnded,
    CallStarted,
    PhoneUnregistered,
)
from dialer.leads.csv_import import import_leads
from dialer.store.leads import LeadStore

pytestmark = pytest.mark.integration

EXTENSION, PHONE_PASSWORD = "1001", "pw-1001"
USERS = {"a1": ("agent", "a1")}
BaresipFactory = Callable[..., Baresip]
SippFactory = Callable[..., Sipp]


def floor_for(tmp_path: Path, mode: str, trunk_port: int) -> Config:
    base = api_config(tmp_path)
    return dataclasses.replace(
        base,
        phones=(PhoneConfig(EXTENSION, PHONE_PASSWORD, vendor="baresip"),),
        agents=(AgentConfig("a1", EXTENSION),),
        trunks=(TrunkConfig("gw", LOOPBACK, trunk_port),),
        agent_policy=AgentPolicyConfig(wrap_up_limit_s=30.0),
        campaigns=(
            CampaignConfig(
                "c1",
                mode,
                trunks=("gw",),
                agents=("a1",),
                timezone="UTC",
                windows=open_now(datetime.now(UTC)),
                ring_timeout_s=15.0,
                screen_early_media=False,
            ),
        ),
    )


@dataclass
class Desk:
    api: Api
    runner: CampaignRunner
    phone: Baresip
    seen: Seen

    async def post(self, path: str, body: object = None) -> dict[str, object]:
        answer = await self.api.client.post(
            f"/api/v1/desk/{path}", json=body, headers=self.api.auth("a1")
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, object] = answer.json()
        return found

    async def refused(self, path: str, body: object = None) -> dict[str, object]:
        answer = await self.api.client.post(
            f"/api/v1/desk/{path}", json=body, headers=self.api.auth("a1")
        )
        assert answer.status_code in (409, 422), answer.text
        found: dict[str, object] = answer.json()["error"]
        return found

    @property
    def state(self) -> AgentState:
        return self.runner.agents["a1"].agent.state

    def reason(self) -> str | None:
        found = self.runner.agents["a1"].agent.pause_reason
        return found.code if found is not None else None

    async def until_state(self, state: AgentState, within: float = 15.0) -> None:
        await until(self.seen, lambda: self.state is state, within, lambda: self.state.value)

    def states(self) -> list[tuple[str, str | None]]:
        return [
            (e.state, e.reason)
            for e in self.seen.events
            if isinstance(e, AgentStateChanged) and e.agent == "a1"
        ]

    def assigned(self) -> list[CallAssigned]:
        return [e for e in self.seen.events if isinstance(e, CallAssigned)]


@contextlib.asynccontextmanager
async def desk(
    tmp_path: Path,
    mode: str,
    customers: Sipp,
    baresip_factory: BaresipFactory,
    *,
    leads: int = 0,
    auto_answer: bool = True,
) -> AsyncIterator[Desk]:
    """The floor running campaign c1 (``mode``), ``leads`` imported, a1's phone registered."""
    await customers.start()
    config = floor_for(tmp_path, mode, customers.port)
    audio = write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 20))
    async with serving_api(config, USERS, run_campaigns=True) as api:
        floor = api.ctx.floor
        seen = Seen()
        floor.service.subscribe(seen)
        [runner] = floor.runners
        if leads:
            rows = ["电话,姓名", *(f"1370000{n:04d},客户{n}" for n in range(leads))]
            report = import_leads(("\r\n".join(rows) + "\r\n").encode())
            imported = await LeadStore(floor.database).import_report(
                "c1", report, now=datetime.now(UTC)
            )
            assert imported == leads
            assert await runner.refresh() == leads
        host, port = floor.service.sip_address
        phone = baresip_factory(
            user=EXTENSION,
            password=PHONE_PASSWORD,
            registrar=f"{host}:{port}",
            audio_file=audio,
            auto_answer=auto_answer,
        )
        await phone.start()
        await phone.wait_event("REGISTER_OK", timeout=10)
        try:
            yield Desk(api, runner, phone, seen)
        finally:
            await phone.stop()


async def cdr_rows(api: Api) -> list[dict[str, object]]:
    await settled(api.ctx.floor)
    async with api.ctx.floor.database.session() as session:
        found = await session.execute(
            text(
                "SELECT call_id, agent, lead_id, outcome, talk_ms, hangup_by, disposition, mode "
                "FROM cdrs ORDER BY created_at_ms"
            )
        )
        return [dict(row) for row in found.mappings()]


async def lead_states(api: Api) -> dict[str, str]:
    """Each lead's state in the database, once every campaign's writes are in."""
    for runner in api.ctx.floor.runners:
        await runner.drain()
    async with api.ctx.floor.database.session() as session:
        found = await session.execute(text("SELECT id, state FROM leads"))
        return {str(lead): str(state) for lead, state in found.all()}


def customer_answer(sipp_factory: SippFactory, tmp_path: Path, *, calls: int) -> Sipp:
    """Customers who answer and talk (a tone) until hung up."""
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 30))
    return sipp_factory("uas_answer.xml", rtp_file=talk, timeout=60, calls=calls)


def customer_answer_hangup(sipp_factory: SippFactory, tmp_path: Path, **options: object) -> Sipp:
    talk = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    return sipp_factory("uas_answer_hangup.xml", rtp_file=talk, timeout=60, **options)


async def test_preview_day_idle_accept_answer_customer_hangs_up_disposition(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    # Talk outlasts one of the runner's 5 s checks.
    customers = customer_answer_hangup(sipp_factory, tmp_path, duration_ms=5500, calls=1)
    async with desk(tmp_path, "preview", customers, baresip_factory, leads=2) as d:
        signed = await d.post("sign-in")
        assert signed["state"] == "ready"
        # Idle past two of the runner's 5 s checks: a per-call agent stays ready.
        await asyncio.sleep(10.5)
        assert d.state is AgentState.READY
        assert d.runner.drift_corrections == 0
        shown = await d.post("preview/next")
        assert shown["state"] == "reserved" and shown["preview"] is not None
        # A double click on "call": one call is placed, the second click is refused.
        clicks = await asyncio.gather(
            *(
                d.api.client.post("/api/v1/desk/preview/accept", headers=d.api.auth("a1"))
                for _ in range(2)
            )
        )
        assert sorted(c.status_code for c in clicks) == [200, 409]
        await d.phone.wait_event("CALL_ESTABLISHED", timeout=10)  # the desk phone rang
        await d.until_state(AgentState.TALKING)
        await d.until_state(AgentState.WRAP_UP)  # the customer hung up
        body = (await d.api.client.get("/api/v1/desk", headers=d.api.auth("a1"))).json()
        assert body["awaiting_disposition"] is True
        done = await d.post("disposition", {"code": "sale"})
        assert done["state"] == "ready"
        assert d.runner.drift_corrections == 0
        [call] = d.assigned()
        rows = await cdr_rows(d.api)
        states = await lead_states(d.api)
    assert [r["call_id"] for r in rows] == [call.call_id], rows
    [row] = rows
    assert (row["agent"], row["outcome"], row["hangup_by"], row["disposition"]) == (
        "a1",
        "answered",
        "customer",
        "sale",
    )
    assert isinstance(row["talk_ms"], int) and row["talk_ms"] > 5000
    assert states[str(call.lead_id)] == LeadState.DONE.value
    assert sorted(states.values()) == ["done", "new"]
    assert (await customers.wait(10)).ok


async def test_manual_day_paused_dial_hangups_and_sign_out_in_wrap_up(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer(sipp_factory, tmp_path, calls=2)
    async with desk(tmp_path, "manual", customers, baresip_factory) as d:
        assert (await d.post("sign-in"))["state"] == "ready"
        await asyncio.sleep(10.5)  # two of the runner's checks
        assert d.state is AgentState.READY and d.runner.drift_corrections == 0
        await d.post("state", {"state": "paused", "reason": "break"})
        # A manual dial from a pause; the agent hangs up from the desk.
        await d.post("dial", {"number": "137 0000 0001"})
        await d.phone.wait_event("CALL_ESTABLISHED", timeout=10)
        await d.until_state(AgentState.TALKING)
        await asyncio.sleep(1.0)
        await d.post("hangup")
        await d.until_state(AgentState.WRAP_UP)
        done = await d.post("disposition", {"code": "not_interested"})
        assert (done["state"], done["reason"]) == ("paused", "break")  # back to its pause
        assert (await d.post("state", {"state": "ready"}))["state"] == "ready"
        # From ready; the agent hangs up on the phone, then signs out in wrap-up.
        await d.post("dial", {"number": "13700000002"})
        await d.phone.wait_event("CALL_ESTABLISHED", timeout=10)
        await d.until_state(AgentState.TALKING)
        await asyncio.sleep(1.0)
        await d.phone.hangup()
        await d.until_state(AgentState.WRAP_UP)
        assert (await d.post("sign-out"))["state"] == "signed_out"
        rows = await cdr_rows(d.api)
        # Signed in again the agent starts clean: ready, no result owed for the last call.
        again = await d.post("sign-in")
        assert (again["state"], again["awaiting_disposition"]) == ("ready", False)
        states = d.states()
    assert [(r["agent"], r["lead_id"], r["mode"], r["outcome"], r["hangup_by"]) for r in rows] == [
        ("a1", None, "manual", "answered", "agent"),
        ("a1", None, "manual", "answered", "agent"),
    ]
    assert [r["disposition"] for r in rows] == ["not_interested", None]
    assert all(isinstance(r["talk_ms"], int) and r["talk_ms"] > 500 for r in rows), rows
    assert states == [
        ("paused", "not_ready"),
        ("ready", None),
        ("paused", "break"),
        ("reserved", None),
        ("talking", None),
        ("wrap_up", None),
        ("paused", "break"),
        ("ready", None),
        ("reserved", None),
        ("talking", None),
        ("wrap_up", None),
        ("signed_out", None),
        ("paused", "not_ready"),
        ("ready", None),
    ]
    assert (await customers.wait(10)).ok


async def start_call(d: Desk, mode: str) -> str:
    """Sign in and start one call of ``mode`` from the desk; its call id."""
    await d.post("sign-in")
    if mode == "preview":
        await d.post("preview/next")
        await d.post("preview/accept")
    else:
        await d.post("dial", {"number": "13700000001"})
    [call] = d.assigned()
    return call.call_id


def customer_started(d: Desk, call_id: str) -> bool:
    return any(isinstance(e, CallStarted) and e.call_id == call_id for e in d.seen.events)


@pytest.mark.parametrize("mode", ["preview", "manual"])
async def test_the_customer_is_not_dialed_while_the_desk_phone_rings(
    mode: str, tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = sipp_factory("uas_ring_until_cancel.xml", timeout=30, calls=1)
    async with desk(tmp_path, mode, customers, baresip_factory, leads=1, auto_answer=False) as d:
        call_id = await start_call(d, mode)
        await d.phone.wait_event("CALL_INCOMING", timeout=10)
        await asyncio.sleep(2.0)  # the agent has not picked up yet
        assert not customer_started(d, call_id), d.seen.tail()


async def test_a_desk_phone_that_never_answers_does_not_hold_agent_and_lead(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer(sipp_factory, tmp_path, calls=1)
    async with desk(
        tmp_path, "preview", customers, baresip_factory, leads=1, auto_answer=False
    ) as d:
        call_id = await start_call(d, "preview")
        await d.phone.wait_event("CALL_INCOMING", timeout=10)
        # The ring of a desk phone is given up like a customer's: within the ring timeout.
        ended = d.runner.ring_timeout_s + 5
        await until(
            d.seen,
            lambda: any(isinstance(e, CallEnded) and e.call_id == call_id for e in d.seen.events),
            ended,
        )
        await until(d.seen, lambda: d.state is not AgentState.RESERVED, 5)
        rows = await cdr_rows(d.api)
        states = await lead_states(d.api)
    assert not customer_started(d, call_id)
    [row] = rows
    assert (row["agent"], row["outcome"], row["hangup_by"]) == ("a1", "cancelled", "system")
    assert list(states.values()) == [LeadState.QUEUED.value]


async def test_a_declined_desk_ring_frees_the_agent_and_never_dials_the_customer(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = sipp_factory("uas_answer.xml", timeout=30, calls=1)
    async with desk(
        tmp_path, "preview", customers, baresip_factory, leads=1, auto_answer=False
    ) as d:
        call_id = await start_call(d, "preview")
        await d.phone.wait_event("CALL_INCOMING", timeout=10)
        await d.phone.hangup()  # declined: baresip answers the INVITE 486
        await d.seen.first(CallEnded, {call_id}, within=10)
        await d.until_state(AgentState.READY, 5)
        rows = await cdr_rows(d.api)
        states = await lead_states(d.api)
        lead = d.runner.leads[next(iter(states))]
        trunks = d.runner.trunks
        assert trunks is not None
        health = trunks.health()["gw"]
    assert not customer_started(d, call_id)  # nobody was rung who could pick up to silence
    [row] = rows
    assert (row["call_id"], row["outcome"], row["talk_ms"], row["hangup_by"]) == (
        call_id,
        "cancelled",
        0,
        "agent",
    )
    assert list(states.values()) == [LeadState.QUEUED.value]
    assert lead.attempts == 0  # not the customer's attempt
    assert health.failures == 0  # nor the trunk's


async def test_two_quick_next_clicks_show_one_lead_and_claim_one(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer_hangup(sipp_factory, tmp_path, duration_ms=1000, calls=1)
    async with desk(tmp_path, "preview", customers, baresip_factory, leads=3) as d:
        await d.post("sign-in")
        clicks = await asyncio.gather(
            *(
                d.api.client.post("/api/v1/desk/preview/next", headers=d.api.auth("a1"))
                for _ in range(2)
            )
        )
        # Either click may be refused (409); the ones shown a lead are shown the same one.
        assert all(c.status_code in (200, 409) for c in clicks), [c.text for c in clicks]
        shown = {c.json()["preview"]["id"] for c in clicks if c.status_code == 200}
        floor = d.runner.agents["a1"]
        held, reserved_for = floor.preview, floor.agent.current_call
        states = await lead_states(d.api)
    assert held is not None and shown == {held.lead_id}
    assert reserved_for == f"preview-{held.lead_id}"
    assert sorted(states.values()) == ["in_progress", "new", "new"], states


async def test_a_desk_phone_restarted_after_sign_in_is_rung_where_it_now_is(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer_hangup(sipp_factory, tmp_path, duration_ms=1000, calls=1)
    async with desk(tmp_path, "preview", customers, baresip_factory, leads=1) as d:
        await d.post("sign-in")
        await d.phone.stop()  # the phone is rebooted: it unregisters, and comes back elsewhere
        await until(d.seen, lambda: d.reason() == "phone_lost", 5)
        host, port = d.api.ctx.floor.service.sip_address
        again = baresip_factory(
            user=EXTENSION,
            password=PHONE_PASSWORD,
            registrar=f"{host}:{port}",
            audio_file=d.phone.audio_file,
        )
        await again.start()
        await again.wait_event("REGISTER_OK", timeout=10)
        assert again.sip_port != d.phone.sip_port
        # The runner's check sees the phone back (the pause it was in: not ready).
        await until(d.seen, lambda: d.reason() == "not_ready", 7)
        await d.post("state", {"state": "ready"})
        await d.post("preview/next")
        await d.post("preview/accept")
        [call] = d.assigned()
        [ring] = [
            e
            for e in d.seen.events
            if isinstance(e, CallStarted) and e.call_id == f"{call.call_id}-agent"
        ]
        assert ring.target.endswith(f":{again.sip_port}"), ring.target
        await again.wait_event("CALL_ESTABLISHED", timeout=5)
        await d.until_state(AgentState.TALKING)
        await again.stop()


def unregister_all(sipp_factory: SippFactory, tmp_path: Path, registrar: str) -> Sipp:
    """SIPp removing every binding of the extension (RFC 3261 §10.2.2: Contact: *, Expires: 0)."""
    scenario = (SCENARIOS / "uac_register.xml").read_text(encoding="iso-8859-1")
    scenario = scenario.replace(
        "Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>", "Contact: *"
    ).replace("Expires: 300", "Expires: 0")
    path = tmp_path / "uac_unregister_all.xml"
    path.write_text(scenario, encoding="iso-8859-1")
    return sipp_factory(
        path, registrar, service=EXTENSION, auth_user=EXTENSION, auth_password=PHONE_PASSWORD
    )


async def test_a_phone_unregistering_mid_call_leaves_state_and_call_agreeing(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer(sipp_factory, tmp_path, calls=1)
    async with desk(tmp_path, "manual", customers, baresip_factory) as d:
        call_id = await start_call(d, "manual")
        await d.until_state(AgentState.TALKING)
        host, port = d.api.ctx.floor.service.sip_address
        gone = unregister_all(sipp_factory, tmp_path, f"{host}:{port}")
        await gone.start()
        assert (await gone.wait(10)).ok
        await until(d.seen, lambda: any(isinstance(e, PhoneUnregistered) for e in d.seen.events), 5)
        await asyncio.sleep(1.0)
        ended = any(isinstance(e, CallEnded) and e.call_id == call_id for e in d.seen.events)
        # Either the call ended with the phone (as PHONE_LOST is documented to do), or the
        # agent is still shown in it: never a pause with a customer on the line.
        assert ended or d.state is AgentState.TALKING, (d.state, d.reason())


async def test_an_agent_whose_phone_is_gone_dials_nobody(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = customer_answer_hangup(sipp_factory, tmp_path, duration_ms=1000, calls=1)
    async with desk(tmp_path, "manual", customers, baresip_factory) as d:
        await d.post("sign-in")
        await d.phone.stop()  # unregisters on the way out
        await until(d.seen, lambda: d.reason() == "phone_lost", 5)
        refused = await d.refused("dial", {"number": "13700000001"})
        assert "phone" in refused["details"][0]  # type: ignore[index]
        ready = await d.post("state", {"state": "ready"})
        assert (ready["state"], ready["reason"]) == ("paused", "phone_lost")
        await asyncio.sleep(0.5)
        assert d.assigned() == [] and d.runner.dialed == []


async def test_the_agent_hanging_up_before_the_customer_answers_cancels_it(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = sipp_factory("uas_ring_until_cancel.xml", timeout=60, calls=1)
    async with desk(tmp_path, "preview", customers, baresip_factory, leads=1) as d:
        call_id = await start_call(d, "preview")
        await d.phone.wait_event("CALL_ESTABLISHED", timeout=10)
        await d.seen.first(CallStarted, {call_id}, within=5)
        await d.post("hangup")  # the agent gives up on the ringing customer
        await d.seen.first(CallEnded, {call_id}, within=10)
        await d.until_state(AgentState.READY, 5)
        rows = await cdr_rows(d.api)
        states = await lead_states(d.api)
    [row] = rows
    assert (row["call_id"], row["agent"], row["outcome"], row["talk_ms"], row["hangup_by"]) == (
        call_id,
        "a1",
        "cancelled",
        0,
        "agent",
    )
    assert list(states.values()) == [LeadState.QUEUED.value]
    assert (await customers.wait(10)).ok


async def test_the_agent_giving_up_while_the_desk_phone_rings_dials_nobody(
    tmp_path: Path, sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    customers = sipp_factory("uas_answer.xml", timeout=30, calls=1)
    async with desk(tmp_path, "manual", customers, baresip_factory, auto_answer=False) as d:
        call_id = await start_call(d, "manual")
        await d.phone.wait_event("CALL_INCOMING", timeout=10)
        await d.post("hangup")  # from the desk, before picking the phone up
        await d.seen.first(CallEnded, {call_id}, within=10)
        await d.phone.wait_event("CALL_CLOSED", timeout=10)  # the ring was cancelled
        await d.until_state(AgentState.READY, 5)
        rows = await cdr_rows(d.api)
    assert not customer_started(d, call_id)
    [row] = rows
    assert (row["call_id"], row["outcome"], row["hangup_by"], row["mode"]) == (
        call_id,
        "cancelled",
        "agent",
        "manual",
    )
