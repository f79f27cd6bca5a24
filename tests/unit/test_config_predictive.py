"""Predictive campaign settings in the config file: defaults, and every bad value named.

The abandon message is checked as the dialer will play it (8 kHz mono 16-bit
PCM WAV), so the WAV files here are real ones written with ``wave``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from dialer.config import Config, ConfigError, load_config

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
[[agents]]
id = "zhang.wei"
extension = "1001"
[[agents]]
id = "wang.fang"
extension = "1002"
"""
PREDICTIVE = (
    '[[campaigns]]\nid = "c1"\nmode = "predictive"\ntrunks = ["pbx"]\n'
    'agents = ["zhang.wei", "wang.fang"]\n'
)
KEY = "campaigns[0]"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "dialer.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={"P": "pw"})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def write_wav(
    path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2, seconds: float = 1.0
) -> Path:
    frames = round(rate * seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(bytes(frames * channels * width))
    return path


def with_setting(line: str) -> str:
    return FLOOR + PREDICTIVE + line + "\n"


def test_a_predictive_campaign_loads_with_the_predictive_defaults(tmp_path: Path) -> None:
    (campaign,) = load(tmp_path, FLOOR + PREDICTIVE).campaigns
    assert campaign.mode == "predictive"
    assert campaign.connect_within_s == 2.0
    assert campaign.abandon_lockout_minutes == 4320.0  # 72 hours
    assert campaign.screen_early_media is True
    assert campaign.abandon_message == ""  # the shipped Mandarin message


def test_predictive_settings_are_read_from_the_file(tmp_path: Path) -> None:
    message = write_wav(tmp_path / "sorry.wav", seconds=0.6)
    text = with_setting(
        f"connect_within_s = 1.5\nabandon_lockout_minutes = 0\nscreen_early_media = false\n"
        f"abandon_message = {str(message)!r}"
    )
    (campaign,) = load(tmp_path, text).campaigns
    assert campaign.connect_within_s == 1.5
    assert campaign.abandon_lockout_minutes == 0.0
    assert campaign.screen_early_media is False
    assert campaign.abandon_message == str(message)


@pytest.mark.parametrize("value", ["2.0", "0.001"])
def test_connect_within_up_to_two_seconds_is_accepted(tmp_path: Path, value: str) -> None:
    (campaign,) = load(tmp_path, with_setting(f"connect_within_s = {value}")).campaigns
    assert campaign.connect_within_s == float(value)


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("-1", "-1"), ("2.5", "2.5")])
def test_connect_within_must_be_above_zero_and_at_most_two_seconds(
    tmp_path: Path, value: str, shown: str
) -> None:
    assert problems(tmp_path, with_setting(f"connect_within_s = {value}")) == [
        f"{KEY}.connect_within_s: must be above 0 and at most 2 s (a live customer is connected"
        f" within that or released), got {shown}"
    ]


@pytest.mark.parametrize(("value", "shown"), [("-1", "-1"), ("-0.5", "-0.5"), ("inf", "inf")])
def test_abandon_lockout_must_be_a_finite_number_of_minutes_not_below_zero(
    tmp_path: Path, value: str, shown: str
) -> None:
    assert problems(tmp_path, with_setting(f"abandon_lockout_minutes = {value}")) == [
        f"{KEY}.abandon_lockout_minutes: must be 0 or more, got {shown}"
    ]


def test_an_abandon_message_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sorry.wav"
    [problem] = problems(tmp_path, with_setting(f"abandon_message = {str(missing)!r}"))
    assert problem.startswith(f"{KEY}.abandon_message: cannot read {missing}: ")
    assert "No such file" in problem


def test_an_abandon_message_that_is_a_directory(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, with_setting(f"abandon_message = {str(tmp_path)!r}"))
    assert problem.startswith(f"{KEY}.abandon_message: cannot read {tmp_path}: ")


