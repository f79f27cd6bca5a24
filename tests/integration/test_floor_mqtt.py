"""The whole floor on MQTT: an agent's desk signs in, pauses and goes ready over MQTT,
takes a real call, and the wallboard sees the call's events and the agent's quota move.

A real mosquitto; the agent's desk phone is baresip registered to the
service, the customer a SIPp UAS; the "desk" and "wallboard" are aiomqtt
clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from audio import tone, write_ulaw, write_wav
from mqtt_support import Inbox, subscriber
from peers import Baresip, Sipp
from peers.mosquitto import Mosquitto
from peers.ports import LOOPBACK
from support import (
    AGENT_HZ,
    CUSTOMER_HZ,
    EXTENSION,
    floor_config,
    lead,
    open_now,
    registered_baresip,
)

from dialer.agents.state import AgentPolicy
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import RetryRules
from dialer.config import AgentConfig, CampaignConfig, MqttConfig
from dialer.dialing.runner import CampaignRunner
from dialer.floor import running_floor

pytestmark = pytest.mark.integration

PREFIX = "dialer/node-1"
TOKEN = "desk-token-a1"


async def command(desk: aiomqtt.Client, body: dict[str, Any]) -> None:
    envelope = {"schema": 1, "agent": "a1", "token": TOKEN, **body}
    await desk.publish(f"{PREFIX}/agents/a1/commands", json.dumps(envelope), qos=1)


async def test_an_agent_works_a_call_over_mqtt_and_the_wallboard_follows(
    tmp_path: Path, sipp_factory: Callable[..., Sipp], baresip_factory: Callable[..., Baresip]
) -> None:
    customer = sipp_factory(
        "uas_answer_hangup.xml",
        rtp_file=write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 5)),
        duration_ms=2000,
        timeout=60,
    )
    await customer.start()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"a1": TOKEN}))
    async with Mosquitto(persistence=False) as broker:
        config = dataclasses.replace(
            floor_config(tmp_path),
            mqtt=MqttConfig(host=broker.host, port=broker.port, tokens_file=str(tokens)),
            agents=(AgentConfig("a1", EXTENSION, team="t1"),),
            campaigns=(CampaignConfig(id="c1", mode="progressive", agents=("a1",)),),
        )
        async with (
            running_floor(config) as floor,
            subscriber(broker, f"{PREFIX}/#", username=None, password=None) as wall,
        ):
            phone, _ = await registered_baresip(
                floor.service, baresip_factory, write_wav(tmp_path / "a.wav", tone(AGENT_HZ, 30))
            )
            runner = CampaignRunner(
                floor.service.calls,
                campaign_id="c1",
                hours=CampaignHours(open_now(datetime.now(UTC)), "UTC"),
                rules=RetryRules(),
                route=lambda number: Dial(
                    f"sip:{number.lstrip('+')}@{customer.address}", (LOOPBACK, customer.port)
                ),
                ring_timeout_s=15.0,
                policy=AgentPolicy(wrap_up_limit_s=10.0),
            )
            floor.add_runner(runner)
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop))
            feed = floor.feed
            assert feed is not None
            await feed.wait_until(lambda f: f.connected, 10)
            async with aiomqtt.Client(broker.host, broker.port) as desk:
                # Signed in and paused for a break, over MQTT.
                await command(desk, {"id": "r1", "command": "sign_in"})
                [signed] = await wall.wait_for(f"{PREFIX}/agents/a1/replies", 1)
                assert signed.body["ok"] is True, signed.body
                await command(desk, {"id": "r2", "command": "pause", "reason": "break"})
                replies = await wall.wait_for(f"{PREFIX}/agents/a1/replies", 2)
                assert replies[1].body["ok"] is True, replies[1].body
                assert replies[1].body["data"]["state"] == "paused"
                # Someone else's token, for a1's session: refused with a reason.
                await desk.publish(
                    f"{PREFIX}/agents/a1/commands",
                    json.dumps({"schema": 1, "id": "r3", "agent": "a1", "token": "guess",
                                "command": "ready"}),
                    qos=1,
                )  # fmt: skip
                replies = await wall.wait_for(f"{PREFIX}/agents/a1/replies", 3)
                assert (replies[2].body["ok"], replies[2].body["code"]) == (
                    False,
                    "bad_credentials",
                )
                assert runner.agents["a1"].agent.state.value == "paused"  # not acted upon
                # Ready: the lead is dialed, bridged, ended; the agent sets the result.
                runner.add_leads([lead("L1", "+8613800000001")])
                await command(desk, {"id": "r4", "command": "ready"})
                states = f"{PREFIX}/agents/a1/state"
                await wall.wait_for(states, 1)
                wrap = await _wait_state(wall, states, "wrap_up")
                assert wrap["state"] == "wrap_up"
                await command(desk, {"id": "r5", "command": "disposition", "code": "sale"})
                replies = await wall.wait_for(f"{PREFIX}/agents/a1/replies", 5)
                assert replies[4].body["ok"] is True, replies[4].body
                quota = await wall.wait_for(f"{PREFIX}/agents/a1/quota", 1)
                assert quota[-1].body["agent"] == "a1"
                assert quota[-1].body["counts"]["dials"] >= 1
            stop.set()
            await task
            by_call: dict[str, list[str]] = {}
            for message in wall.on(f"{PREFIX}/calls/+/events"):
                by_call.setdefault(message.topic, []).append(message.body["kind"])
            # The customer call (the agent's persistent leg has events of its own).
            [kinds] = [k for k in by_call.values() if "call_assigned" in k]
            assert kinds[0] == "call_assigned"
            assert kinds.index("call_bridged") < kinds.index("call_ended")
            assert "disposition_set" in kinds
            for desk_floor in runner.agents.values():
                if desk_floor.leg is not None:
                    floor.service.calls.disconnect_agent(desk_floor.leg)
            await phone.stop()


async def _wait_state(wall: Inbox, topic: str, state: str) -> dict[str, Any]:
    async with asyncio.timeout(40):
        while True:
            for message in wall.on(topic):
                if message.body.get("state") == state:
                    return dict(message.body)
            count = len(wall.on(topic))
            await wall.wait_for(topic, count + 1, timeout=40)
