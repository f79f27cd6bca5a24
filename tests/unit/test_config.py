from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dialer.agents.state import SYSTEM_REASONS
from dialer.campaigns.windows import CallingWindows
from dialer.config import (
    SYSTEM_PAUSE_CODES,
    AgentConfig,
    AgentPolicyConfig,
    CampaignConfig,
    Config,
    ConfigError,
    PauseReasonConfig,
    load_config,
    validate,
)

EXAMPLE = Path(__file__).parents[2] / "deploy" / "dialer.example.toml"


def test_defaults_need_no_file() -> None:
    config = load_config(None, environ={})
    assert config.sip.udp_port == 5060
    assert config.database.url.startswith("sqlite+aiosqlite://")
    assert config.phones == ()


def test_example_file_is_valid_with_its_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "phone-1002"
    secret.write_text("s3cret-1002\n")
    text = EXAMPLE.read_text().replace("/run/secrets/phone-1002", str(secret))
    path = tmp_path / "dialer.toml"
    path.write_text(text)
    config = load_config(path, environ={"PHONE_1001_PASSWORD": "p1", "TRUNK_PBX_PASSWORD": "t"})
    assert [p.extension for p in config.phones] == ["1001", "1002"]
    assert config.phones[1].password == "s3cret-1002"
    assert config.trunks[0].register is True
    assert config.trunks[0].password == "t"
    assert [a.id for a in config.agents] == ["zhang.wei", "wang.fang"]
    (campaign,) = config.campaigns
    assert (campaign.id, campaign.mode, campaign.trunks) == (
        "spring-renewals",
        "progressive",
        ("pbx",),
    )
    assert campaign.agents == ("zhang.wei", "wang.fang")
    assert campaign.windows == CallingWindows.parse({"mon-fri": ["10:30-12:00", "15:30-17:30"]})
    assert config.agent_policy == AgentPolicyConfig()


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[phones]]\nextension = "1"\npassword_env = "P"\n')
    config = load_config(path, environ={"P": "hunter2"})
    assert "hunter2" not in repr(config)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sip]\nudp_port = 5070\n")
    config = load_config(
        path, environ={"DIALER_SIP__UDP_PORT": "5080", "DIALER_MEDIA__MEDIA_TIMEOUT_S": "12.5"}
    )
    assert config.sip.udp_port == 5080
    assert config.media.media_timeout_s == 12.5


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[sip]\nudp_port = 70000\nt1 = 'fast'\nbogus = 1\n"
        "[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n"
        "[colour]\nx = 1\n"
        '[[phones]]\nextension = "1"\npassword = "inline"\n'
        '[[phones]]\nextension = "2"\nvendor = "nokia"\npassword_env = "MISSING"\n'
        '[[trunks]]\nhost = "pbx"\nmax_channels = 0\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"DIALER_NOPE__X": "1"})
    problems = info.value.problems
    assert "DIALER_NOPE__X: unknown section 'nope'" in problems
    assert "sip.t1: expected float, got 'fast'" in problems
    assert "sip.bogus: unknown setting" in problems
    assert any(p.startswith("colour: unknown section") for p in problems)
    assert any(
        p.startswith("phones[0].password: secrets are not read from the file") for p in problems
    )
    assert "phones[1].password_env: environment variable MISSING is not set" in problems
    assert any(p.startswith("phones[1].vendor: 'nokia' is not one of") for p in problems)
    assert "trunks[0].name: required" in problems


