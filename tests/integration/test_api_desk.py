"""An agent's day on the HTTP desk, against a real floor on loopback.

The floor serves the API with uvicorn in its own loop; a simulated desk phone
registers and auto-answers the persistent call of sign-in; a simulated
customer answers the progressive campaign's call. Through the API the agent
signs in, goes ready, sees the call with the lead card and the full number,
hangs up, sets the result, and the quota moves; the live stream (SSE) tells
the page about each desk change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import settled

from cdr.effective import DEFAULT_RULE, EffectiveRule
from dialer.agents.state import AgentPolicy
from dialer.app import wall_clock
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import LeadState, RetryRules
from dialer.campaigns.windows import CallingWindows
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    CdrConfig,
    Config,
    DatabaseConfig,
    DispositionConfig,
    HttpConfig,
    MediaConfig,
    MetricsConfig,
    PhoneConfig,
    SipConfig,
    dispositions_of,
)
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.dialing.setup import retry_rules
from dialer.floor import Floor, running_floor
from dialer.leads.csv_import import import_leads
from dialer.sim.line import AnswerPlan, SimLine
from dialer.sip.registration import RegistrationClient, RegistrationTarget
from dialer.store.leads import LeadStore

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
EXTENSION, PHONE_PASSWORD = "1001", "desk-phone-1001"
# The simulated customer is a tone: judged on talk time alone, not on who answered.
QUICK_RULE = EffectiveRule(name="quick", version=1, min_talk_s=0.5, live_person_required=False)
LEADS_CSV = "电话,姓名,城市\r\n138 1234 5678,王芳,杭州\r\n".encode()


def config_for(tmp: Path) -> Config:
    config = Config(
        sip=SipConfig(bind_host=LOOPBACK, udp_port=0, tcp_port=0),
        phones=(PhoneConfig(EXTENSION, PHONE_PASSWORD),),
        agents=(
            AgentConfig("a1", EXTENSION, team="t1", start_date=date.today() - timedelta(days=90)),
        ),
        campaigns=(
            CampaignConfig(
                id="c1",
                mode="progressive",
                agents=("a1",),
                trunks=("sim",),
                effective_rule=QUICK_RULE.name,
            ),
        ),
        http=HttpConfig(bind_host=LOOPBACK, port=0),
        metrics=MetricsConfig(bind_host=LOOPBACK, port=0),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'dialer.db'}"),
        media=MediaConfig(recordings_dir=str(tmp / "recordings")),
        effective_rules=(DEFAULT_RULE, QUICK_RULE),
        cdr=CdrConfig(default_effective_rule=QUICK_RULE.name),
    )
    return dataclasses.replace(config, service=dataclasses.replace(config.service, data_dir=tmp))


@contextlib.asynccontextmanager
async def desk_phone(floor: Floor) -> AsyncIterator[SimLine]:
    """The agent's desk phone: registers with digest credentials, answers at once."""
    loop = asyncio.get_running_loop()
    phone = SimLine("desk", lambda call: AnswerPlan(200, ring_s=0.05), tone_hz=440.0)
    await phone.start(wall_clock())
    assert phone.endpoint is not None and phone.adapter is not None
    host, port = phone.address
    realm = floor.config.sip.realm
    client = RegistrationClient(
        RegistrationTarget(
            registrar_uri=f"sip:{realm}",
            aor=f"sip:{EXTENSION}@{realm}",
            contact=f"sip:{EXTENSION}@{host}:{port}",
            via_host=host,
            via_port=port,
            username=EXTENSION,
            password=PHONE_PASSWORD,
            expires=300,
        ),
        random.Random(1),
    )
    phone.endpoint.add_registration(client, floor.service.sip_address, loop.time())
    phone.adapter.flush()
    registrar = floor.service.endpoint.registrar
    assert registrar is not None
    changed = asyncio.Event()
    floor.service.subscribe(lambda event: changed.set())  # PhoneRegistered, among others
    async with asyncio.timeout(5):
        while not registrar.lookup(EXTENSION, loop.time()):
            changed.clear()
            await changed.wait()
    try:
        yield phone
    finally:
        await phone.close()


