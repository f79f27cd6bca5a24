"""Typed service configuration: defaults, then one TOML file, then environment.

Everything is validated before any socket opens, and every problem is reported
at once with the dotted key that is wrong, so an operator fixes a file in one
pass instead of one error per restart. Secrets are never read from the file
itself: a phone or trunk names an environment variable or a file that holds
its password.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "DIALER_"
VENDORS = ("generic", "yealink", "polycom", "grandstream", "snom", "cisco", "baresip")
TRANSPORTS = ("udp", "tcp")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every wrong key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    node_name: str = "node-1"
    data_dir: Path = Path("var")
    timezone: str = "Asia/Shanghai"


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


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    bind_host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    phones: tuple[PhoneConfig, ...] = ()
    trunks: tuple[TrunkConfig, ...] = ()


_SECTIONS: dict[str, type[Any]] = {
    "service": ServiceConfig,
    "sip": SipConfig,
    "media": MediaConfig,
    "database": DatabaseConfig,
    "metrics": MetricsConfig,
}


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
    config = _build(raw, env, problems)
    if config is not None:
        problems.extend(validate(config))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """``DIALER_SIP__UDP_PORT=5070`` overrides ``sip.udp_port``."""
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            problems.append(f"{name}: unknown section {section!r}")
            continue
        raw.setdefault(section, {})[key] = value


def _build(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> Config | None:
    known = set(_SECTIONS) | {"phones", "trunks"}
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
    phones = tuple(
        p
        for i, item in enumerate(_array(raw, "phones", problems))
        if (p := _phone(f"phones[{i}]", item, env, problems)) is not None
    )
    trunks = tuple(
        t
        for i, item in enumerate(_array(raw, "trunks", problems))
        if (t := _trunk(f"trunks[{i}]", item, env, problems)) is not None
    )
    if any(v is None for v in sections.values()) or len(sections) != len(_SECTIONS):
        return None
    return Config(phones=phones, trunks=trunks, **sections)


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


def validate(config: Config) -> list[str]:
    """Cross-field checks; returns every problem found."""
    problems: list[str] = []
    sip, media = config.sip, config.media
    _port("sip.udp_port", sip.udp_port, problems)
    _port("sip.tcp_port", sip.tcp_port, problems)
    _port("metrics.port", config.metrics.port, problems)
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
            problems.append(f"phones[{i}].extension: duplicate extension {phone.extension}")
        seen.add(phone.extension)
    names: set[str] = set()
    for i, trunk in enumerate(config.trunks):
        if trunk.name in names:
            problems.append(f"trunks[{i}].name: duplicate trunk {trunk.name}")
        names.add(trunk.name)
        _port(f"trunks[{i}].port", trunk.port, problems, allow_zero=False)
        if trunk.transport not in TRANSPORTS:
            problems.append(f"trunks[{i}].transport: {trunk.transport!r} is not one of udp, tcp")
        if trunk.max_channels <= 0:
            problems.append(f"trunks[{i}].max_channels: must be positive")
        if trunk.max_calls_per_second <= 0:
            problems.append(f"trunks[{i}].max_calls_per_second: must be positive")
        if trunk.register and (trunk.username is None or trunk.password is None):
            problems.append(
                f"trunks[{i}].register: needs username and a password_env/password_file"
            )
    return problems