def test_cross_field_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[sip]\nudp_port = 70000\n[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n"
        '[[trunks]]\nname = "a"\nhost = "h"\nmax_channels = 0\nregister = true\n'
        '[[trunks]]\nname = "a"\nhost = "h"\ntransport = "sctp"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    problems = info.value.problems
    assert "sip.udp_port: 70000 is not a port (0-65535)" in problems
    assert "media.rtp_port_min: must be below media.rtp_port_max" in problems
    assert "trunks[0].max_channels: must be positive" in problems
    assert "trunks[0].register: needs username and a password_env/password_file" in problems
    assert "trunks[1].name: duplicate trunk a" in problems
    assert "trunks[1].transport: 'sctp' is not one of udp, tcp" in problems


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[sip\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_digest_algorithms_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[sip]\ndigest_algorithms = ["SHA-256", "MD5"]\n')
    assert load_config(path, environ={}).sip.digest_algorithms == ("SHA-256", "MD5")
    env = {"DIALER_SIP__DIGEST_ALGORITHMS": "MD5"}
    assert load_config(path, environ=env).sip.digest_algorithms == ("MD5",)
    path.write_text('[sip]\ndigest_algorithms = ["SHA-1"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        "sip.digest_algorithms: ['SHA-1'] must be a non-empty list of MD5, SHA-256"
    ]


# -- campaigns, agents, agent policy, trunk routing ---------------------------

FLOOR = """
[[phones]]
extension = "1001"
password_env = "P"
[[phones]]
extension = "1002"
password_env = "P"
[[trunks]]
name = "pbx"
host = "192.0.2.10"
[[trunks]]
name = "gsm"
host = "192.0.2.20"
[[agents]]
id = "zhang.wei"
extension = "1001"
[[agents]]
id = "wang.fang"
extension = "1002"
"""
CAMPAIGN = (
    '[[campaigns]]\nid = "c1"\nmode = "progressive"\ntrunks = ["pbx"]\nagents = ["zhang.wei"]\n'
)


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path, environ={"P": "pw", **(environ or {})})


def _problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text, environ)
    return info.value.problems


def test_campaign_agent_and_policy_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, FLOOR + CAMPAIGN)
    (campaign,) = config.campaigns
    assert campaign == CampaignConfig(
        id="c1",
        mode="progressive",
        name="c1",
        trunks=("pbx",),
        agents=("zhang.wei",),
        caller_id=None,
        timezone="Asia/Shanghai",
        windows=CallingWindows.parse({"mon-fri": ["10:30-12:00", "15:30-17:30"]}),
        max_attempts=3,
        busy_retry_minutes=30,
        no_answer_retry_minutes=120,
        unavailable_retry_minutes=240,
        ring_timeout_s=30.0,
        record=True,
        record_early_media=False,
        effective_rule="default",
        abandon_cap=0.03,
        max_dial_level=3.0,
    )
    assert config.agents[0] == AgentConfig(
        id="zhang.wei",
        extension="1001",
        name="zhang.wei",
        team=None,
        level="junior",
        start_date=None,
        persistent_connection=True,
    )
    assert config.agent_policy.wrap_up_limit_s == 30
    assert [(r.code, r.label, r.billable) for r in config.agent_policy.pause_reasons] == [
        ("break", "Break", False),
        ("training", "Training", True),
        ("meeting", "Meeting", True),
        ("toilet", "Toilet", False),
    ]
    trunk = config.trunks[0]
    assert (trunk.priority, trunk.prefixes_allowed, trunk.strip_country_code) == (0, (), False)
    assert trunk.caller_ids == ()
    assert load_config(None, environ={}).campaigns == ()


def test_seed_windows_are_the_default_and_match_the_requirements() -> None:
    seeds = CallingWindows.parse({"mon-fri": ["10:30-12:00", "15:30-17:30"]})
    assert CampaignConfig(id="x", mode="manual").windows == seeds
    assert [str(w) for w in seeds.days[0]] == ["10:30-12:00", "15:30-17:30"]
    assert seeds.days[5] == seeds.days[6] == ()


def test_campaign_timezone_defaults_to_the_service_timezone(tmp_path: Path) -> None:
    text = '[service]\ntimezone = "Asia/Urumqi"\n' + FLOOR + CAMPAIGN
    assert _load(tmp_path, text).campaigns[0].timezone == "Asia/Urumqi"
    env = {"DIALER_SERVICE__TIMEZONE": "Europe/Berlin"}
    assert _load(tmp_path, text, env).campaigns[0].timezone == "Europe/Berlin"
    own = text.replace('mode = "progressive"', 'mode = "progressive"\ntimezone = "Asia/Tokyo"')
    assert _load(tmp_path, own).campaigns[0].timezone == "Asia/Tokyo"


