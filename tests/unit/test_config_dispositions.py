"""The call results a floor offers: ``agent_policy.dispositions``, and a campaign's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.config import (
    DEFAULT_DISPOSITIONS,
    CampaignConfig,
    Config,
    ConfigError,
    DispositionConfig,
    dispositions_of,
    load_config,
)
from dialer.dialing.setup import retry_rules

FLOOR = """
[[phones]]
extension = "1001"
password_env = "P"
[[trunks]]
name = "pbx"
host = "192.0.2.10"
[[agents]]
id = "zhang.wei"
extension = "1001"
"""
RESULTS = """
[agent_policy]
dispositions = [
  { code = "sale", label = "Sale" },
  { code = "trial", label = "Free trial" },
  { code = "visit", label = "Visit booked", effect = "callback" },
  { code = "complaint", label = "Complained", effect = "dnc" },
]
"""


def campaign(dispositions: str = "") -> str:
    line = f"dispositions = [{dispositions}]\n" if dispositions else ""
    return (
        '[[campaigns]]\nid = "c1"\nmode = "preview"\ntrunks = ["pbx"]\nagents = ["zhang.wei"]\n'
        + line
    )


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={"P": "pw"})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def test_without_a_list_the_floor_offers_the_shipped_results_including_the_quota_policys() -> None:
    config = load_config(None, environ={})
    assert config.agent_policy.dispositions == DEFAULT_DISPOSITIONS
    codes = [d.code for d in DEFAULT_DISPOSITIONS]
    # The shipped quota policy counts "interested" customers as worth a follow-up.
    assert "interested" in codes and "sale" in codes
    rules = retry_rules(CampaignConfig(id="c1", mode="preview"))
    assert (rules.callback_dispositions, rules.dnc_dispositions) == (
        frozenset({"callback"}),
        frozenset({"dnc"}),
    )


def test_a_floor_defines_its_results_and_a_campaign_offers_some_in_its_order(
    tmp_path: Path,
) -> None:
    config = load(tmp_path, RESULTS + FLOOR + campaign('"visit", "sale"'))
    assert config.agent_policy.dispositions[2] == DispositionConfig(
        "visit", "Visit booked", effect="callback"
    )
    [c1] = config.campaigns
    assert [d.code for d in dispositions_of(config, c1)] == ["visit", "sale"]
    rules = retry_rules(c1, dispositions_of(config, c1))
    assert rules.callback_dispositions == frozenset({"visit"})
    assert rules.dnc_dispositions == frozenset()  # "complaint" is not this campaign's


def test_a_campaign_without_a_choice_offers_every_result(tmp_path: Path) -> None:
    config = load(tmp_path, RESULTS + FLOOR + campaign())
    [c1] = config.campaigns
    offered = dispositions_of(config, c1)
    assert [d.code for d in offered] == ["sale", "trial", "visit", "complaint"]
    rules = retry_rules(c1, offered)
    assert (rules.callback_dispositions, rules.dnc_dispositions) == (
        frozenset({"visit"}),
        frozenset({"complaint"}),
    )


def test_every_bad_result_is_named(tmp_path: Path) -> None:
    text = (
        "[agent_policy]\ndispositions = [\n"
        '  { code = "Sale", label = "Sale" },\n'
        '  { code = "trial", label = " " },\n'
        '  { code = "trial", label = "Trial", effect = "maybe" },\n'
        "]\n"
    )
    assert problems(tmp_path, text) == [
        "agent_policy.dispositions[0].code: 'Sale' must be 1-32 lowercase letters, digits or _, "
        "starting with a letter or digit",
        "agent_policy.dispositions[1].label: must not be empty",
        "agent_policy.dispositions[2].code: duplicate disposition trial",
        "agent_policy.dispositions[2].effect: 'maybe' is not one of done, callback, dnc",
    ]
    text = (
        "[agent_policy]\ndispositions = [\n"
        '  { code = "sale", label = "Sale", colour = "green" },\n'
        '  { label = "No code" },\n'
        "]\n"
    )
    assert problems(tmp_path, text) == [
        "agent_policy.dispositions[0].colour: unknown setting",
        "agent_policy.dispositions[1].code: required",
    ]


def test_an_empty_list_a_bad_shape_and_unknown_campaign_codes_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "[agent_policy]\ndispositions = []\n") == [
        "agent_policy.dispositions: needs at least one disposition"
    ]
    assert problems(tmp_path, '[agent_policy]\ndispositions = ["sale"]\n') == [
        "agent_policy.dispositions: must be an array of tables ({code, label, effect})"
    ]
    found = problems(tmp_path, RESULTS + FLOOR + campaign('"sale", "refund", "sale"'))
    assert found == [
        "campaigns[0].dispositions: unknown disposition 'refund' "
        "(known: sale, trial, visit, complaint)",
        "campaigns[0].dispositions: disposition 'sale' is listed twice",
    ]


def test_the_list_comes_from_the_file_only() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"DIALER_AGENT_POLICY__DISPOSITIONS": "sale"})
    assert info.value.problems == [
        "DIALER_AGENT_POLICY__DISPOSITIONS: agent_policy.dispositions comes from the file only"
    ]
