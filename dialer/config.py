"""Typed service configuration: defaults, then one TOML file, then environment.

Everything is validated before any socket opens, and every problem is reported
at once with the dotted key that is wrong, so an operator fixes a file in one
pass instead of one error per restart. Secrets are never read from the file
itself: a phone or trunk names an environment variable or a file that holds
its password.

Campaigns, agents and the agent policy live here too. Lists of tables
(``[[phones]]``, ``[[trunks]]``, ``[[agents]]``, ``[[campaigns]]``) come from
the file only; the environment overrides scalar keys of the single sections,
``[agent_policy]`` included. Cross references (a campaign's trunks and agents,
an agent's extension) are checked with everything else, so one pass reports
them all.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from cdr.effective import DEFAULT_RULE, EffectiveRule, RuleError
from dialer.campaigns.windows import CallingWindows, CampaignError, zone
from dialer.dialing.pacing import MIN_ABANDON_MESSAGE_S
from dialer.media.wav import WavError, read_prompt

ENV_PREFIX = "DIALER_"
DEFAULT_TIMEZONE = "Asia/Shanghai"
VENDORS = ("generic", "yealink", "polycom", "grandstream", "snom", "cisco", "baresip")
TRANSPORTS = ("udp", "tcp")
CAMPAIGN_MODES = ("manual", "preview", "progressive", "predictive")
AGENT_LEVELS = ("junior", "middle", "senior")
# The agent state machine's own pause reasons (dialer.agents.state.SYSTEM_REASONS):
# the system sets them, so a configured reason may not reuse their codes.
SYSTEM_PAUSE_CODES = ("not_ready", "phone_lost", "wrap_up_exceeded")
# The seeds' calling hours (REQUIREMENTS.md): weekdays 10:30-12:00 and 15:30-17:30.
SEED_WINDOWS: Mapping[str, tuple[str, ...]] = {"mon-fri": ("10:30-12:00", "15:30-17:30")}
DEFAULT_WINDOWS = CallingWindows.parse(SEED_WINDOWS)
MIN_RING_TIMEOUT_S = 15.0  # DESIGN.md: a ring timeout is never shorter than 15 s
DEFAULT_QUOTA_POLICY = Path(__file__).resolve().parents[1] / "deploy/quota/default-policy.toml"
MIN_RETENTION_DAYS = 30  # China: licensed call centres keep recordings at least 30 days
MAX_ABANDON_CAP = 0.2
MAX_CONNECT_S = 2.0  # REQUIREMENTS: a live answer reaches an agent within 2 s or is released

# Ids end up in metric labels, file names and events: keep them plain.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SAFE_ID_RULE = "up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Same rules as dialer.campaigns.trunks applies to a trunk spec.
_E164_PREFIX = re.compile(r"\+\d{1,15}")
_CALLER_ID = re.compile(r"\+?\d{3,15}")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every wrong key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    node_name: str = "node-1"
    data_dir: Path = Path("var")
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class SipConfig:
    bind_host: str = "127.0.0.1"
    udp_port: int = 5060
    tcp_port: int = 5060
    realm: str = "dialer.local"
    max_message_bytes: int = 65536
    max_headers: int = 100
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    register_min_expires: int = 60
    register_max_expires: int = 3600
    auth_failures_before_throttle: int = 5
    throttle_seconds: float = 60.0
    # Challenge order. Desk phones (and SIPp, baresip 1.0) answer only the
    # first challenge and know only MD5, so MD5 alone is the default; a floor
    # of RFC 8760 phones can offer ["SHA-256", "MD5"].
    digest_algorithms: tuple[str, ...] = ("MD5",)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    rtp_port_min: int = 20000
    rtp_port_max: int = 29999
    media_timeout_s: float = 30.0
    recordings_dir: str = "var/recordings"
    record: bool = True  # the campaign's recording policy decides per call later
    record_early_media: bool = False


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///var/dialer.db"


@dataclass(frozen=True, slots=True)
class CdrConfig:
    journal_path: str = ""  # empty: cdr-journal.jsonl in the service's data_dir
    retention_days: int = 30  # recordings; a campaign may keep them longer, never shorter
    qa_sample_rate: float = 0.05  # share of each agent's answered calls a day sent to QA
    qa_sample_minimum: int = 2  # and at least this many per agent and day
    default_effective_rule: str = "default"  # for calls of campaigns not in this file


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = ""  # empty: no MQTT feed
    port: int = 1883
    prefix: str = ""  # empty: dialer/<node_name>
    username: str = ""
    password_env: str = ""  # the broker password is read from this environment variable
    tls: bool = False
    ca_file: str = ""  # empty with tls: the system's trusted CAs
    tokens_file: str = ""  # JSON {"agent id": "token"}: who may send commands for whom


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = True
    bind_host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (logged at start)
    session_minutes: int = 720  # a page sign-in lasts one shift
    max_upload_bytes: int = 10 * 1024 * 1024  # lead-list CSVs and other uploads


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    policy_path: str = ""  # empty: the seeds' policy shipped in deploy/quota/
    reports_dir: str = ""  # empty: reports/ in the service's data_dir


@dataclass(frozen=True, slots=True)
class PhoneConfig:
    extension: str
    password: str = field(repr=False)
    vendor: str = "generic"
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    register: bool = False
    expires: int = 600
    max_channels: int = 30
    max_calls_per_second: float = 5.0
    caller_id: str | None = None
    prefix: str = ""
    priority: int = 0  # lower first (0 is the primary), as in DNS SRV
    prefixes_allowed: tuple[str, ...] = ()  # E.164 prefixes such as "+861"; empty: any number
    strip_country_code: bool = False  # dial national numbers (the trunk reaches one country)
    caller_ids: tuple[str, ...] = ()  # rotated round-robin; empty: caller_id alone


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    bind_host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, slots=True)
class PauseReasonConfig:
    code: str
    label: str
    billable: bool = False  # whether the pause counts as paid working time


DEFAULT_PAUSE_REASONS: tuple[PauseReasonConfig, ...] = (
    PauseReasonConfig("break", "Break", billable=False),
    PauseReasonConfig("training", "Training", billable=True),
    PauseReasonConfig("meeting", "Meeting", billable=True),
    PauseReasonConfig("toilet", "Toilet", billable=False),
)


# What a disposition does to the lead: "done" finishes it, "callback" asks the agent for
# the time agreed with the customer, "dnc" puts the number on the do-not-call list.
DISPOSITION_EFFECTS = ("done", "callback", "dnc")
_DISPOSITION_CODE = re.compile(r"[a-z0-9][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class DispositionConfig:
    code: str  # in the CDRs, reports and quota policy: lowercase, stable
    label: str  # shown when the pages' catalogue has no text for the code
    effect: str = "done"


DEFAULT_DISPOSITIONS: tuple[DispositionConfig, ...] = (
    DispositionConfig("sale", "Sale"),
    DispositionConfig("interested", "Interested"),  # the quota policy's follow-up-worthy
    DispositionConfig("not_interested", "Not interested"),
    DispositionConfig("callback", "Call back", effect="callback"),
    DispositionConfig("no_answer", "No answer"),
    DispositionConfig("wrong_number", "Wrong number"),
    DispositionConfig("dnc", "Do not call", effect="dnc"),
)


@dataclass(frozen=True, slots=True)
class AgentPolicyConfig:
    wrap_up_limit_s: float = 30.0  # 0 disables wrap-up
    pause_reasons: tuple[PauseReasonConfig, ...] = DEFAULT_PAUSE_REASONS
    dispositions: tuple[DispositionConfig, ...] = DEFAULT_DISPOSITIONS  # the desk's results


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    extension: str  # the desk phone, one of [[phones]]
    name: str = ""  # empty: the id
    team: str | None = None
    level: str = "junior"
    start_date: date | None = None
    persistent_connection: bool = True  # nailed-up leg for progressive/predictive work


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    id: str
    mode: str  # one of CAMPAIGN_MODES; required: it decides who dials and how fast
    name: str = ""  # empty: the id
    trunks: tuple[str, ...] = ()  # names of [[trunks]], at least one
    agents: tuple[str, ...] = ()  # ids of [[agents]], at least one
    caller_id: str | None = None  # None: the trunk's caller ids
    timezone: str = DEFAULT_TIMEZONE  # the leads' zone; loading defaults it to service's
    windows: CallingWindows = DEFAULT_WINDOWS
    max_attempts: int = 3
    busy_retry_minutes: int = 30
    no_answer_retry_minutes: int = 120
    unavailable_retry_minutes: int = 240
    ring_timeout_s: float = 30.0
    record: bool = True
    record_early_media: bool = False
    effective_rule: str = "default"  # the effective-call rule the CDRs are judged by
    abandon_cap: float = 0.03  # predictive: abandoned share of live answers
    max_dial_level: float = 3.0  # predictive: calls in flight per available agent
    connect_within_s: float = 2.0  # predictive: a live answer waits this long for an agent
    abandon_lockout_minutes: float = 72 * 60.0  # an abandoned lead is not redialed for this long
    abandon_message: str = ""  # WAV played to an abandoned customer; empty: the shipped one
    screen_early_media: bool = True  # release announcements and SIT in 183 before ringing out
    recording_retention_days: int = 0  # 0: the service's cdr.retention_days
    dispositions: tuple[str, ...] = ()  # codes of agent_policy.dispositions; empty: all


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cdr: CdrConfig = field(default_factory=CdrConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    effective_rules: tuple[EffectiveRule, ...] = (DEFAULT_RULE,)
    phones: tuple[PhoneConfig, ...] = ()
    trunks: tuple[TrunkConfig, ...] = ()
    agent_policy: AgentPolicyConfig = field(default_factory=AgentPolicyConfig)
    agents: tuple[AgentConfig, ...] = ()
    campaigns: tuple[CampaignConfig, ...] = ()


_SECTIONS: dict[str, type[Any]] = {
    "service": ServiceConfig,
    "sip": SipConfig,
    "media": MediaConfig,
    "database": DatabaseConfig,
    "metrics": MetricsConfig,
    "cdr": CdrConfig,
    "quota": QuotaConfig,
    "mqtt": MqttConfig,
    "http": HttpConfig,
}
# Single sections built by their own function (they hold tables of their own).
_SPECIAL_SECTIONS = ("agent_policy", "effective_rules")
_ARRAYS = ("phones", "trunks", "agents", "campaigns")


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration or raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: file not found"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    _apply_environment(raw, env, problems)
    built = _build(raw, env, problems)
    if built is not None:
        problems.extend(validate(*built))
    if problems:
        raise ConfigError(problems)
    assert built is not None
    return built[0]


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """``DIALER_SIP__UDP_PORT=5070`` overrides ``sip.udp_port``."""
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section in _ARRAYS:
            problems.append(f"{name}: [[{section}]] comes from the file only")
            continue
        if section == "agent_policy" and key in ("pause_reasons", "dispositions"):
            problems.append(f"{name}: agent_policy.{key} comes from the file only")
            continue
        if section not in _SECTIONS and section not in _SPECIAL_SECTIONS:
            problems.append(f"{name}: unknown section {section!r}")
            continue
        raw.setdefault(section, {})[key] = value


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the file said beyond the built Config, so ``validate`` names the right keys.

    An item that fails to build is left out of the Config (its problem is
    already reported), so ``positions`` keeps each built item's index in the
    file, and ``declared`` every name the file gives (phones' extensions,
    trunks' names, agents' ids): a reference to an item that failed to build
    is not reported again as unknown.
    """

    declared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    positions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def key(self, array: str, index: int) -> str:
        """The file key of the built ``array`` item at ``index``."""
        where = self.positions.get(array)
        return f"{array}[{index if where is None else where[index]}]"

    def known(self, array: str, built: Sequence[str]) -> list[str]:
        return list(dict.fromkeys([*built, *self.declared.get(array, ())]))