def test_every_campaign_setting_read_from_the_file(tmp_path: Path) -> None:
    text = FLOOR + (
        '[[campaigns]]\nid = "renewals-2024"\nname = "Renewals"\nmode = "predictive"\n'
        'trunks = ["gsm", "pbx"]\nagents = ["zhang.wei", "wang.fang"]\n'
        'caller_id = "+862100000001"\n'
        "max_attempts = 5\nbusy_retry_minutes = 10\nno_answer_retry_minutes = 60\n"
        "unavailable_retry_minutes = 480\nring_timeout_s = 25\nrecord = false\n"
        'record_early_media = true\neffective_rule = "talk-30s.v2"\nabandon_cap = 0.2\n'
        "max_dial_level = 1\nrecording_retention_days = 90\n"
        '[campaigns.windows]\n"sat,sun" = ["09:00-11:00"]\n'
        '[effective_rules."talk-30s.v2"]\nversion = 2\nmin_talk_s = 30\n'
    )
    config = _load(tmp_path, text)
    campaign = config.campaigns[0]
    assert campaign.recording_retention_days == 90
    rule = {r.name: r for r in config.effective_rules}["talk-30s.v2"]
    assert (rule.ref, rule.min_talk_s) == ("talk-30s.v2@2", 30.0)
    assert campaign.name == "Renewals"
    assert campaign.mode == "predictive"
    assert campaign.trunks == ("gsm", "pbx")
    assert campaign.agents == ("zhang.wei", "wang.fang")
    assert campaign.caller_id == "+862100000001"
    assert (campaign.max_attempts, campaign.busy_retry_minutes) == (5, 10)
    assert (campaign.no_answer_retry_minutes, campaign.unavailable_retry_minutes) == (60, 480)
    assert campaign.ring_timeout_s == 25.0
    assert (campaign.record, campaign.record_early_media) == (False, True)
    assert campaign.effective_rule == "talk-30s.v2"
    assert (campaign.abandon_cap, campaign.max_dial_level) == (0.2, 1.0)
    assert campaign.windows == CallingWindows.parse({"sat,sun": ["09:00-11:00"]})


def test_agents_and_trunk_routing_read_from_the_file(tmp_path: Path) -> None:
    text = FLOOR.replace(
        'extension = "1001"\n[[agents]]',
        'extension = "1001"\nname = "Zhang Wei"\nteam = "a"\nlevel = "senior"\n'
        "start_date = 2023-09-01\npersistent_connection = false\n[[agents]]",
    ).replace(
        'id = "wang.fang"\nextension = "1002"\n',
        'id = "wang.fang"\nextension = "1002"\nstart_date = "2024-02-29"\n',
    )
    text = text.replace(
        'host = "192.0.2.20"\n',
        'host = "192.0.2.20"\npriority = 1\nprefixes_allowed = ["+861"]\n'
        'strip_country_code = true\ncaller_ids = ["13800138000", "+8613900139000"]\n',
    )
    config = _load(tmp_path, text)
    assert config.agents[0] == AgentConfig(
        id="zhang.wei",
        extension="1001",
        name="Zhang Wei",
        team="a",
        level="senior",
        start_date=date(2023, 9, 1),
        persistent_connection=False,
    )
    assert config.agents[1].start_date == date(2024, 2, 29)
    gsm = config.trunks[1]
    assert (gsm.priority, gsm.prefixes_allowed, gsm.strip_country_code) == (1, ("+861",), True)
    assert gsm.caller_ids == ("13800138000", "+8613900139000")


