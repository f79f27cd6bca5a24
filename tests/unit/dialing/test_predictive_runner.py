"""A predictive CampaignRunner refuses to be built for what it could not do, naming every reason.

Predictive dialing needs agents on persistent connections, a ring timeout
the pacing controller accepts, and an abandon message long enough to be
understood. The runner is built over a real service on loopback (no call is
placed). Driving a predictive runner over simulated lines is left to the
integration tier: the unit tier has no harness that answers calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dialer.agents.state import AgentPolicy
from dialer.app import Service, running_service
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import RetryRules
from dialer.config import (
    DEFAULT_WINDOWS,
    AgentConfig,
    CampaignConfig,
    Config,
    PhoneConfig,
    SipConfig,
    TrunkConfig,
)
from dialer.dialing.pacing import PacingSettings
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.dialing.setup import campaign_runner, trunk_addresses, trunk_pool
from dialer.media.wav import read_prompt

HALF_SECOND = 8000  # octets: 0.5 s of 8 kHz mono 16-bit audio


def config(*campaigns: CampaignConfig) -> Config:
    return Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "pw-1001"),),
        trunks=(TrunkConfig("pbx", "127.0.0.1", 5080),),
        agents=(AgentConfig("a1", "1001"),),
        campaigns=campaigns,
    )


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    async with running_service(config()) as running:
        yield running


def runner(service: Service, **options: Any) -> CampaignRunner:
    cfg = config()
    settings: dict[str, Any] = {
        "campaign_id": "c1",
        "hours": CampaignHours(DEFAULT_WINDOWS, "Asia/Shanghai"),
        "rules": RetryRules(),
        "trunks": trunk_pool(cfg),
        "trunk_addresses": trunk_addresses(cfg),
        "mode": DialMode.PREDICTIVE,
        "policy": AgentPolicy(persistent_connection=True),
        "abandon_message": bytes(HALF_SECOND),
    }
    settings.update(options)
    return CampaignRunner(service.calls, **settings)


async def test_a_predictive_runner_is_built_with_its_pacing_and_message(service: Service) -> None:
    message = bytes(range(256)) * (HALF_SECOND // 256) + bytes(HALF_SECOND % 256)
    settings = PacingSettings(connect_within_s=1.5, lockout_minutes=60.0)
    built = runner(service, pacing=settings, abandon_message=message)
    assert built.pacing is not None and built.pacing.settings == settings
    assert built.abandon_message == message
    assert built.on_event in service.calls.subscribers


async def test_no_persistent_connection_is_refused(service: Service) -> None:
    with pytest.raises(ValueError) as info:
        runner(service, policy=AgentPolicy(persistent_connection=False))
    assert str(info.value) == (
        "campaign c1: predictive dialing connects customers to agents' persistent connections; "
        "the agent policy has none"
    )


async def test_a_ring_timeout_under_the_pacings_minimum_ring_is_refused(service: Service) -> None:
    with pytest.raises(ValueError) as info:
        runner(service, ring_timeout_s=20.0, pacing=PacingSettings(min_ring_s=25.0))
    assert str(info.value) == "campaign c1: ring_timeout_s 20 is under the pacing's min_ring_s 25"
    built = runner(service, ring_timeout_s=25.0, pacing=PacingSettings(min_ring_s=25.0))
    assert built.ring_timeout_s == 25.0


@pytest.mark.parametrize("octets", [0, 2, HALF_SECOND - 2])
async def test_an_abandon_message_under_half_a_second_is_refused(
    service: Service, octets: int
) -> None:
    with pytest.raises(ValueError) as info:
        runner(service, abandon_message=bytes(octets))
    assert str(info.value) == (
        "campaign c1: a predictive campaign needs its abandon message (8 kHz mono 16-bit audio, "
        f"at least 0.5 s), got {octets} octets"
    )


async def test_every_reason_is_given_at_once_and_nothing_is_left_subscribed(
    service: Service,
) -> None:
    subscribers = list(service.calls.subscribers)
    with pytest.raises(ValueError) as info:
        runner(
            service,
            policy=AgentPolicy(persistent_connection=False),
            ring_timeout_s=16.0,
            pacing=PacingSettings(min_ring_s=20.0),
            abandon_message=b"",
        )
    assert str(info.value) == (
        "campaign c1: predictive dialing connects customers to agents' persistent connections; "
        "the agent policy has none; ring_timeout_s 16 is under the pacing's min_ring_s 20; "
        "a predictive campaign needs its abandon message (8 kHz mono 16-bit audio, at least "
        "0.5 s), got 0 octets"
    )
    assert service.calls.subscribers == subscribers


async def test_the_other_modes_need_no_abandon_message(service: Service) -> None:
    for mode in (DialMode.PROGRESSIVE, DialMode.PREVIEW, DialMode.MANUAL):
        built = runner(service, mode=mode, abandon_message=b"")
        assert built.pacing is None


async def test_a_configured_predictive_campaign_plays_the_shipped_message_by_default(
    service: Service,
) -> None:
    campaign = CampaignConfig(
        "c1", "predictive", trunks=("pbx",), agents=("a1",), connect_within_s=1.0,
        abandon_lockout_minutes=90.0,
    )  # fmt: skip
    built = campaign_runner(service.calls, config(campaign), campaign)
    assert built.mode is DialMode.PREDICTIVE
    assert built.policy.persistent_connection
    assert built.pacing is not None
    assert built.pacing.settings.connect_within_s == 1.0
    assert built.pacing.settings.lockout == timedelta(minutes=90)
    assert built.screen_early_media is True
    shipped = read_prompt(Path(__file__).parents[3] / "deploy/prompts/abandon-zh-CN.wav")
    assert built.abandon_message == shipped