def _build(
    raw: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> tuple[Config, FileFacts] | None:
    known = set(_SECTIONS) | set(_SPECIAL_SECTIONS) | set(_ARRAYS)
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown section (expected one of {sorted(known)})")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: must be a table")
            continue
        sections[name] = _section(name, cls, table, problems)
    policy_table = raw.get("agent_policy", {})
    policy: AgentPolicyConfig | None = None
    if isinstance(policy_table, dict):
        policy = _agent_policy("agent_policy", policy_table, problems)
    else:
        problems.append("agent_policy: must be a table")
    service = sections.get("service") or ServiceConfig()
    builders: dict[str, Callable[[str, dict[str, Any]], Any]] = {
        "phones": lambda key, item: _phone(key, item, env, problems),
        "trunks": lambda key, item: _trunk(key, item, env, problems),
        "agents": lambda key, item: _agent(key, item, problems),
        "campaigns": lambda key, item: _campaign(key, item, service.timezone, problems),
    }
    arrays: dict[str, Any] = {}
    positions: dict[str, tuple[int, ...]] = {}
    for array, build in builders.items():
        built = [
            (i, value)
            for i, item in enumerate(_array(raw, array, problems))
            if (value := build(f"{array}[{i}]", item)) is not None
        ]
        positions[array] = tuple(i for i, _ in built)
        arrays[array] = tuple(value for _, value in built)
    if any(v is None for v in sections.values()) or len(sections) != len(_SECTIONS):
        return None
    rules = _effective_rules(raw.get("effective_rules", {}), problems)
    if policy is None or rules is None:
        return None
    config = Config(agent_policy=policy, effective_rules=rules, **arrays, **sections)
    return config, FileFacts(declared=_declared(raw), positions=positions)