def test_cross_references_are_reported_together(tmp_path: Path) -> None:
    text = (
        FLOOR
        + '[[agents]]\nid = "li.na"\nextension = "1009"\n'
        + '[[agents]]\nid = "wang.fang"\nextension = "1001"\n'
        + CAMPAIGN
        + '[[campaigns]]\nid = "c2"\nmode = "preview"\ntrunks = ["pbx", "gw2", "pbx"]\n'
        'agents = ["zhang.wei", "zhao.lei", "zhang.wei"]\n'
        '[[campaigns]]\nid = "c1"\nmode = "manual"\ntrunks = []\nagents = []\n'
        "[sip]\nudp_port = 70000\n"
    )
    problems = _problems(tmp_path, text)
    assert problems == [
        "sip.udp_port: 70000 is not a port (0-65535)",
        "agents[2].extension: unknown extension '1009' (known: 1001, 1002)",
        "agents[3].id: duplicate agent wang.fang",
        "campaigns[1].trunks: unknown trunk 'gw2' (known: pbx, gsm)",
        "campaigns[1].trunks: trunk 'pbx' is listed twice",
        "campaigns[1].agents: unknown agent 'zhao.lei' (known: zhang.wei, wang.fang, li.na)",
        "campaigns[1].agents: agent 'zhang.wei' is listed twice",
        "campaigns[2].id: duplicate campaign c1",
        "campaigns[2].trunks: campaign 'c1' has no trunks",
        "campaigns[2].agents: campaign 'c1' has no agents",
    ]


def test_missing_trunks_and_agents_lists_are_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, FLOOR + '[[campaigns]]\nid = "x"\nmode = "manual"\n')
    assert problems == [
        "campaigns[0].trunks: campaign 'x' has no trunks",
        "campaigns[0].agents: campaign 'x' has no agents",
    ]
    problems = _problems(tmp_path, CAMPAIGN)
    assert problems == [
        "campaigns[0].trunks: unknown trunk 'pbx' (known: none)",
        "campaigns[0].agents: unknown agent 'zhang.wei' (known: none)",
    ]


def test_an_agent_on_a_phone_assigned_to_someone_else(tmp_path: Path) -> None:
    text = FLOOR.replace('password_env = "P"\n', 'password_env = "P"\nagent = "li.na"\n', 1)
    assert _problems(tmp_path, text) == [
        "agents[0].extension: phone 1001 belongs to agent 'li.na' (phones[0].agent)"
    ]
    same = FLOOR.replace('password_env = "P"\n', 'password_env = "P"\nagent = "zhang.wei"\n', 1)
    assert _load(tmp_path, same).phones[0].agent == "zhang.wei"


def test_references_to_items_that_failed_are_not_reported_twice(tmp_path: Path) -> None:
    text = FLOOR.replace('host = "192.0.2.10"\n', 'host = "192.0.2.10"\npassword_env = "NOPE"\n')
    text = text.replace('extension = "1001"\npassword_env = "P"', 'extension = "1001"')
    assert _problems(tmp_path, text + CAMPAIGN) == [
        "phones[0]: a phone needs password_env or password_file",
        "trunks[0].password_env: environment variable NOPE is not set",
    ]


def test_campaign_value_checks(tmp_path: Path) -> None:
    text = FLOOR + (
        '[[campaigns]]\nid = "bad id"\nmode = "robocall"\ntrunks = ["pbx"]\n'
        'agents = ["zhang.wei"]\ncaller_id = "021-5555"\ntimezone = "Mars/Olympus"\n'
        "max_attempts = 0\nbusy_retry_minutes = 0\nno_answer_retry_minutes = -5\n"
        'unavailable_retry_minutes = 0\nring_timeout_s = 10\neffective_rule = ""\n'
        "abandon_cap = 0.5\nmax_dial_level = 0.5\nwindows = {}\n"
        '[[campaigns]]\nid = "c2"\nmode = "predictive"\ntrunks = ["pbx"]\n'
        'agents = ["zhang.wei"]\nabandon_cap = 0\nring_timeout_s = 14.5\n'
    )
    rule = "up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    assert _problems(tmp_path, text) == [
        f"campaigns[0].id: 'bad id' is not a safe identifier ({rule})",
        "campaigns[0].mode: 'robocall' is not one of manual, preview, progressive, predictive",
        "campaigns[0].caller_id: '021-5555' is not a number (3-15 digits, optional '+')",
        "campaigns[0].timezone: unknown time zone 'Mars/Olympus'",
        "campaigns[0].windows: no calling windows, the campaign could never dial",
        "campaigns[0].max_attempts: must be at least 1, got 0",
        "campaigns[0].busy_retry_minutes: must be positive, got 0",
        "campaigns[0].no_answer_retry_minutes: must be positive, got -5",
        "campaigns[0].unavailable_retry_minutes: must be positive, got 0",
        "campaigns[0].ring_timeout_s: 10 s is too short; a ring timeout is never shorter than 15 s",
        f"campaigns[0].effective_rule: '' is not a safe identifier ({rule})",
        "campaigns[0].abandon_cap: must be above 0 and at most 0.2 (a fraction of live answers,"
        " 0.03 = 3 %), got 0.5",
        "campaigns[0].max_dial_level: must be at least 1, got 0.5",
        "campaigns[1].ring_timeout_s: 14.5 s is too short; a ring timeout is never shorter than"
        " 15 s",
        "campaigns[1].abandon_cap: must be above 0 and at most 0.2 (a fraction of live answers,"
        " 0.03 = 3 %), got 0",
    ]


