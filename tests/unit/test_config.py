from __future__ import annotations

from pathlib import Path

import pytest

from dialer.config import ConfigError, load_config

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