def _declared(raw: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    declared: dict[str, tuple[str, ...]] = {}
    for array, name in (("phones", "extension"), ("trunks", "name"), ("agents", "id")):
        items = raw.get(array, [])
        if isinstance(items, list):
            names = (i.get(name) for i in items if isinstance(i, dict))
            declared[array] = tuple(dict.fromkeys(n for n in names if isinstance(n, str)))
    return declared


def _array(raw: dict[str, Any], name: str, problems: list[str]) -> list[dict[str, Any]]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{name}: must be an array of tables ([[{name}]])")
        return []
    return value


def _coerce(key: str, value: Any, default: Any, problems: list[str]) -> Any:
    """Convert a TOML or environment value to the type of the field's default."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if isinstance(default, Path):
            return Path(str(value))
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError
            return tuple(i.strip() for i in items)
    except (TypeError, ValueError):
        pass
    expected = "a list of strings" if kind is tuple else kind.__name__
    problems.append(f"{key}: expected {expected}, got {value!r}")
    return None


Parser = Callable[[str, Any, list[str]], Any]


def _fields(
    key: str,
    item: dict[str, Any],
    defaults: Any,
    problems: list[str],
    special: Mapping[str, Parser] | None = None,
) -> dict[str, Any]:
    """The values of one table, each converted to its field's type.

    Fields whose default is None are optional strings unless ``special`` parses them.
    """
    special = special or {}
    values: dict[str, Any] = {}
    for name, value in item.items():
        where = f"{key}.{name}"
        if name not in type(defaults).__dataclass_fields__:
            problems.append(f"{where}: unknown setting")
        elif name in special:
            values[name] = special[name](where, value, problems)
        elif getattr(defaults, name) is None:
            if not isinstance(value, str):
                problems.append(f"{where}: expected str, got {value!r}")
            values[name] = value
        else:
            values[name] = _coerce(where, value, getattr(defaults, name), problems)
    return values


def _required(key: str, item: dict[str, Any], names: Sequence[str], problems: list[str]) -> None:
    for name in names:
        if name not in item:
            problems.append(f"{key}.{name}: required")


def _windows(key: str, value: Any, problems: list[str]) -> CallingWindows | None:
    try:
        return CallingWindows.parse(value, key=key)
    except CampaignError as exc:
        problems.extend(p if p.startswith(key) else f"{key}: {p}" for p in exc.problems)
        return None


def _date(key: str, value: Any, problems: list[str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # a TOML local date: start_date = 2024-03-01
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(f"{key}: expected an ISO date such as 2024-03-01, got {value!r}")
    return None


_Coded = TypeVar("_Coded", PauseReasonConfig, DispositionConfig)


def _coded_tables(
    key: str, value: Any, problems: list[str], cls: type[_Coded], shape: str
) -> tuple[_Coded, ...]:
    """An array of ``{code, label, ...}`` tables of ``cls``; an entry with a problem is left out."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{key}: must be an array of tables ({{{shape}}})")
        return ()
    defaults = cls(code="", label="")
    found: list[_Coded] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        before = len(problems)
        values = _fields(where, item, defaults, problems)
        _required(where, item, ("code", "label"), problems)
        if len(problems) == before:
            found.append(cls(**values))
    return tuple(found)


