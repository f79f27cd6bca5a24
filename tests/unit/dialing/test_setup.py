"""The configuration becomes the dialing objects it describes."""

from __future__ import annotations

from datetime import timedelta

from dialer.app import running_service
from dialer.campaigns.trunks import NoRoute, Route
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    Config,
    PhoneConfig,
    SipConfig,
    TrunkConfig,
)
from dialer.dialing.runner import DialMode
from dialer.dialing.setup import campaign_runner, retry_rules, trunk_pool


def config() -> Config:
    return Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "pw-1001"),),
        trunks=(
            TrunkConfig("gsm", "127.0.0.1", 5070, prefixes_allowed=("+861",), priority=0,
                        strip_country_code=True, max_channels=1, caller_ids=("13900000000",)),
            TrunkConfig("pbx", "127.0.0.1", 5080, priority=1, prefix="9"),
        ),
        agents=(AgentConfig("a1", "1001"),),
        campaigns=(
            CampaignConfig("c1", "progressive", trunks=("gsm", "pbx"), agents=("a1",),
                           busy_retry_minutes=45, ring_timeout_s=20.0, record=False),
            CampaignConfig("c2", "preview", trunks=("pbx",), agents=("a1",)),
        ),
    )  # fmt: skip


def test_trunk_pool_follows_priority_prefixes_and_caps() -> None:
    pool = trunk_pool(config())
    first = pool.choose("+8613800138000", 0.0)
    assert first == Route("gsm", "13800138000", "13900000000")
    # The GSM gateway has one channel: the next mobile goes to the PBX, with its prefix.
    second = pool.choose("+8613800138001", 0.0)
    assert isinstance(second, Route) and (second.trunk, second.dial_string) == (
        "pbx",
        "98613800138001",  # rewritten numbers are digits only
    )
    # A foreign number never goes to the GSM gateway.
    third = pool.choose("+14155550100", 0.0)
    assert isinstance(third, Route) and third.trunk == "pbx"
    only_gsm = trunk_pool(config(), ("gsm",))
    only_gsm.choose("+8613800138000", 0.0)
    assert isinstance(only_gsm.choose("+14155550100", 0.0), NoRoute)


def test_retry_rules_come_from_the_campaign() -> None:
    rules = retry_rules(config().campaigns[0])
    assert rules.busy_delay == timedelta(minutes=45)
    assert rules.max_attempts == 3


async def test_a_runner_per_campaign_with_its_mode_trunks_and_recording() -> None:
    cfg = config()
    async with running_service(cfg) as service:
        progressive = campaign_runner(service.calls, cfg, cfg.campaigns[0])
        preview = campaign_runner(service.calls, cfg, cfg.campaigns[1])
    assert (progressive.mode, preview.mode) == (DialMode.PROGRESSIVE, DialMode.PREVIEW)
    assert progressive.policy.persistent_connection
    assert not preview.policy.persistent_connection
    assert progressive.ring_timeout_s == 20.0
    assert progressive.record is False and preview.record is True
    assert progressive.trunks is not None and set(progressive.trunks.health()) == {"gsm", "pbx"}
    assert preview.trunks is not None and set(preview.trunks.health()) == {"pbx"}
    assert set(preview.trunk_addresses) == {"pbx"}
