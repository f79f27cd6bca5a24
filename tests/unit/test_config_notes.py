"""Codes the quota policy or an effective rule names that no call result defines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cdr.effective import EffectiveRule
from dialer.cli import main
from dialer.config import DEFAULT_DISPOSITIONS, Config, DispositionConfig, QuotaConfig
from dialer.config_notes import notes

SHIPPED_POLICY = Path(__file__).parents[2] / "deploy" / "quota" / "default-policy.toml"


def test_the_shipped_policy_names_one_code_the_shipped_results_lack() -> None:
    # follow_up_worthy = ["follow_up", "callback", "interested", "sale"]
    assert notes(Config()) == [
        f"quota policy {SHIPPED_POLICY}: dispositions.follow_up_worthy names 'follow_up', which "
        "no agent_policy.dispositions defines: no agent can set it"
    ]


def test_a_floor_that_defines_every_named_code_gets_no_note() -> None:
    results = (*DEFAULT_DISPOSITIONS, DispositionConfig("follow_up", "Follow up"))
    config = Config()
    config = dataclasses.replace(
        config, agent_policy=dataclasses.replace(config.agent_policy, dispositions=results)
    )
    assert notes(config) == []


def test_an_effective_rule_excluding_an_unknown_code_and_a_custom_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    text = SHIPPED_POLICY.read_text(encoding="utf-8")
    policy.write_text(
        text.replace(
            'follow_up_worthy = ["follow_up", "callback", "interested", "sale"]',
            'follow_up_worthy = ["sale"]',
        ).replace("customer_records = []", 'customer_records = ["sale", "visit"]'),
        encoding="utf-8",
    )
    rule = EffectiveRule(name="strict", version=1, excluded_dispositions=frozenset({"spam"}))
    config = dataclasses.replace(
        Config(), quota=QuotaConfig(policy_path=str(policy)), effective_rules=(rule,)
    )
    assert notes(config) == [
        f"quota policy {policy}: dispositions.customer_records names 'visit', which no "
        "agent_policy.dispositions defines: no agent can set it",
        "effective_rules.strict.excluded_dispositions names 'spam', which no "
        "agent_policy.dispositions defines: no agent can set it",
    ]


def test_check_config_says_the_notes_and_still_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    out, err = capsys.readouterr()
    assert out == "defaults: ok\n"
    assert err.startswith("note: quota policy ") and "'follow_up'" in err