def _pause_reasons(key: str, value: Any, problems: list[str]) -> tuple[PauseReasonConfig, ...]:
    return _coded_tables(key, value, problems, PauseReasonConfig, "code, label, billable")


def _dispositions(key: str, value: Any, problems: list[str]) -> tuple[DispositionConfig, ...]:
    return _coded_tables(key, value, problems, DispositionConfig, "code, label, effect")


def _agent_policy(key: str, table: dict[str, Any], problems: list[str]) -> AgentPolicyConfig | None:
    before = len(problems)
    special = {"pause_reasons": _pause_reasons, "dispositions": _dispositions}
    values = _fields(key, table, AgentPolicyConfig(), problems, special)
    if len(problems) != before:
        return None
    return AgentPolicyConfig(**values)


def _effective_rules(table: Any, problems: list[str]) -> tuple[EffectiveRule, ...] | None:
    """``[effective_rules.NAME]`` tables; "default" is the shipped rule unless redefined."""
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        problems.append("effective_rules: must be tables, [effective_rules.NAME]")
        return None
    rules = {DEFAULT_RULE.name: DEFAULT_RULE}
    failed = False
    for name, body in table.items():
        _safe_id(f"effective_rules.{name}", name, problems)
        try:
            rules[name] = EffectiveRule.from_mapping(name, body)
        except RuleError as error:
            problems.extend(str(error).split("; "))
            failed = True
    return None if failed else tuple(rules.values())


def _agent(key: str, item: dict[str, Any], problems: list[str]) -> AgentConfig | None:
    before = len(problems)
    values = _fields(key, item, AgentConfig(id="", extension=""), problems, {"start_date": _date})
    _required(key, item, ("id", "extension"), problems)
    if len(problems) != before:
        return None
    values.setdefault("name", values["id"])
    return AgentConfig(**values)


def _campaign(
    key: str, item: dict[str, Any], service_timezone: str, problems: list[str]
) -> CampaignConfig | None:
    before = len(problems)
    defaults = CampaignConfig(id="", mode="")
    values = _fields(key, item, defaults, problems, {"windows": _windows})
    _required(key, item, ("id",), problems)
    if "mode" not in item:
        problems.append(f"{key}.mode: required, one of {', '.join(CAMPAIGN_MODES)}")
    if len(problems) != before:
        return None
    values.setdefault("name", values["id"])
    values.setdefault("timezone", service_timezone)
    return CampaignConfig(**values)


def _section(name: str, cls: type[Any], table: dict[str, Any], problems: list[str]) -> Any:
    defaults = cls()
    values: dict[str, Any] = {}
    before = len(problems)
    for key, value in table.items():
        if key not in cls.__dataclass_fields__:
            problems.append(f"{name}.{key}: unknown setting")
            continue
        values[key] = _coerce(f"{name}.{key}", value, getattr(defaults, key), problems)
    if len(problems) != before:
        return None
    return cls(**values)