def test_an_abandon_message_that_is_not_a_wav(tmp_path: Path) -> None:
    text_file = tmp_path / "sorry.wav"
    text_file.write_text("hello, this is not audio\n")
    assert problems(tmp_path, with_setting(f"abandon_message = {str(text_file)!r}")) == [
        f"{KEY}.abandon_message: not a RIFF file: starts with b'hell'"
    ]


@pytest.mark.parametrize(
    ("rate", "channels", "width", "got"),
    [
        (16000, 1, 2, "16000 Hz, 1 channel(s), 16 bits"),
        (8000, 2, 2, "8000 Hz, 2 channel(s), 16 bits"),
        (8000, 1, 1, "8000 Hz, 1 channel(s), 8 bits"),
        (44100, 2, 3, "44100 Hz, 2 channel(s), 24 bits"),
    ],
)
def test_an_abandon_message_in_another_format_is_named_with_its_format(
    tmp_path: Path, rate: int, channels: int, width: int, got: str
) -> None:
    path = write_wav(tmp_path / "sorry.wav", rate=rate, channels=channels, width=width)
    assert problems(tmp_path, with_setting(f"abandon_message = {str(path)!r}")) == [
        f"{KEY}.abandon_message: {path}: a prompt must be 8 kHz mono 16-bit PCM, got {got}"
    ]


def test_a_predictive_abandon_message_under_half_a_second_is_refused_by_the_config(
    tmp_path: Path,
) -> None:
    short = write_wav(tmp_path / "sorry.wav", seconds=0.2)
    [problem] = problems(tmp_path, with_setting(f"abandon_message = {str(short)!r}"))
    assert problem.startswith(f"{KEY}.abandon_message: ")
    assert "0.5 s" in problem


def test_a_predictive_campaign_needs_persistent_connections(tmp_path: Path) -> None:
    text = FLOOR.replace(
        'id = "wang.fang"\nextension = "1002"\n',
        'id = "wang.fang"\nextension = "1002"\npersistent_connection = false\n',
    )
    assert problems(tmp_path, text + PREDICTIVE) == [
        f"{KEY}.agents: a predictive campaign connects customers to agents' persistent "
        "connections; wang.fang have persistent_connection = false"
    ]
    # The same agents are fine for a campaign that rings the desk phone per call.
    preview = PREDICTIVE.replace('mode = "predictive"', 'mode = "preview"')
    assert load(tmp_path, text + preview).campaigns[0].mode == "preview"


def test_a_predictive_campaign_without_agents_or_trunks(tmp_path: Path) -> None:
    bare = '[[campaigns]]\nid = "c1"\nmode = "predictive"\n'
    assert problems(tmp_path, FLOOR + bare) == [
        f"{KEY}.trunks: campaign 'c1' has no trunks",
        f"{KEY}.agents: campaign 'c1' has no agents",
    ]
    empty = bare + "trunks = []\nagents = []\n"
    assert problems(tmp_path, FLOOR + empty) == [
        f"{KEY}.trunks: campaign 'c1' has no trunks",
        f"{KEY}.agents: campaign 'c1' has no agents",
    ]


def test_every_predictive_problem_is_reported_at_once(tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", channels=2)
    text = FLOOR.replace(
        'id = "zhang.wei"\nextension = "1001"\n',
        'id = "zhang.wei"\nextension = "1001"\npersistent_connection = false\n',
    ) + with_setting(
        f"connect_within_s = 3\nabandon_lockout_minutes = -10\nabandon_message = {str(stereo)!r}"
    ).removeprefix(FLOOR)
    assert problems(tmp_path, text) == [
        f"{KEY}.connect_within_s: must be above 0 and at most 2 s (a live customer is connected"
        " within that or released), got 3",
        f"{KEY}.abandon_lockout_minutes: must be 0 or more, got -10",
        f"{KEY}.abandon_message: {stereo}: a prompt must be 8 kHz mono 16-bit PCM, got 8000 Hz,"
        " 2 channel(s), 16 bits",
        f"{KEY}.agents: a predictive campaign connects customers to agents' persistent "
        "connections; zhang.wei have persistent_connection = false",
    ]
