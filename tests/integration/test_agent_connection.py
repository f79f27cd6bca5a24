"""A persistent agent connection: the desk phone is called once and customers are
bridged into that leg the moment they answer, one after another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from audio import power_at, read_stereo, tone, write_ulaw
from peers import Sipp
from peers.ports import LOOPBACK
from support import AGENT_HZ, CUSTOMER_HZ, Seen, service_config

from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.events import CallAnswered, CallBridged, CallEnded, RecordingClosed

pytestmark = pytest.mark.integration


async def test_customers_are_bridged_into_the_nailed_up_agent_leg_within_milliseconds(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    agent_audio = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 30))
    customer_audio = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    phone = sipp_factory("uas_answer.xml", rtp_file=agent_audio)
    # Two customers in turn, each answering and hanging up after 1.5 s of talk.
    customers = sipp_factory(
        "uas_answer_hangup.xml", rtp_file=customer_audio, calls=2, duration_ms=1500
    )
    await phone.start()
    await customers.start()
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        calls = service.calls
        leg = await calls.connect_agent(
            "a1", Dial(f"sip:a1@{phone.address}", (LOOPBACK, phone.port))
        )
        await seen.first(CallAnswered, {leg}, within=10)
        customer = Dial(f"sip:13800138000@{customers.address}", (LOOPBACK, customers.port))
        delays = []
        for _ in range(2):
            call_id = await calls.call_for_agent(leg, customer)
            with pytest.raises(ValueError, match="is already in call"):
                await calls.call_for_agent(leg, customer)
            answered = await seen.first(CallAnswered, {call_id}, within=10)
            bridged = await seen.first(CallBridged, {call_id}, within=10)
            assert bridged.agent_leg == leg
            delays.append(bridged.mono - answered.mono)
            await seen.first(CallEnded, {call_id}, within=10)
            closed = await seen.first(RecordingClosed, {call_id}, within=10)
            left, right, _ = await asyncio.to_thread(read_stereo, Path(closed.path))
            middle = slice(len(left) // 4, 3 * len(left) // 4)
            assert power_at(left[middle], AGENT_HZ) > 20 * power_at(left[middle], CUSTOMER_HZ)
            assert power_at(right[middle], CUSTOMER_HZ) > 20 * power_at(right[middle], AGENT_HZ)
            # The agent's leg stayed up: no BYE to the phone between customers.
            assert leg in service.endpoint.calls
            assert calls.agent_legs[leg].call_id is None
        calls.disconnect_agent(leg)
        agent_end = await seen.first(CallEnded, {leg}, within=10)
    # Bridged on the customer's answer, not after a ring to the agent.
    assert max(delays) < 0.05, delays
    assert agent_end.hangup_by is not None and agent_end.hangup_by.value == "local"
    assert leg not in service.calls.agent_legs
    assert (await customers.wait(10)).ok
    assert (await phone.wait(10)).ok