def _secret(
    key: str, item: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> str | None:
    if "password" in item:
        problems.append(
            f"{key}.password: secrets are not read from the file; use password_env or password_file"
        )
        return None
    if "password_env" in item:
        var = str(item["password_env"])
        if var not in env:
            problems.append(f"{key}.password_env: environment variable {var} is not set")
            return None
        return env[var]
    if "password_file" in item:
        try:
            return Path(str(item["password_file"])).read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"{key}.password_file: cannot read: {exc.strerror}")
            return None
    return None


def _phone(
    key: str, item: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> PhoneConfig | None:
    allowed = {"extension", "password_env", "password_file", "password", "vendor", "agent"}
    for extra in sorted(set(item) - allowed):
        problems.append(f"{key}.{extra}: unknown setting")
    extension = item.get("extension")
    if not isinstance(extension, str) or not extension:
        problems.append(f"{key}.extension: required, a non-empty string")
    password = _secret(key, item, env, problems)
    if (
        password is None
        and "password" not in item
        and not any(k in item for k in ("password_env", "password_file"))
    ):
        problems.append(f"{key}: a phone needs password_env or password_file")
    vendor = item.get("vendor", "generic")
    if vendor not in VENDORS:
        problems.append(f"{key}.vendor: {vendor!r} is not one of {', '.join(VENDORS)}")
    agent = item.get("agent")
    if not isinstance(extension, str) or password is None or vendor not in VENDORS:
        return None
    return PhoneConfig(
        extension=extension,
        password=password,
        vendor=vendor,
        agent=None if agent is None else str(agent),
    )


def _trunk(
    key: str, item: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> TrunkConfig | None:
    defaults = TrunkConfig(name="", host="")
    values: dict[str, Any] = {}
    before = len(problems)
    for name, value in item.items():
        if name in ("password", "password_env", "password_file"):
            continue
        if name not in TrunkConfig.__dataclass_fields__ or name == "password":
            problems.append(f"{key}.{name}: unknown setting")
            continue
        default = getattr(defaults, name)
        values[name] = (
            value if default is None else _coerce(f"{key}.{name}", value, default, problems)
        )
    for required in ("name", "host"):
        if not values.get(required):
            problems.append(f"{key}.{required}: required")
    password = _secret(key, item, env, problems)
    if len(problems) != before:
        return None
    return TrunkConfig(password=password, **values)


def _port(key: str, value: int, problems: list[str], allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        problems.append(f"{key}: {value} is not a port ({low}-65535)")


def _safe_id(key: str, value: str, problems: list[str]) -> None:
    if _SAFE_ID.fullmatch(value) is None:
        problems.append(f"{key}: {value!r} is not a safe identifier ({_SAFE_ID_RULE})")


def _zone(key: str, name: str, problems: list[str]) -> None:
    try:
        zone(name)
    except CampaignError as exc:
        problems.extend(f"{key}: {p}" for p in exc.problems)


def _caller_id(key: str, value: str, problems: list[str]) -> None:
    if _CALLER_ID.fullmatch(value) is None:
        problems.append(f"{key}: {value!r} is not a number (3-15 digits, optional '+')")


def _one_of(key: str, value: str, allowed: Sequence[str], problems: list[str]) -> None:
    if value not in allowed:
        problems.append(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _references(
    key: str, what: str, names: Sequence[str], known: Sequence[str], problems: list[str]
) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"{key}: {what} {name!r} is listed twice")
        elif name not in known:
            problems.append(f"{key}: unknown {what} {name!r} (known: {', '.join(known) or 'none'})")
        seen.add(name)


def campaign_from_table(table: Mapping[str, Any], config: Config) -> CampaignConfig:
    """A campaign defined at run time (the API), checked as if it were one more
    ``[[campaigns]]`` table of ``config``: ConfigError lists every problem, each
    named ``campaign.<setting>``."""
    problems: list[str] = []
    campaign = _campaign("campaign", dict(table), config.service.timezone, problems)
    if campaign is None:
        raise ConfigError(problems)
    if any(c.id == campaign.id for c in config.campaigns):
        raise ConfigError([f"campaign.id: campaign {campaign.id} already exists"])
    key = f"campaigns[{len(config.campaigns)}]"
    before = set(validate(config))
    extended = dataclasses.replace(config, campaigns=(*config.campaigns, campaign))
    found = [p.replace(key, "campaign") for p in validate(extended) if p not in before]
    if found:
        raise ConfigError(found)
    return campaign


def validate(config: Config, facts: FileFacts | None = None) -> list[str]:
    """Cross-field checks; returns every problem found.

    ``facts`` (from loading a file) maps built items back to their keys in the
    file; without it each item's key is its index in the Config.
    """
    facts = facts or FileFacts()
    problems: list[str] = []
    _zone("service.timezone", config.service.timezone, problems)
    sip, media = config.sip, config.media
    _port("sip.udp_port", sip.udp_port, problems)
    _port("sip.tcp_port", sip.tcp_port, problems)
    _port("metrics.port", config.metrics.port, problems)
    problems.extend(_quota_problems(config))
    _port("mqtt.port", config.mqtt.port, problems, allow_zero=False)
    _port("http.port", config.http.port, problems)
    if config.http.session_minutes <= 0:
        problems.append(
            f"http.session_minutes: must be positive, got {config.http.session_minutes}"
        )
    if config.http.max_upload_bytes <= 0:
        problems.append(
            f"http.max_upload_bytes: must be positive, got {config.http.max_upload_bytes}"
        )
    if config.mqtt.host and config.mqtt.tokens_file:
        _agent_tokens("mqtt.tokens_file", Path(config.mqtt.tokens_file), problems)
    cdr = config.cdr
    if cdr.retention_days < MIN_RETENTION_DAYS:
        problems.append(
            f"cdr.retention_days: {cdr.retention_days} is under the {MIN_RETENTION_DAYS} "
            "days recordings must be kept"
        )
    if not 0 <= cdr.qa_sample_rate <= 1:
        problems.append(f"cdr.qa_sample_rate: must be between 0 and 1, got {cdr.qa_sample_rate:g}")
    rule_names = [rule.name for rule in config.effective_rules]
    if cdr.default_effective_rule not in rule_names:
        problems.append(
            f"cdr.default_effective_rule: no rule {cdr.default_effective_rule!r} "
            f"(defined: {', '.join(rule_names)})"
        )
    if cdr.qa_sample_minimum < 0:
        problems.append(f"cdr.qa_sample_minimum: must be 0 or more, got {cdr.qa_sample_minimum}")
    if sip.t1 <= 0 or sip.t2 < sip.t1 or sip.t4 <= 0:
        problems.append("sip.t1/t2/t4: need 0 < t1 <= t2 and t4 > 0")
    digests = ("MD5", "SHA-256")
    if not sip.digest_algorithms or any(a not in digests for a in sip.digest_algorithms):
        problems.append(
            f"sip.digest_algorithms: {list(sip.digest_algorithms)} must be a non-empty list of "
            "MD5, SHA-256"
        )
    if sip.max_message_bytes < 1500:
        problems.append("sip.max_message_bytes: must be at least 1500")
    if not 0 < sip.register_min_expires <= sip.register_max_expires:
        problems.append("sip.register_min_expires: must be > 0 and <= register_max_expires")
    _port("media.rtp_port_min", media.rtp_port_min, problems, allow_zero=False)
    _port("media.rtp_port_max", media.rtp_port_max, problems, allow_zero=False)
    if media.rtp_port_min >= media.rtp_port_max:
        problems.append("media.rtp_port_min: must be below media.rtp_port_max")
    if media.media_timeout_s <= 0:
        problems.append("media.media_timeout_s: must be positive")
    if not config.database.url.startswith(("sqlite", "postgresql")):
        problems.append(
            "database.url: only sqlite+aiosqlite:// and postgresql+asyncpg:// are supported"
        )
    seen: set[str] = set()
    for i, phone in enumerate(config.phones):
        if phone.extension in seen:
            problems.append(
                f"{facts.key('phones', i)}.extension: duplicate extension {phone.extension}"
            )
        seen.add(phone.extension)
    names: set[str] = set()
    for i, trunk in enumerate(config.trunks):
        key = facts.key("trunks", i)
        if trunk.name in names:
            problems.append(f"{key}.name: duplicate trunk {trunk.name}")
        names.add(trunk.name)
        _port(f"{key}.port", trunk.port, problems, allow_zero=False)
        if trunk.transport not in TRANSPORTS:
            problems.append(f"{key}.transport: {trunk.transport!r} is not one of udp, tcp")
        if trunk.max_channels <= 0:
            problems.append(f"{key}.max_channels: must be positive")
        if trunk.max_calls_per_second <= 0:
            problems.append(f"{key}.max_calls_per_second: must be positive")
        if trunk.register and (trunk.username is None or trunk.password is None):
            problems.append(f"{key}.register: needs username and a password_env/password_file")
        if trunk.caller_id is not None:
            _caller_id(f"{key}.caller_id", trunk.caller_id, problems)
        for j, prefix in enumerate(trunk.prefixes_allowed):
            if _E164_PREFIX.fullmatch(prefix) is None:
                problems.append(
                    f"{key}.prefixes_allowed[{j}]: {prefix!r} is not an E.164 prefix such as '+86'"
                )
        for j, caller_id in enumerate(trunk.caller_ids):
            _caller_id(f"{key}.caller_ids[{j}]", caller_id, problems)
    problems.extend(_agent_problems(config, facts))
    problems.extend(_campaign_problems(config, facts))
    return problems


def agent_tokens(config: Config) -> dict[str, str]:
    """Each agent's command token (from ``mqtt.tokens_file``); ConfigError if unreadable."""
    if not config.mqtt.tokens_file:
        return {}
    problems: list[str] = []
    tokens = _agent_tokens("mqtt.tokens_file", Path(config.mqtt.tokens_file), problems)
    if problems:
        raise ConfigError(problems)
    return tokens


def _agent_tokens(key: str, path: Path, problems: list[str]) -> dict[str, str]:
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{key}: cannot read {path}: {exc.strerror}")
        return {}
    except ValueError as exc:
        problems.append(f"{key}: {path} is not JSON: {exc}")
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
    ):
        problems.append(f'{key}: {path} must be an object {{"agent id": "token", ...}}')
        return {}
    return raw


def quota_policy_path(config: Config) -> Path:
    return Path(config.quota.policy_path) if config.quota.policy_path else DEFAULT_QUOTA_POLICY


def _quota_problems(config: Config) -> list[str]:
    """The quota policy must load, or the service does not start."""
    from quota.policy import PolicyError, load_policy

    path = quota_policy_path(config)
    try:
        load_policy(path)
    except PolicyError as exc:
        return [f"quota.policy_path ({path}): {problem}" for problem in exc.problems]
    return []


def _agent_problems(config: Config, facts: FileFacts) -> list[str]:
    problems: list[str] = []
    policy = config.agent_policy
    if not policy.wrap_up_limit_s >= 0:  # also refuses NaN
        problems.append(
            f"agent_policy.wrap_up_limit_s: must be >= 0 (0 disables wrap-up), "
            f"got {policy.wrap_up_limit_s}"
        )
    if not policy.pause_reasons:
        problems.append("agent_policy.pause_reasons: needs at least one reason")
    codes: set[str] = set()
    for i, reason in enumerate(policy.pause_reasons):
        key = f"agent_policy.pause_reasons[{i}]"
        if reason.code in SYSTEM_PAUSE_CODES:
            problems.append(
                f"{key}.code: {reason.code!r} is reserved for the system "
                f"({', '.join(SYSTEM_PAUSE_CODES)}); choose another code"
            )
        else:
            _safe_id(f"{key}.code", reason.code, problems)
        if reason.code in codes:
            problems.append(f"{key}.code: duplicate pause reason {reason.code}")
        codes.add(reason.code)
        if not reason.label.strip():
            problems.append(f"{key}.label: must not be empty")
    problems.extend(_disposition_problems(policy.dispositions))
    extensions = facts.known("phones", [p.extension for p in config.phones])
    seated = {
        p.extension: (facts.key("phones", i), p.agent)
        for i, p in enumerate(config.phones)
        if p.agent
    }
    ids: set[str] = set()
    for i, agent in enumerate(config.agents):
        key = facts.key("agents", i)
        _safe_id(f"{key}.id", agent.id, problems)
        if agent.id in ids:
            problems.append(f"{key}.id: duplicate agent {agent.id}")
        ids.add(agent.id)
        _references(f"{key}.extension", "extension", [agent.extension], extensions, problems)
        if agent.extension in seated and seated[agent.extension][1] != agent.id:
            phone_key, other = seated[agent.extension]
            problems.append(
                f"{key}.extension: phone {agent.extension} belongs to agent {other!r} "
                f"({phone_key}.agent)"
            )
        _one_of(f"{key}.level", agent.level, AGENT_LEVELS, problems)
    return problems


def _disposition_problems(dispositions: Sequence[DispositionConfig]) -> list[str]:
    problems: list[str] = []
    if not dispositions:
        problems.append("agent_policy.dispositions: needs at least one disposition")
    codes: set[str] = set()
    for i, disposition in enumerate(dispositions):
        key = f"agent_policy.dispositions[{i}]"
        if _DISPOSITION_CODE.fullmatch(disposition.code) is None:
            problems.append(
                f"{key}.code: {disposition.code!r} must be 1-32 lowercase letters, digits or _, "
                "starting with a letter or digit"
            )
        if disposition.code in codes:
            problems.append(f"{key}.code: duplicate disposition {disposition.code}")
        codes.add(disposition.code)
        if not disposition.label.strip():
            problems.append(f"{key}.label: must not be empty")
        _one_of(f"{key}.effect", disposition.effect, DISPOSITION_EFFECTS, problems)
    return problems


def dispositions_of(config: Config, campaign: CampaignConfig) -> tuple[DispositionConfig, ...]:
    """The results an agent of ``campaign`` may set, in the order the desk shows them."""
    defined = config.agent_policy.dispositions
    if not campaign.dispositions:
        return defined
    by_code = {d.code: d for d in defined}
    return tuple(by_code[code] for code in campaign.dispositions if code in by_code)


def _campaign_problems(config: Config, facts: FileFacts) -> list[str]:
    problems: list[str] = []
    trunks = facts.known("trunks", [t.name for t in config.trunks])
    agents = facts.known("agents", [a.id for a in config.agents])
    ids: set[str] = set()
    for i, campaign in enumerate(config.campaigns):
        key = facts.key("campaigns", i)
        _safe_id(f"{key}.id", campaign.id, problems)
        if campaign.id in ids:
            problems.append(f"{key}.id: duplicate campaign {campaign.id}")
        ids.add(campaign.id)
        _one_of(f"{key}.mode", campaign.mode, CAMPAIGN_MODES, problems)
        if not campaign.trunks:
            problems.append(f"{key}.trunks: campaign {campaign.id!r} has no trunks")
        _references(f"{key}.trunks", "trunk", campaign.trunks, trunks, problems)
        if not campaign.agents:
            problems.append(f"{key}.agents: campaign {campaign.id!r} has no agents")
        _references(f"{key}.agents", "agent", campaign.agents, agents, problems)
        if campaign.caller_id is not None:
            _caller_id(f"{key}.caller_id", campaign.caller_id, problems)
        if campaign.timezone != config.service.timezone:  # else reported as service.timezone
            _zone(f"{key}.timezone", campaign.timezone, problems)
        if not campaign.windows.has_any():
            problems.append(f"{key}.windows: no calling windows, the campaign could never dial")
        defined = [d.code for d in config.agent_policy.dispositions]
        _references(f"{key}.dispositions", "disposition", campaign.dispositions, defined, problems)
        if campaign.max_attempts < 1:
            problems.append(f"{key}.max_attempts: must be at least 1, got {campaign.max_attempts}")
        for name in ("busy_retry_minutes", "no_answer_retry_minutes", "unavailable_retry_minutes"):
            minutes = getattr(campaign, name)
            if minutes <= 0:
                problems.append(f"{key}.{name}: must be positive, got {minutes}")
        if not campaign.ring_timeout_s >= MIN_RING_TIMEOUT_S:
            problems.append(
                f"{key}.ring_timeout_s: {campaign.ring_timeout_s:g} s is too short; a ring "
                f"timeout is never shorter than {MIN_RING_TIMEOUT_S:g} s"
            )
        _safe_id(f"{key}.effective_rule", campaign.effective_rule, problems)
        rules = [rule.name for rule in config.effective_rules]
        if campaign.effective_rule and campaign.effective_rule not in rules:
            problems.append(
                f"{key}.effective_rule: no rule {campaign.effective_rule!r} "
                f"(defined: {', '.join(rules)})"
            )
        retention = campaign.recording_retention_days
        if retention and retention < MIN_RETENTION_DAYS:
            problems.append(
                f"{key}.recording_retention_days: {retention} is under the "
                f"{MIN_RETENTION_DAYS} days recordings must be kept"
            )
        if not 0 < campaign.abandon_cap <= MAX_ABANDON_CAP:
            problems.append(
                f"{key}.abandon_cap: must be above 0 and at most {MAX_ABANDON_CAP:g} "
                f"(a fraction of live answers, 0.03 = 3 %), got {campaign.abandon_cap:g}"
            )
        if not campaign.max_dial_level >= 1:
            problems.append(
                f"{key}.max_dial_level: must be at least 1, got {campaign.max_dial_level:g}"
            )
        problems.extend(_predictive_problems(config, key, campaign))
    return problems


def _predictive_problems(config: Config, key: str, campaign: CampaignConfig) -> list[str]:
    problems: list[str] = []
    if not 0 < campaign.connect_within_s <= MAX_CONNECT_S:
        problems.append(
            f"{key}.connect_within_s: must be above 0 and at most {MAX_CONNECT_S:g} s "
            f"(a live customer is connected within that or released), "
            f"got {campaign.connect_within_s:g}"
        )
    if not 0 <= campaign.abandon_lockout_minutes < math.inf:
        problems.append(
            f"{key}.abandon_lockout_minutes: must be 0 or more, "
            f"got {campaign.abandon_lockout_minutes:g}"
        )
    if campaign.abandon_message:
        try:
            message = read_prompt(Path(campaign.abandon_message))
        except OSError as exc:
            problems.append(f"{key}.abandon_message: cannot read {campaign.abandon_message}: {exc}")
        except WavError as exc:
            problems.append(f"{key}.abandon_message: {exc}")
        else:
            seconds = len(message) / 2 / 8000
            if campaign.mode == "predictive" and seconds < MIN_ABANDON_MESSAGE_S:
                problems.append(
                    f"{key}.abandon_message: {campaign.abandon_message} lasts {seconds:.2f} s; "
                    f"an abandoned customer needs at least {MIN_ABANDON_MESSAGE_S:g} s"
                )
    if campaign.mode == "predictive":
        by_id = {agent.id: agent for agent in config.agents}
        per_call = [
            a for a in campaign.agents if a in by_id and not by_id[a].persistent_connection
        ]
        if per_call:
            problems.append(
                f"{key}.agents: a predictive campaign connects customers to agents' persistent "
                f"connections; {', '.join(per_call)} have persistent_connection = false"
            )
    return problems