def test_windows_problems_carry_the_campaign_key(tmp_path: Path) -> None:
    text = FLOOR + CAMPAIGN + '[campaigns.windows]\n"mon-fri" = ["10:30-12:00", "15:30-12:00"]\n'
    text += 'fri = ["09:00-10:00"]\nsunday = ["10:00-11:00"]\n'
    assert _problems(tmp_path, text) == [
        "campaigns[0].windows['mon-fri'][1] = '15:30-12:00': end must be after start"
        " (no window spans midnight)",
        "campaigns[0].windows['fri']: fri is already listed under 'mon-fri'",
        "campaigns[0].windows['sunday']: 'sunday' is not a day or day range; use mon, tue, wed,"
        " thu, fri, sat, sun or a range such as 'mon-fri'",
    ]
    text = FLOOR + CAMPAIGN.replace('mode = "progressive"', 'mode = "manual"\nwindows = "always"')
    assert _problems(tmp_path, text) == [
        "campaigns[0].windows must be a table of day -> windows, got 'always'"
    ]


def test_campaign_and_agent_shape_problems(tmp_path: Path) -> None:
    text = (
        FLOOR
        + '[[agents]]\nname = "no id"\nlevel = "guru"\nstart_date = "1st March"\n'
        + '[[agents]]\nid = "x y"\nextension = "1002"\nlevel = "guru"\n'
        + '[[campaigns]]\nname = "nameless"\ncolour = "red"\nmax_attempts = "many"\n'
        + '[[campaigns]]\nid = "c"\nmode = "manual"\ntrunks = ["pbx", 2]\nagents = ["zhang.wei"]\n'
    )
    rule = "up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    assert _problems(tmp_path, text) == [
        "agents[2].start_date: expected an ISO date such as 2024-03-01, got '1st March'",
        "agents[2].id: required",
        "agents[2].extension: required",
        "campaigns[0].colour: unknown setting",
        "campaigns[0].max_attempts: expected int, got 'many'",
        "campaigns[0].id: required",
        "campaigns[0].mode: required, one of manual, preview, progressive, predictive",
        "campaigns[1].trunks: expected a list of strings, got ['pbx', 2]",
        f"agents[3].id: 'x y' is not a safe identifier ({rule})",
        "agents[3].level: 'guru' is not one of junior, middle, senior",
    ]


def test_pause_reason_checks(tmp_path: Path) -> None:
    text = (
        "[agent_policy]\nwrap_up_limit_s = -1\npause_reasons = [\n"
        '  { code = "lunch", label = "Lunch" },\n'
        '  { code = "phone_lost", label = "Lost", billable = false },\n'
        '  { code = "lunch", label = "Lunch again", billable = true },\n'
        '  { code = "wrap_up_exceeded", label = "Late" },\n'
        '  { code = "coffee", label = " " },\n'
        "]\n"
    )
    assert _problems(tmp_path, text) == [
        "agent_policy.wrap_up_limit_s: must be >= 0 (0 disables wrap-up), got -1.0",
        "agent_policy.pause_reasons[1].code: 'phone_lost' is reserved for the system"
        " (not_ready, phone_lost, wrap_up_exceeded); choose another code",
        "agent_policy.pause_reasons[2].code: duplicate pause reason lunch",
        "agent_policy.pause_reasons[3].code: 'wrap_up_exceeded' is reserved for the system"
        " (not_ready, phone_lost, wrap_up_exceeded); choose another code",
        "agent_policy.pause_reasons[4].label: must not be empty",
    ]
    text = '[agent_policy]\npause_reasons = [{ code = "lunch", label = "Lunch" }]\n'
    policy = _load(tmp_path, text).agent_policy
    assert policy.pause_reasons == (PauseReasonConfig("lunch", "Lunch", billable=False),)


