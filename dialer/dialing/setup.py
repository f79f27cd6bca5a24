"""From the validated configuration to the dialing objects: trunk pool, rules, runners."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cdr.store import CdrStore
from dialer.agents.state import AgentPolicy, PauseReason
from dialer.calls.manager import CallManager
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import RetryRules
from dialer.campaigns.trunks import TrunkPool, TrunkSpec
from dialer.config import (
    DEFAULT_DISPOSITIONS,
    CampaignConfig,
    Config,
    DispositionConfig,
    dispositions_of,
)
from dialer.dialing.pacing import ROLLING_DAYS, PacingSettings
from dialer.dialing.runner import CampaignRunner, DialMode, TrunkAddress
from dialer.media.wav import read_prompt
from dialer.store.leads import LeadStore

# What an abandoned customer hears (Mandarin, about 3.4 s): "sorry, our agents are busy,
# we will call you back shortly".
DEFAULT_ABANDON_MESSAGE = Path(__file__).resolve().parents[2] / "deploy/prompts/abandon-zh-CN.wav"


def trunk_pool(config: Config, names: tuple[str, ...] | None = None) -> TrunkPool:
    """The pool of the named trunks (all of them by default), with their routing rules."""
    wanted = [t for t in config.trunks if names is None or t.name in names]
    return TrunkPool(
        TrunkSpec.from_config(
            trunk,
            priority=trunk.priority,
            prefixes_allowed=trunk.prefixes_allowed,
            strip_country_code=trunk.strip_country_code,
            caller_ids=trunk.caller_ids or None,
        )
        for trunk in wanted
    )


def trunk_addresses(config: Config) -> dict[str, TrunkAddress]:
    return {t.name: TrunkAddress(t.host, t.port, t.username, t.password) for t in config.trunks}


def retry_rules(
    campaign: CampaignConfig, dispositions: Sequence[DispositionConfig] = DEFAULT_DISPOSITIONS
) -> RetryRules:
    return RetryRules(
        max_attempts=campaign.max_attempts,
        busy_delay=timedelta(minutes=campaign.busy_retry_minutes),
        no_answer_delay=timedelta(minutes=campaign.no_answer_retry_minutes),
        unavailable_delay=timedelta(minutes=campaign.unavailable_retry_minutes),
        callback_dispositions=frozenset(d.code for d in dispositions if d.effect == "callback"),
        dnc_dispositions=frozenset(d.code for d in dispositions if d.effect == "dnc"),
    )


def agent_policy(config: Config, *, persistent_connection: bool) -> AgentPolicy:
    policy = config.agent_policy
    return AgentPolicy(
        pause_reasons=tuple(PauseReason(r.code, r.label, r.billable) for r in policy.pause_reasons),
        wrap_up_limit_s=policy.wrap_up_limit_s,
        persistent_connection=persistent_connection,
    )


_MODES = {
    "manual": DialMode.MANUAL,
    "preview": DialMode.PREVIEW,
    "progressive": DialMode.PROGRESSIVE,
    "predictive": DialMode.PREDICTIVE,
}


def pacing_settings(campaign: CampaignConfig) -> PacingSettings:
    return PacingSettings(
        abandon_cap=campaign.abandon_cap,
        max_dial_level=campaign.max_dial_level,
        connect_within_s=campaign.connect_within_s,
        lockout_minutes=campaign.abandon_lockout_minutes,
    )


def abandon_message(campaign: CampaignConfig) -> bytes:
    return read_prompt(
        Path(campaign.abandon_message) if campaign.abandon_message else DEFAULT_ABANDON_MESSAGE
    )


def campaign_runner(
    calls: CallManager,
    config: Config,
    campaign: CampaignConfig,
    *,
    store: LeadStore | None = None,
) -> CampaignRunner:
    """A runner for one configured campaign over its own trunks (leads claimed in ``store``)."""
    mode = _MODES[campaign.mode]
    predictive = mode is DialMode.PREDICTIVE
    dispositions = dispositions_of(config, campaign)
    return CampaignRunner(
        calls,
        campaign_id=campaign.id,
        hours=CampaignHours(campaign.windows, campaign.timezone),
        rules=retry_rules(campaign, dispositions),
        dispositions=tuple(d.code for d in dispositions),
        trunks=trunk_pool(config, campaign.trunks),
        trunk_addresses={
            name: address
            for name, address in trunk_addresses(config).items()
            if name in campaign.trunks
        },
        ring_timeout_s=campaign.ring_timeout_s,
        mode=mode,
        record=campaign.record,
        caller_id=campaign.caller_id,
        record_early_media=campaign.record_early_media,
        # Manual and preview ring the desk phone per call; the others keep it connected.
        policy=agent_policy(
            config, persistent_connection=mode in (DialMode.PROGRESSIVE, DialMode.PREDICTIVE)
        ),
        screen_early_media=campaign.screen_early_media,
        pacing=pacing_settings(campaign) if predictive else None,
        abandon_message=abandon_message(campaign) if predictive else b"",
        store=store,
        node=config.service.node_name,
    )


DAY_MS = 86_400_000


async def seed_pacing(runner: CampaignRunner, cdrs: CdrStore, now_ms: int) -> int:
    """Start a predictive runner from its campaign's CDRs of the rolling window; how many.

    Without this a restarted node would forget today's abandons and could
    dial past the cap. The window reaches a day further back than the 30
    days, so its first local day is whole in any time zone. Records are
    streamed, not held: a busy campaign has millions of them in 30 days.
    """
    pacing = runner.pacing
    if pacing is None:
        return 0
    seeding = pacing.seeding(ZoneInfo(runner.hours.timezone))
    start = now_ms - (ROLLING_DAYS + 1) * DAY_MS
    async for record in cdrs.search(start, now_ms + 1, campaign=runner.campaign_id):
        seeding.add(record)
    return seeding.finish()