class Stream:
    """The SSE stream as a page's EventSource reads it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def read(self, client: httpx.AsyncClient, token: str) -> None:
        async with client.stream("GET", "/api/v1/events", params={"token": token}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in answer.aiter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line.removeprefix("data: "))))
                    self.changed.set()

    async def wait(
        self, name: str, check: Callable[[dict[str, Any]], bool], *, after: int = 0
    ) -> dict[str, Any]:
        """The first ``name`` event (from index ``after`` on) that passes ``check``."""
        async with asyncio.timeout(10):
            while True:
                for got, data in self.events[after:]:
                    if got == name and check(data):
                        return data
                self.changed.clear()
                await self.changed.wait()


def item(quota: dict[str, Any], metric: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [i for i in quota["items"] if i["metric"] == metric]
    assert len(found) == 1, quota
    return found[0]


@contextlib.asynccontextmanager
async def campaign(
    floor: Floor,
    csv: bytes,
    mode: DialMode,
    policy: AgentPolicy,
    *,
    rules: RetryRules | None = None,
    dispositions: tuple[str, ...] | None = None,
) -> AsyncIterator[CampaignRunner]:
    """Campaign c1 over the floor, its leads imported from ``csv``, dialing simulated customers."""
    customers = SimLine("customers", lambda call: AnswerPlan(200, ring_s=0.2, talk_s=60))
    await customers.start(wall_clock())
    store = LeadStore(floor.database)
    now = datetime.now(UTC)
    await store.create_campaign("c1", "Desk test", mode.value, "UTC", now=now)
    await store.import_report("c1", import_leads(csv), now=now)
    runner = CampaignRunner(
        floor.service.calls,
        campaign_id="c1",
        hours=CampaignHours(CallingWindows.parse({"mon-sun": ["00:00-24:00"]}), "UTC"),
        rules=rules or RetryRules(),
        dispositions=dispositions,
        route=lambda number: Dial(
            f"sip:{number.lstrip('+')}@{customers.address[0]}", customers.address
        ),
        ring_timeout_s=15.0,
        store=store,
        mode=mode,
        policy=policy,
    )
    await runner.load()
    floor.add_runner(runner)
    stop = asyncio.Event()
    dialing = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await dialing
        await runner.close()
        await customers.close()


async def signed_in_agent(floor: Floor, client: httpx.AsyncClient) -> str:
    """The agent user a1, signed in: its token (also the client's bearer)."""
    assert floor.api is not None
    await floor.api.users.create_user(
        username="a1", password="demo", role="agent", agent_id="a1", locale="en"
    )
    signed = await client.post("/api/v1/session", json={"username": "a1", "password": "demo"})
    token: str = signed.json()["token"]
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {token}"
    return token


async def test_an_agent_takes_a_call_on_the_http_desk(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    progressive = AgentPolicy(wrap_up_limit_s=30.0)
    async with (
        running_floor(config) as floor,
        desk_phone(floor),
        campaign(floor, LEADS_CSV, DialMode.PROGRESSIVE, progressive),
    ):
        assert floor.api is not None and floor.http_port is not None
        await floor.api.users.create_user(username="boss", password="demo", role="supervisor")
        base = f"http://{LOOPBACK}:{floor.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            boss = await client.post(
                "/api/v1/session", json={"username": "boss", "password": "demo"}
            )
            token = await signed_in_agent(floor, client)
            live, board = Stream(), Stream()
            async with httpx.AsyncClient(base_url=base, timeout=None) as sse:
                reading = asyncio.create_task(live.read(sse, token))
                watching = asyncio.create_task(board.read(sse, boss.json()["token"]))
                first = await live.wait("desk", lambda d: True)
                assert first["state"] == "signed_out" and first["campaign"] is None
                start = await live.wait("quota", lambda d: True)
                assert item(start, "effective_calls")["done"] == 0

                # The supervisor holds the campaign: the ready agent gets no call until resumed.
                boss_auth = {"Authorization": f"Bearer {boss.json()['token']}"}
                held = await client.post("/api/v1/campaigns/c1/pause", headers=boss_auth)
                assert held.status_code == 200, held.text
                assert held.json()["state"] == "paused"
                desk = (await client.post("/api/v1/desk/sign-in", json={})).json()
                assert desk["campaign"] == "c1"
                assert [r["code"] for r in desk["pause_reasons"]] == [
                    "break",
                    "toilet",
                    "training",
                    "meeting",
                ]
                paused = await client.post(
                    "/api/v1/desk/state", json={"state": "paused", "reason": "coffee"}
                )
                assert paused.status_code == 422
                assert paused.json()["error"]["message"] == (
                    "Choose a pause reason: break, toilet, training, meeting."
                )
                ready = await client.post("/api/v1/desk/state", json={"state": "ready"})
                assert ready.status_code == 200, ready.text
                await asyncio.sleep(1.5)
                [runner] = floor.runners
                assert runner.dialed == []
                assert (await client.get("/api/v1/desk")).json()["state"] == "ready"
                listed = await client.get("/api/v1/campaigns", headers=boss_auth)
                assert [c["state"] for c in listed.json()] == ["paused"]
                resumed = await client.post("/api/v1/campaigns/c1/resume", headers=boss_auth)
                assert resumed.json()["state"] == "running"

                pushed = await live.wait("desk", lambda d: d["state"] == "talking")
                talking = (await client.get("/api/v1/desk")).json()
                assert talking == pushed  # the stream and the page's GET tell the same
                call = talking["current_call"]
                assert call["number"] == "+8613812345678"  # the agent's own call: unmasked
                lead = call["lead"]
                assert (lead["name"], lead["phone"]) == ("王芳", "+8613812345678")
                assert lead["fields"] == {"city": "杭州"}  # 城市, by its canonical name
                assert not talking["awaiting_disposition"]
                bridged = ("call", {"call_id": call["call_id"], "kind": "call_bridged"})
                assert bridged in live.events
                # The supervisor's wallboard stream sees the agent talking too.
                wallboard = await board.wait(
                    "floor", lambda d: [a["state"] for a in d["agents"]] == ["talking"]
                )
                assert wallboard["agents"][0]["agent_id"] == "a1"
                assert bridged in board.events

                await asyncio.sleep(0.8)  # effective: over the rule's half second of talk
                hung_up = (await client.post("/api/v1/desk/hangup")).json()
                assert hung_up["current_call"]["call_id"] == call["call_id"]
                wrap_up = await live.wait("desk", lambda d: d["state"] == "wrap_up")
                assert wrap_up["awaiting_disposition"] is True
                again = await client.post("/api/v1/desk/hangup")
                assert again.status_code == 409
                assert again.json()["error"]["details"] == ["agent a1 has no call to hang up"]

                no_time = await client.post("/api/v1/desk/disposition", json={"code": "callback"})
                assert no_time.status_code == 422
                too_long = await client.post(
                    "/api/v1/desk/disposition", json={"code": "sale", "note": "x" * 1001}
                )
                assert too_long.status_code == 422
                assert too_long.json()["error"]["details"][0].startswith("note: ")
                note = "客户要求下周再联系"
                done = await client.post(
                    "/api/v1/desk/disposition", json={"code": "sale", "note": note}
                )
                assert done.status_code == 200, done.text
                assert done.json()["state"] == "ready"
                assert done.json()["current_call"] is None

                moved = await live.wait("quota", lambda d: item(d, "effective_calls")["done"] == 1)
                assert moved["agent_id"] == "a1"
                quota = (await client.get("/api/v1/desk/quota")).json()
                assert item(quota, "effective_calls")["done"] == 1
                effective = item(quota, "effective_calls")
                assert effective["shortfall"] == max(0, effective["target"] - 1)

                out = (await client.post("/api/v1/desk/sign-out")).json()
                assert out["state"] == "signed_out"
                await live.wait("desk", lambda d: d["state"] == "signed_out")
                await settled(floor)
                cdr = await floor.api.cdrs.get(call["call_id"])
                assert cdr is not None
                assert (cdr.disposition, cdr.disposition_note) == ("sale", note)
                for task in (reading, watching):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


TWO_LEADS_CSV = "电话,姓名\r\n13812345678,王芳\r\n13987654321,李雷\r\n".encode()


async def test_preview_skip_accept_and_a_manual_dial_on_the_http_desk(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    per_call = AgentPolicy(wrap_up_limit_s=30.0, persistent_connection=False)
    async with (
        running_floor(config) as floor,
        desk_phone(floor),
        campaign(floor, TWO_LEADS_CSV, DialMode.PREVIEW, per_call),
    ):
        assert floor.api is not None and floor.http_port is not None
        base = f"http://{LOOPBACK}:{floor.http_port}"
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as client,
            httpx.AsyncClient(base_url=base, timeout=None) as sse,
        ):
            token = await signed_in_agent(floor, client)
            live = Stream()
            reading = asyncio.create_task(live.read(sse, token))
            signed = (await client.post("/api/v1/desk/sign-in")).json()
            assert signed["state"] == "ready"  # sign-in asks for ready; no leg to wait for
            paused = await client.post(
                "/api/v1/desk/state", json={"state": "paused", "reason": "break"}
            )
            assert (paused.json()["state"], paused.json()["reason"]) == ("paused", "break")
            nothing = await client.post("/api/v1/desk/preview/next")
            assert nothing.status_code == 409
            assert nothing.json()["error"]["details"] == ["agent a1 is paused, not ready"]
            assert (await client.post("/api/v1/desk/state", json={"state": "ready"})).is_success

            shown = (await client.post("/api/v1/desk/preview/next")).json()
            first = shown["preview"]
            assert shown["state"] == "reserved" and shown["current_call"] is None
            for blank in ({"reason": ""}, {"reason": "  "}, {}):
                no_reason = await client.post("/api/v1/desk/preview/skip", json=blank)
                assert no_reason.status_code == 422, blank
                refused = no_reason.json()["error"]
                assert refused["message"] == "Say why you skip this customer."
                assert refused["details"] == ["reason: empty"]
            assert (await client.get("/api/v1/desk")).json()["preview"] == first  # still held
            skipped = await client.post("/api/v1/desk/preview/skip", json={"reason": "not now"})
            assert skipped.json()["state"] == "ready" and skipped.json()["preview"] is None
            second = (await client.post("/api/v1/desk/preview/next")).json()["preview"]
            assert {first["name"], second["name"]} == {"王芳", "李雷"}  # the skip moved on

            accepted = await client.post("/api/v1/desk/preview/accept")
            assert accepted.status_code == 200, accepted.text
            talking = await live.wait("desk", lambda d: d["state"] == "talking")
            assert talking["current_call"]["lead"]["name"] == second["name"]
            await client.post("/api/v1/desk/hangup")
            await live.wait("desk", lambda d: d["awaiting_disposition"])
            at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            naive = await client.post(
                "/api/v1/desk/disposition",
                json={"code": "callback", "callback_at": at.removesuffix("+00:00")},
            )
            assert naive.status_code == 422
            callback = await client.post(
                "/api/v1/desk/disposition", json={"code": "callback", "callback_at": at}
            )
            assert callback.json()["state"] == "ready", callback.text

            mark = len(live.events)  # what follows is the manual call's
            bad = await client.post("/api/v1/desk/dial", json={"number": "12ab"})
            assert bad.status_code == 422
            assert bad.json()["error"]["message"] == "This is not a number that can be dialed."
            dialed = await client.post("/api/v1/desk/dial", json={"number": "139 0000 1111"})
            assert dialed.status_code == 200, dialed.text
            manual = await live.wait(
                "desk",
                lambda d: (
                    d["state"] == "talking" and d["current_call"]["number"] == "+8613900001111"
                ),
                after=mark,
            )
            assert manual["current_call"]["lead"] is None  # a number, not a lead
            # Asked during the call, the pause applies once the call's result is in.
            asked = await client.post(
                "/api/v1/desk/state", json={"state": "paused", "reason": "toilet"}
            )
            assert asked.status_code == 200, asked.text
            await client.post("/api/v1/desk/hangup")
            after = await live.wait("desk", lambda d: d["state"] == "wrap_up", after=mark)
            assert after["awaiting_disposition"] is True  # a manual call has a result too
            no_lead = await client.post(
                "/api/v1/desk/disposition", json={"code": "callback", "callback_at": at}
            )
            assert no_lead.status_code == 409
            assert "no lead to call back" in no_lead.json()["error"]["details"][0]
            result = await client.post(
                "/api/v1/desk/disposition", json={"code": "not_interested", "note": "只是问问"}
            )
            assert result.status_code == 200, result.text
            assert (result.json()["state"], result.json()["reason"]) == ("paused", "toilet")
            assert (await client.post("/api/v1/desk/state", json={"state": "ready"})).is_success
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def test_the_desk_offers_the_campaigns_own_results_and_each_does_what_it_says(
    tmp_path: Path,
) -> None:
    results = (
        DispositionConfig("sale", "Sale"),
        DispositionConfig("visit", "到店预约", effect="callback"),
        DispositionConfig("trial", "Free trial"),
        DispositionConfig("complaint", "投诉", effect="dnc"),
    )
    base_config = config_for(tmp_path)
    [c1] = base_config.campaigns
    c1 = dataclasses.replace(c1, mode="preview", dispositions=("visit", "sale", "complaint"))
    config = dataclasses.replace(
        base_config,
        agent_policy=dataclasses.replace(base_config.agent_policy, dispositions=results),
        campaigns=(c1,),
    )
    offered = dispositions_of(config, c1)
    per_call = AgentPolicy(wrap_up_limit_s=30.0, persistent_connection=False)
    async with (
        running_floor(config) as floor,
        desk_phone(floor),
        campaign(
            floor,
            LEADS_CSV,
            DialMode.PREVIEW,
            per_call,
            rules=retry_rules(c1, offered),
            dispositions=tuple(d.code for d in offered),
        ) as runner,
    ):
        assert floor.api is not None and floor.http_port is not None
        base = f"http://{LOOPBACK}:{floor.http_port}"
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as client,
            httpx.AsyncClient(base_url=base, timeout=None) as sse,
        ):
            live = Stream()
            reading = asyncio.create_task(live.read(sse, await signed_in_agent(floor, client)))
            await client.post("/api/v1/desk/sign-in")
            lead = (await client.post("/api/v1/desk/preview/next")).json()["preview"]
            assert (await client.post("/api/v1/desk/preview/accept")).is_success
            await live.wait("desk", lambda d: d["state"] == "talking")
            await client.post("/api/v1/desk/hangup")
            desk = await live.wait("desk", lambda d: d["awaiting_disposition"])
            # In the campaign's order; the catalogue's text where it has one (the agent reads
            # English), the floor's own label where it has none; "trial" is not this campaign's.
            assert desk["dispositions"] == [
                {"code": "visit", "label": "到店预约", "callback": True},
                {"code": "sale", "label": "Sale", "callback": False},
                {"code": "complaint", "label": "投诉", "callback": False},
            ]
            other = await client.post("/api/v1/desk/disposition", json={"code": "trial"})
            assert other.status_code == 422
            assert other.json()["error"]["message"] == "Choose a call result: 到店预约, Sale, 投诉."
            no_time = await client.post("/api/v1/desk/disposition", json={"code": "visit"})
            assert no_time.status_code == 422  # a callback effect asks for the agreed time
            assert no_time.json()["error"]["message"].startswith("A callback needs a date")
            # The same rule holds for the MQTT desk, which goes to the runner directly.
            with pytest.raises(ValueError, match="'trial' is not one of campaign c1's"):
                await runner.disposition("a1", "trial")
            done = await client.post("/api/v1/desk/disposition", json={"code": "complaint"})
            assert done.status_code == 200, done.text
            assert done.json()["state"] == "ready"
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
    assert runner.leads[lead["id"]].state is LeadState.DNC  # "complaint" is do-not-call here