def test_pause_reason_shape_problems(tmp_path: Path) -> None:
    assert _problems(tmp_path, "[agent_policy]\npause_reasons = []\n") == [
        "agent_policy.pause_reasons: needs at least one reason"
    ]
    assert _problems(tmp_path, '[agent_policy]\npause_reasons = ["break"]\n') == [
        "agent_policy.pause_reasons: must be an array of tables ({code, label, billable})"
    ]
    text = '[agent_policy]\npause_reasons = [{ label = "x", billable = "sometimes", y = 1 }]\n'
    assert _problems(tmp_path, text) == [
        "agent_policy.pause_reasons[0].billable: expected bool, got 'sometimes'",
        "agent_policy.pause_reasons[0].y: unknown setting",
        "agent_policy.pause_reasons[0].code: required",
    ]


def test_system_pause_codes_are_the_agent_state_machines() -> None:
    assert set(SYSTEM_PAUSE_CODES) == {r.code for r in SYSTEM_REASONS}


def test_agent_policy_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[agent_policy]\nwrap_up_limit_s = 20\n")
    config = load_config(path, environ={"DIALER_AGENT_POLICY__WRAP_UP_LIMIT_S": "45"})
    assert config.agent_policy.wrap_up_limit_s == 45.0
    assert len(config.agent_policy.pause_reasons) == 4
    env = {"DIALER_AGENT_POLICY__WRAP_UP_LIMIT_S": "0"}
    assert load_config(None, environ=env).agent_policy.wrap_up_limit_s == 0
    with pytest.raises(ConfigError) as info:
        load_config(
            None,
            environ={
                "DIALER_AGENT_POLICY__WRAP_UP_LIMIT_S": "soon",
                "DIALER_AGENT_POLICY__PAUSE_REASONS": "break",
                "DIALER_CAMPAIGNS__ID": "c1",
                "DIALER_AGENTS__ID": "a",
            },
        )
    assert sorted(info.value.problems) == [
        "DIALER_AGENTS__ID: [[agents]] comes from the file only",
        "DIALER_AGENT_POLICY__PAUSE_REASONS: agent_policy.pause_reasons comes from the file only",
        "DIALER_CAMPAIGNS__ID: [[campaigns]] comes from the file only",
        "agent_policy.wrap_up_limit_s: expected float, got 'soon'",
    ]


def test_trunk_routing_checks(tmp_path: Path) -> None:
    text = (
        '[[trunks]]\nname = "gsm"\nhost = "h"\nprefixes_allowed = ["+861", "861", "+"]\n'
        'caller_ids = ["13800138000", "12ab"]\ncaller_id = "unknown"\n'
        '[[trunks]]\nname = "b"\nhost = "h"\npriority = "high"\nstrip_country_code = "maybe"\n'
    )
    assert _problems(tmp_path, text) == [
        "trunks[1].priority: expected int, got 'high'",
        "trunks[1].strip_country_code: expected bool, got 'maybe'",
        "trunks[0].caller_id: 'unknown' is not a number (3-15 digits, optional '+')",
        "trunks[0].prefixes_allowed[1]: '861' is not an E.164 prefix such as '+86'",
        "trunks[0].prefixes_allowed[2]: '+' is not an E.164 prefix such as '+86'",
        "trunks[0].caller_ids[1]: '12ab' is not a number (3-15 digits, optional '+')",
    ]


def test_service_timezone_is_checked_once(tmp_path: Path) -> None:
    text = '[service]\ntimezone = "Nowhere/Land"\n' + FLOOR + CAMPAIGN
    assert _problems(tmp_path, text) == ["service.timezone: unknown time zone 'Nowhere/Land'"]


def test_example_file_lists_only_its_missing_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, environ={})
    problems = info.value.problems
    assert (
        problems[0] == "phones[0].password_env: environment variable PHONE_1001_PASSWORD is not set"
    )
    assert problems[1].startswith("phones[1].password_file: cannot read: ")
    assert problems[2:] == [
        "trunks[0].password_env: environment variable TRUNK_PBX_PASSWORD is not set"
    ]


def test_keys_name_the_file_position_when_earlier_items_failed(tmp_path: Path) -> None:
    text = (
        '[[trunks]]\nname = "a"\nhost = "h"\nport = "x"\n'
        '[[trunks]]\nname = "b"\nhost = "h"\nmax_channels = 0\n'
        '[[phones]]\nextension = "1"\n'
        '[[phones]]\nextension = "2"\npassword_env = "P"\n'
        '[[phones]]\nextension = "2"\npassword_env = "P"\n'
    )
    assert _problems(tmp_path, text) == [
        "phones[0]: a phone needs password_env or password_file",
        "trunks[0].port: expected int, got 'x'",
        "phones[2].extension: duplicate extension 2",
        "trunks[1].max_channels: must be positive",
    ]


def test_validate_without_file_facts_uses_config_positions() -> None:
    config = Config(campaigns=(CampaignConfig(id="c", mode="manual", trunks=("t",)),))
    assert validate(config) == [
        "campaigns[0].trunks: unknown trunk 't' (known: none)",
        "campaigns[0].agents: campaign 'c' has no agents",
    ]


def test_effective_rules_and_retention_problems_all_named(tmp_path: Path) -> None:
    text = FLOOR + (
        '[[campaigns]]\nid = "c1"\nmode = "progressive"\ntrunks = ["gsm"]\n'
        'agents = ["zhang.wei"]\neffective_rule = "nowhere"\nrecording_retention_days = 7\n'
        "[cdr]\nretention_days = 10\nqa_sample_rate = 1.5\n"
        "[effective_rules.strict]\nversion = 0\nmin_talk_s = -1\ncolour = 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    problems = caught.value.problems
    assert "effective_rules.strict: unknown key 'colour'" in problems
    assert "effective_rules.strict.version: 0 is not a whole number ≥ 1" in problems
    assert "effective_rules.strict.min_talk_s: -1 is not a number ≥ 0" in problems


def test_unknown_rule_and_short_retention_refused(tmp_path: Path) -> None:
    text = FLOOR + (
        '[[campaigns]]\nid = "c1"\nmode = "progressive"\ntrunks = ["gsm"]\n'
        'agents = ["zhang.wei"]\neffective_rule = "nowhere"\nrecording_retention_days = 7\n'
        "[cdr]\nretention_days = 10\nqa_sample_rate = 1.5\n"
    )
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    problems = caught.value.problems
    assert "campaigns[0].effective_rule: no rule 'nowhere' (defined: default)" in problems
    assert (
        "campaigns[0].recording_retention_days: 7 is under the 30 days recordings must be kept"
        in problems
    )
    assert "cdr.retention_days: 10 is under the 30 days recordings must be kept" in problems
    assert "cdr.qa_sample_rate: must be between 0 and 1, got 1.5" in problems


def test_a_bad_quota_policy_refuses_the_configuration_naming_its_problems(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("colour = 1\n", encoding="utf-8")
    text = f'[quota]\npolicy_path = "{policy}"\n'
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    problems = caught.value.problems
    assert problems and all(p.startswith(f"quota.policy_path ({policy}): ") for p in problems)
    assert any("colour" in p for p in problems), problems


def test_an_unreadable_agent_token_file_is_a_configuration_problem(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('["a1"]', encoding="utf-8")
    text = f'[mqtt]\nhost = "127.0.0.1"\nport = 1883\ntokens_file = "{tokens}"\n'
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert caught.value.problems == [
        f'mqtt.tokens_file: {tokens} must be an object {{"agent id": "token", ...}}'
    ]
